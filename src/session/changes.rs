//! How an instance hears, from the store, which sessions changed or ended anywhere, and keeps
//! its [`Cache`] true to the store:
//!
//! - SQLite: triggers log every change of a session row in `session_changes`; each instance
//!   reads the log every [`ROUND`]. SQLite commits one writer at a time, so a read sees every
//!   change made before it began.
//! - PostgreSQL: triggers `NOTIFY` the change; each instance `LISTEN`s.
//! - Redis: the instance that changes a session publishes its id; each instance subscribes.
//!
//! With notifications (PostgreSQL, Redis), each instance also sends itself a beat every
//! [`ROUND`] on the same channel: both deliver in the order they commit, so hearing a beat
//! sent at `t` confirms that every change before `t` has been heard. A lost connection forgets
//! the whole cache.

use std::{
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::{postgres::PgListener, PgPool};
use tower_sessions::session::Id;
use tower_sessions_redis_store::fred::{
    clients::Client,
    interfaces::{EventInterface, PubsubInterface},
    prelude::Pool,
};

use super::cache::Cache;
use crate::db::Sqlite;

/// The channel of the notifications (PostgreSQL and Redis): a payload is session ids separated
/// by spaces, or a beat.
pub const CHANNEL: &str = "leptos_oidc_sessions";

/// How often the store is asked, or beats.
const ROUND: Duration = Duration::from_millis(100);

/// Reads the SQLite change log for as long as the app runs.
pub async fn read_sqlite_log(sqlite: Sqlite, cache: Arc<Cache>) {
    let mut last: Option<i64> = None;
    let mut failing = false;
    loop {
        let asked = Instant::now();
        let mut connection = sqlite.connection().await;
        let read = match last {
            // Changes before this instance started concern no session it has seen.
            None => sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM session_changes")
                .fetch_one(&mut *connection)
                .await
                .map(|seq| (Some(seq), Vec::new())),
            Some(after) => sqlx::query_as::<_, (i64, String)>(
                "SELECT seq, id FROM session_changes WHERE seq > $1 ORDER BY seq",
            )
            .bind(after)
            .fetch_all(&mut *connection)
            .await
            .map(|rows| (rows.last().map(|(seq, _)| *seq), rows)),
        };
        drop(connection);
        match read {
            Ok((seq, rows)) => {
                last = seq.or(last);
                let ids: Vec<Id> = rows.iter().filter_map(|(_, id)| parse(id)).collect();
                if failing {
                    // The log keeps a minute: after a longer failure, changes may be gone.
                    cache.forget_all();
                } else if !ids.is_empty() {
                    cache.forget(&ids);
                }
                cache.confirm(asked);
                failing = false;
            }
            Err(e) => {
                cache.forget_all();
                if !failing {
                    tracing::warn!(error = %e, "session changes unreadable; reading sessions from the database meanwhile");
                }
                failing = true;
            }
        }
        tokio::time::sleep(ROUND).await;
    }
}

/// Listens to PostgreSQL's notifications for as long as the app runs.
pub async fn listen_postgres(pool: PgPool, cache: Arc<Cache>) {
    let beats = Beats::new();
    tokio::spawn({
        let (pool, beats) = (pool.clone(), beats.clone());
        async move {
            loop {
                let beat = beats.next();
                // A failed beat is a missed confirmation: the cache turns itself off.
                let _ = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(beat)
                    .execute(&pool)
                    .await;
                tokio::time::sleep(ROUND).await;
            }
        }
    });
    let mut failing = false;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                failing = warn_once(failing, &e);
                tokio::time::sleep(ROUND).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            failing = warn_once(failing, &e);
            tokio::time::sleep(ROUND).await;
            continue;
        }
        // Listening now: whatever was kept before may have missed a change.
        cache.forget_all();
        let mut relistened = true;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if !relistened {
                        // Heard again on a new connection: forget what the gap may have hidden.
                        cache.forget_all();
                        relistened = true;
                    }
                    failing = false;
                    heard(&cache, &beats, notification.payload());
                }
                // The connection was lost; the next call connects and listens again.
                Ok(None) => {
                    cache.forget_all();
                    relistened = false;
                }
                Err(e) => {
                    cache.forget_all();
                    relistened = false;
                    failing = warn_once(failing, &e);
                    tokio::time::sleep(ROUND).await;
                }
            }
        }
    }
}

/// Subscribes to the Redis channel (on a connection of its own, as Redis requires) for as
/// long as the app runs; `pool` publishes the beats.
pub async fn listen_redis(subscriber: Client, pool: Pool, cache: Arc<Cache>) {
    let beats = Beats::new();
    tokio::spawn({
        let beats = beats.clone();
        async move {
            loop {
                let _: Result<(), _> = pool.next().publish(CHANNEL, beats.next()).await;
                tokio::time::sleep(ROUND).await;
            }
        }
    });
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    // Once subscribed, whatever was kept before may have missed a change.
    let subscribe = || async {
        cache.forget_all();
        if let Err(e) = subscriber.subscribe(CHANNEL).await {
            tracing::warn!(error = %e, "session changes: cannot subscribe");
        }
        cache.forget_all();
    };
    subscribe().await;
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => {
                    if let Some(payload) = message.value.as_str() {
                        heard(&cache, &beats, &payload);
                    }
                }
                // Messages were dropped: anything may have changed.
                Err(_) => cache.forget_all(),
            },
            Ok(_) = reconnects.recv() => subscribe().await,
        }
    }
}

/// A payload heard: a beat of this instance confirms the cache; ids are forgotten.
fn heard(cache: &Cache, beats: &Beats, payload: &str) {
    if let Some(sent) = beats.sent(payload) {
        cache.confirm(sent);
        return;
    }
    let ids: Vec<Id> = payload.split(' ').filter_map(parse).collect();
    if !ids.is_empty() {
        cache.forget(&ids);
    }
}

fn parse(id: &str) -> Option<Id> {
    Id::from_str(id).ok()
}

fn warn_once(failing: bool, e: &dyn std::fmt::Display) -> bool {
    if !failing {
        tracing::warn!(error = %e, "session changes unheard; reading sessions from the store meanwhile");
    }
    true
}

/// This instance's beats: `~<instance>:<milliseconds since start>`, never a session id.
#[derive(Clone)]
struct Beats {
    tag: Arc<str>,
    started: Instant,
}

impl Beats {
    fn new() -> Self {
        let instance: u64 = rand_u64();
        Self {
            tag: format!("~{instance:016x}:").into(),
            started: Instant::now(),
        }
    }

    fn next(&self) -> String {
        format!("{}{}", self.tag, self.started.elapsed().as_millis())
    }

    /// When the beat `payload` was sent, if it is one of ours.
    fn sent(&self, payload: &str) -> Option<Instant> {
        let ms: u64 = payload.strip_prefix(&*self.tag)?.parse().ok()?;
        Some(self.started + Duration::from_millis(ms))
    }
}

fn rand_u64() -> u64 {
    // A session id is 128 random bits: half of a fresh one names this instance.
    (Id::default().0 as u64) ^ u64::from(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_knows_its_own_beats_and_no_others() {
        let (ours, theirs) = (Beats::new(), Beats::new());
        let beat = ours.next();
        assert!(ours.sent(&beat).is_some_and(|at| at <= Instant::now()));
        assert!(theirs.sent(&beat).is_none());
        assert!(
            parse(&beat).is_none(),
            "a beat is never read as a session id"
        );
    }

    #[test]
    fn a_heard_change_forgets_its_sessions() {
        let cache = Cache::default();
        let record = |id| tower_sessions::session::Record {
            id: Id(id),
            data: Default::default(),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
                + time::Duration::hours(1),
        };
        let beats = Beats::new();
        heard(&cache, &beats, &beats.next());
        cache.keep(&record(1), cache.before_read());
        cache.keep(&record(2), cache.before_read());
        heard(&cache, &beats, &format!("{} {}", Id(1), Id(3)));
        assert!(cache.get(&Id(1)).is_none());
        assert!(cache.get(&Id(2)).is_some());
    }
}
