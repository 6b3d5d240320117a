//! Session records kept in memory, so that a signed-in request reads no store, with the pages
//! rendered from each. Correct across instances because the store tells every instance which
//! sessions changed ([`super::changes`]), and because an entry is served only while the store
//! has confirmed, within [`STALE_AFTER`], that every change up to then has been heard. A
//! session ended anywhere therefore stops working here within that bound plus one round of
//! listening: under a second.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use tower_sessions::{
    cookie::time::OffsetDateTime,
    session::{Id, Record},
};

use crate::csp::Renonced;

/// How long the store's last confirmation keeps entries good. The listeners confirm about
/// every tenth of a second; a listener that stops confirming (a store gone, a lost connection)
/// turns the cache off after this, and requests read the store again.
pub const STALE_AFTER: Duration = Duration::from_millis(500);

/// Entries kept at most: a session record and its pages take about 10 to 15 KB, so the cache
/// stays under about 60 MB. Beyond, one entry is let go at random (and read again when needed).
const CAPACITY: usize = 4_096;

/// A page rendered for one session: when it stops being good (Unix seconds: the session wants a
/// touch, a token renewal or its end then), and the page.
#[derive(Clone)]
pub struct Page {
    pub until: i64,
    pub content: Renonced,
}

/// One session's record, and the pages rendered from exactly this record.
pub struct Entry {
    pub record: Record,
    pages: Mutex<HashMap<&'static str, Page>>,
}

impl Entry {
    pub fn page(&self, path: &str) -> Option<Page> {
        self.pages.lock().expect("not poisoned").get(path).cloned()
    }
}

#[derive(Default)]
pub struct Cache {
    entries: RwLock<HashMap<Id, Arc<Entry>>>,
    /// Bumped by every change heard: a record read from the store before a change is not kept.
    generation: AtomicU64,
    /// When the store last confirmed that every change until then has been heard: milliseconds
    /// after `epoch`, 0 for never (the cache is off until the listener first confirms).
    fresh_as_of: AtomicU64,
    epoch: Epoch,
    /// Records read from the store (cache misses included): at most one per request.
    reads: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.read().expect("not poisoned").len();
        f.debug_struct("Cache").field("entries", &entries).finish()
    }
}

struct Epoch(Instant);

impl Default for Epoch {
    fn default() -> Self {
        // A moment safely in the past, so that every instant after it is a positive offset.
        Self(Instant::now() - Duration::from_secs(1))
    }
}

impl Cache {
    /// The entry of session `id`, when it is known and good now.
    pub fn get(&self, id: &Id) -> Option<Arc<Entry>> {
        if !self.fresh() {
            return None;
        }
        let entry = self
            .entries
            .read()
            .expect("not poisoned")
            .get(id)
            .cloned()?;
        (entry.record.expiry_date > OffsetDateTime::now_utc()).then_some(entry)
    }

    /// The generation to pass to [`Cache::keep`] for a record about to be read from the store.
    pub fn before_read(&self) -> u64 {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a record read from the store, unless a change was heard since the read began (it
    /// may be about this very session), or the store is not confirming (a change made now might
    /// go unheard).
    pub fn keep(&self, record: &Record, generation: u64) {
        let entry = Arc::new(Entry {
            record: record.clone(),
            pages: Mutex::default(),
        });
        let mut entries = self.entries.write().expect("not poisoned");
        if self.generation.load(Ordering::Acquire) != generation || !self.fresh() {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(&record.id) {
            if let Some(any) = entries.keys().next().copied() {
                entries.remove(&any);
            }
        }
        entries.insert(record.id, entry);
    }

    /// Keeps a page rendered from `entry`, if `entry` is still the session's current one.
    pub fn keep_page(&self, entry: &Arc<Entry>, path: &'static str, page: Page) {
        let entries = self.entries.read().expect("not poisoned");
        if entries
            .get(&entry.record.id)
            .is_some_and(|current| Arc::ptr_eq(current, entry))
        {
            entry.pages.lock().expect("not poisoned").insert(path, page);
        }
    }

    /// Forgets the sessions that changed (here or on another instance).
    pub fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a Id>) {
        let mut entries = self.entries.write().expect("not poisoned");
        self.generation.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            entries.remove(id);
        }
    }

    /// Forgets every session, and stays off until the next confirmation: changes may have been
    /// missed (a listener lost its connection, or listens again).
    pub fn forget_all(&self) {
        let mut entries = self.entries.write().expect("not poisoned");
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.fresh_as_of.store(0, Ordering::Release);
        entries.clear();
    }

    /// The store confirms that every change made before `as_of` has been heard.
    pub fn confirm(&self, as_of: Instant) {
        let ms = as_of.saturating_duration_since(self.epoch.0).as_millis() as u64;
        self.fresh_as_of.fetch_max(ms.max(1), Ordering::AcqRel);
    }

    fn fresh(&self) -> bool {
        let as_of = self.fresh_as_of.load(Ordering::Acquire);
        as_of != 0
            && self.epoch.0.elapsed().as_millis() as u64 <= as_of + STALE_AFTER.as_millis() as u64
    }

    /// How many records have been read from the store.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Bytes, http::HeaderMap};

    use super::*;

    fn record(id: i128) -> Record {
        Record {
            id: Id(id),
            data: HashMap::new(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    }

    fn fresh_cache() -> Cache {
        let cache = Cache::default();
        cache.confirm(Instant::now());
        cache
    }

    #[test]
    fn nothing_is_kept_or_served_before_the_store_confirms() {
        let cache = Cache::default();
        cache.keep(&record(1), cache.before_read());
        cache.confirm(Instant::now());
        assert!(cache.get(&Id(1)).is_none());
        cache.keep(&record(1), cache.before_read());
        assert!(cache.get(&Id(1)).is_some());
    }

    #[test]
    fn entries_stop_being_served_when_confirmations_stop() {
        let cache = fresh_cache();
        cache.keep(&record(1), cache.before_read());
        // As if the last confirmation were older than the bound.
        cache.fresh_as_of.store(1, Ordering::Release);
        assert!(cache.get(&Id(1)).is_none());
        cache.confirm(Instant::now());
        assert!(cache.get(&Id(1)).is_some());
    }

    #[test]
    fn a_record_read_before_a_change_is_not_kept() {
        let cache = fresh_cache();
        let generation = cache.before_read();
        cache.forget(&[Id(1)]);
        cache.keep(&record(1), generation);
        assert!(cache.get(&Id(1)).is_none());
    }

    #[test]
    fn a_change_forgets_the_session_and_its_pages() {
        let cache = fresh_cache();
        cache.keep(&record(1), cache.before_read());
        let entry = cache.get(&Id(1)).unwrap();
        let page = Page {
            until: i64::MAX,
            content: Renonced::new(HeaderMap::new(), Bytes::from_static(b"page")),
        };
        cache.keep_page(&entry, "/profile", page.clone());
        assert!(cache.get(&Id(1)).unwrap().page("/profile").is_some());
        cache.forget(&[Id(1)]);
        assert!(cache.get(&Id(1)).is_none());
        // A page rendered from the old record finds no place to go.
        cache.keep(&record(1), cache.before_read());
        cache.keep_page(&entry, "/profile", page);
        assert!(cache.get(&Id(1)).unwrap().page("/profile").is_none());
    }

    #[test]
    fn forgetting_everything_turns_the_cache_off_until_confirmed() {
        let cache = fresh_cache();
        cache.keep(&record(1), cache.before_read());
        // A read under way when the listener lost its connection is not kept afterwards.
        let under_way = cache.before_read();
        cache.forget_all();
        cache.keep(&record(1), cache.before_read());
        cache.confirm(Instant::now());
        assert!(cache.get(&Id(1)).is_none());
        cache.keep(&record(1), under_way);
        assert!(cache.get(&Id(1)).is_none());
        cache.keep(&record(1), cache.before_read());
        assert!(cache.get(&Id(1)).is_some());
    }

    #[test]
    fn the_cache_keeps_at_most_its_capacity() {
        let cache = fresh_cache();
        for id in 0..=CAPACITY as i128 {
            cache.keep(&record(id), cache.before_read());
        }
        assert_eq!(cache.entries.read().unwrap().len(), CAPACITY);
        // The newest is kept; the one let go is read again when next needed.
        assert!(cache.get(&Id(CAPACITY as i128)).is_some());
    }

    #[test]
    fn an_expired_record_is_not_served() {
        let cache = fresh_cache();
        let mut expired = record(1);
        expired.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        cache.keep(&expired, cache.before_read());
        assert!(cache.get(&Id(1)).is_none());
    }
}
