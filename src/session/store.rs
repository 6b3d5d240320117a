//! Where sessions live: in the database (SQLite or PostgreSQL; table `sessions`) or in Redis.
//! Every instance of the app that shares the store shares its sessions, and with them what makes
//! logout reach everywhere: whose each session is (by subject and by the provider's `sid`), the
//! logout tokens already used, and the token refreshes under way.
//!
//! A session ended elsewhere (sign out everywhere, back-channel logout) while a request still
//! holds it stays ended: saving only ever overwrites a session that still exists.

use std::{collections::HashMap, future::Future, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use tower_sessions::{
    cookie::time::OffsetDateTime,
    session::{Id, Record},
    session_store, ExpiredDeletion, SessionStore,
};
use tower_sessions_redis_store::{
    fred::{
        clients::Client,
        interfaces::PubsubInterface,
        prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface, Pool, SetsInterface},
        types::{Expiration, ExpireOptions, SetOptions},
    },
    RedisStore,
};
use tracing::Instrument;

use super::{cache::Cache, changes, sealing::SealingKeys};
use crate::{
    config::ConfigError,
    db::{self, on_db, Db},
    metrics::Metrics,
};

/// The session records and what the instances share beside them, with the records this
/// instance keeps in memory.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    cache: Arc<Cache>,
    /// How long a call may wait for the store: then it fails, and the request says so.
    timeout: Duration,
    /// Where failed calls are counted.
    metrics: Arc<Metrics>,
    /// What the tokens in records are sealed with.
    keys: Arc<SealingKeys>,
}

#[derive(Clone, Debug)]
enum Backend {
    Database(Db),
    /// The records, the connections for commands, and one for hearing of changes.
    Redis(RedisStore<Pool>, Pool, Client),
}

/// Redis keys of this app besides the session records (which are keyed by session id alone).
const PREFIX: &str = "leptos_oidc";

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl Store {
    /// Sessions in the app's database, in its `sessions` table.
    pub fn in_database(db: Db) -> Self {
        Self::new(Backend::Database(db))
    }

    fn new(backend: Backend) -> Self {
        Self {
            backend,
            cache: Arc::default(),
            timeout: db::DEFAULT_TIMEOUT,
            metrics: Arc::default(),
            keys: Arc::new(SealingKeys::ephemeral()),
        }
    }

    /// The tokens in records are sealed with `keys` (until then, with a key of this value's
    /// own, which no other instance has).
    pub fn with_keys(self, keys: Arc<SealingKeys>) -> Self {
        Self { keys, ..self }
    }

    /// A record as the store kept it, its tokens opened; `None` when they cannot be (their key
    /// is no longer configured).
    fn opened(&self, record: Record) -> Option<Record> {
        self.keys.open_record(record).ok()
    }

    /// Each call fails after `timeout` without an answer.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Failed calls are counted in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self { metrics, ..self }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = session_store::Result<T>>,
    ) -> session_store::Result<T> {
        let span = tracing::debug_span!("store call", store = "session_store");
        let result = db::bounded(self.timeout, call, session_store::Error::Backend)
            .instrument(span)
            .await;
        if result.is_err() {
            self.metrics.store_error("session_store");
        }
        result
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> session_store::Result<()> {
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => db.ping().await.map_err(backend),
                Backend::Redis(_, pool, _) => pool.ping::<()>(None).await.map_err(backend),
            }
        })
        .await
    }

    /// What this instance keeps in memory of sessions.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Keeps the cache true to the store, for as long as the app runs: hears of every session
    /// changed or ended on any instance.
    pub fn listen_for_changes(&self) {
        let cache = self.cache.clone();
        match &self.backend {
            Backend::Database(Db::Sqlite(sqlite)) => {
                tokio::spawn(changes::read_sqlite_log(sqlite.clone(), cache));
            }
            Backend::Database(Db::Postgres(pool)) => {
                tokio::spawn(changes::listen_postgres(pool.clone(), cache));
            }
            Backend::Redis(_, pool, subscriber) => {
                tokio::spawn(changes::listen_redis(
                    subscriber.clone(),
                    pool.clone(),
                    cache,
                ));
            }
        }
    }

    /// Sessions in Redis at `url`. Fails when Redis cannot be reached at start; later, a lost
    /// connection is re-established in the background (tried at least every half second) and a
    /// call waits at most `timeout`.
    pub async fn in_redis(url: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let failed = |problem: String| ConfigError::new("REDIS_URL", problem);
        let config = RedisConfig::from_url(url).map_err(|e| failed(e.details().to_string()))?;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|c| c.default_command_timeout = timeout)
            .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
            .set_policy(
                tower_sessions_redis_store::fred::types::config::ReconnectPolicy::new_exponential(
                    0, 50, 500, 2,
                ),
            );
        let pool = builder
            .build_pool(4)
            .map_err(|e| failed(e.details().to_string()))?;
        let subscriber = builder
            .build()
            .map_err(|e| failed(e.details().to_string()))?;
        let cannot_connect = |e: tower_sessions_redis_store::fred::error::Error| {
            failed(format!("cannot connect to Redis: {}", e.details()))
        };
        pool.init().await.map_err(cannot_connect)?;
        subscriber.init().await.map_err(cannot_connect)?;
        Ok(Self::new(Backend::Redis(
            RedisStore::new(pool.clone()),
            pool,
            subscriber,
        ))
        .with_timeout(timeout))
    }

    /// Deletes expired sessions and shared rows, every `period`, for as long as the app runs.
    /// (Redis expires its keys itself.)
    pub async fn delete_expired_forever(self, period: Duration) {
        let mut interval = tokio::time::interval(period);
        loop {
            interval.tick().await;
            if let Err(e) = self.delete_expired().await {
                tracing::warn!(error = %e, "deleting expired sessions failed");
            }
        }
    }

    /// Ends every session of this subject at this issuer, on every instance. Returns how many.
    pub async fn end_sessions_of(
        &self,
        issuer: &str,
        subject: &str,
    ) -> session_store::Result<usize> {
        let redis_key = subject_key(issuer, subject);
        self.end_owned("subject", issuer, subject, redis_key).await
    }

    /// The live sessions of a user, on every instance.
    pub async fn sessions_of(
        &self,
        issuer: &str,
        subject: &str,
    ) -> session_store::Result<Vec<Record>> {
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => {
                    let rows: Vec<(String, String, i64)> = on_db!(db, pool => sqlx::query_as(
                        "SELECT id, data, expires_at FROM sessions
                         WHERE issuer = $1 AND subject = $2 AND expires_at > $3")
                        .bind(issuer)
                        .bind(subject)
                        .bind(Utc::now().timestamp())
                        .fetch_all(pool)
                        .await
                        .map_err(backend))?;
                    let records: Vec<Record> = rows
                        .iter()
                        .filter_map(|(id, data, expires_at)| {
                            Some(decode(Id::from_str(id).ok()?, data, *expires_at))
                        })
                        .collect::<session_store::Result<_>>()?;
                    Ok(records.into_iter().filter_map(|r| self.opened(r)).collect())
                }
                Backend::Redis(records, pool, _) => {
                    let members: Vec<String> = pool
                        .smembers(subject_key(issuer, subject))
                        .await
                        .map_err(backend)?;
                    let mut live = Vec::new();
                    for id in members.iter().filter_map(|id| Id::from_str(id).ok()) {
                        let record = records.load(&id).await?;
                        live.extend(record.and_then(|r| self.opened(r)));
                    }
                    Ok(live)
                }
            }
        })
        .await
    }

    /// Ends every session that the provider's session `sid` signed in, on every instance.
    pub async fn end_provider_session(
        &self,
        issuer: &str,
        sid: &str,
    ) -> session_store::Result<usize> {
        self.end_owned("provider_sid", issuer, sid, sid_key(issuer, sid))
            .await
    }

    /// Ends the sessions of `issuer` whose `column` (subject or provider sid) is `value`: in the
    /// database by that column, in Redis by the set `redis_key`.
    async fn end_owned(
        &self,
        column: &'static str,
        issuer: &str,
        value: &str,
        redis_key: String,
    ) -> session_store::Result<usize> {
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => {
                    let delete = format!(
                        "DELETE FROM sessions WHERE issuer = $1 AND {column} = $2 RETURNING id"
                    );
                    let ended: Vec<String> = on_db!(db, pool => sqlx::query_scalar(&delete)
                        .bind(issuer)
                        .bind(value)
                        .fetch_all(pool)
                        .await
                        .map_err(backend))?;
                    // Other instances hear of it from the store; this one forgets at once.
                    let ids: Vec<Id> = ended.iter().filter_map(|id| id.parse().ok()).collect();
                    self.cache.forget(&ids);
                    Ok(ended.len())
                }
                Backend::Redis(_, pool, _) => {
                    let ids = end_indexed(pool, redis_key).await?;
                    self.changed(pool, &ids).await;
                    Ok(ids.len())
                }
            }
        })
        .await
    }

    /// Forgets the Redis sessions `ids` here, and tells the other instances.
    async fn changed(&self, pool: &Pool, ids: &[Id]) {
        if ids.is_empty() {
            return;
        }
        self.cache.forget(ids);
        let payload = ids.iter().map(Id::to_string).collect::<Vec<_>>().join(" ");
        // The other instances' beats go on confirming their caches whether or not they heard
        // this: try again a little, then say so loudly.
        for attempt in 1..=3 {
            match pool
                .next()
                .publish::<(), _, _>(changes::CHANNEL, payload.as_str())
                .await
            {
                Ok(()) => return,
                Err(e) if attempt == 3 => {
                    tracing::error!(error = %e, "a session change was not announced to the other instances");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// Records that the logout token `jti` of `issuer` has been used; `false` when it had been
    /// already (a replay). Remembered until `expires_at` (Unix seconds), the token's own end.
    pub async fn first_use_of_logout_token(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: i64,
    ) -> session_store::Result<bool> {
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => on_db!(db, pool => sqlx::query(
                    "INSERT INTO logout_tokens (issuer, jti, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING")
                    .bind(issuer)
                    .bind(jti)
                    .bind(expires_at)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
                    .map_err(backend)),
                Backend::Redis(_, pool, _) => {
                    let key = format!("{PREFIX}:jti:{issuer}\n{jti}");
                    let until = expires_at.max(Utc::now().timestamp() + 1);
                    set_if_absent(pool, key, "1", until).await
                }
            }
        })
        .await
    }

    /// Claims the refresh that uses the refresh token hashed as `key`: `true` for the one
    /// request (on any instance) that should run it; the others wait for its result.
    pub async fn claim_refresh(&self, key: &str, ttl: Duration) -> session_store::Result<bool> {
        let now = Utc::now().timestamp();
        let expires_at = now + ttl.as_secs() as i64;
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => on_db!(db, pool => sqlx::query(
                    "INSERT INTO token_refreshes (token_hash, result, expires_at) VALUES ($1, NULL, $2)
                     ON CONFLICT (token_hash) DO UPDATE SET result = NULL, expires_at = excluded.expires_at
                     WHERE token_refreshes.expires_at < $3")
                    .bind(key)
                    .bind(expires_at)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
                    .map_err(backend)),
                Backend::Redis(_, pool, _) => {
                    set_if_absent(pool, refresh_key(key), "", expires_at).await
                }
            }
        })
        .await
    }

    /// Publishes the result of a claimed refresh to the requests waiting for it (sealed: it
    /// holds the new tokens).
    pub async fn finish_refresh(&self, key: &str, result: &str) -> session_store::Result<()> {
        let result = &self.keys.seal(result, REFRESH_RESULT);
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => on_db!(db, pool => sqlx::query(
                    "UPDATE token_refreshes SET result = $2 WHERE token_hash = $1")
                    .bind(key)
                    .bind(result)
                    .execute(pool)
                    .await
                    .map(|_| ())
                    .map_err(backend)),
                Backend::Redis(_, pool, _) => pool
                    .set::<(), _, _>(
                        refresh_key(key),
                        result,
                        Some(Expiration::KEEPTTL),
                        Some(SetOptions::XX),
                        false,
                    )
                    .await
                    .map_err(backend),
            }
        })
        .await
    }

    /// The result of the refresh claimed as `key`, once it has one (and it opens).
    pub async fn refresh_result(&self, key: &str) -> session_store::Result<Option<String>> {
        let sealed = self
            .bounded(async {
                match &self.backend {
                    Backend::Database(db) => {
                        on_db!(db, pool => sqlx::query_scalar::<_, Option<String>>(
                    "SELECT result FROM token_refreshes WHERE token_hash = $1 AND expires_at >= $2")
                    .bind(key)
                    .bind(Utc::now().timestamp())
                    .fetch_optional(pool)
                    .await
                    .map(Option::flatten)
                    .map_err(backend))
                    }
                    Backend::Redis(_, pool, _) => pool
                        .get::<Option<String>, _>(refresh_key(key))
                        .await
                        .map(|r| r.filter(|r| !r.is_empty()))
                        .map_err(backend),
                }
            })
            .await?;
        Ok(sealed.and_then(|sealed| self.keys.open(&sealed, REFRESH_RESULT).ok()))
    }

    /// In Redis, notes whose the session is (sets by subject and by `sid`), until it expires.
    async fn index(pool: &Pool, record: &Record) -> session_store::Result<()> {
        let Some(owner) = owner(record) else {
            return Ok(());
        };
        let id = record.id.to_string();
        let expires_at = record.expiry_date.unix_timestamp();
        let mut keys = vec![subject_key(&owner.issuer, &owner.subject)];
        keys.extend(owner.provider_sid.map(|sid| sid_key(&owner.issuer, &sid)));
        for key in keys {
            let () = pool.sadd(&key, &id).await.map_err(backend)?;
            // The set lives as long as its longest-lived session: NX sets an expiry on a new
            // set, GT only ever lengthens it.
            for option in [ExpireOptions::NX, ExpireOptions::GT] {
                let () = pool
                    .expire_at(&key, expires_at, Some(option))
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(())
    }
}

/// The part of a session's user that says whose the session is.
#[derive(Default, Deserialize)]
struct Owner {
    issuer: String,
    subject: String,
    provider_sid: Option<String>,
}

/// Whose the session is, when a user is signed in to it.
fn owner(record: &Record) -> Option<Owner> {
    Owner::deserialize(record.data.get(super::USER)?).ok()
}

/// Runs `sql` (an insert or update of the `sessions` row) with the record's values as
/// `$1`..`$6`: id, data, end, issuer, subject, provider sid. Returns the rows written.
async fn write_row(db: &Db, sql: &str, record: &Record) -> session_store::Result<u64> {
    let owner = owner(record).unwrap_or_default();
    let data = serde_json::to_string(&record.data)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let present = |s: String| Some(s).filter(|s| !s.is_empty());
    on_db!(db, pool => sqlx::query(sql)
        .bind(record.id.to_string())
        .bind(data)
        .bind(record.expiry_date.unix_timestamp())
        .bind(present(owner.issuer))
        .bind(present(owner.subject))
        .bind(owner.provider_sid)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(backend))
}

/// Ends the Redis sessions that the set `key` lists, and the set. Returns the sessions ended.
async fn end_indexed(pool: &Pool, key: String) -> session_store::Result<Vec<Id>> {
    let members: Vec<String> = pool.smembers(&key).await.map_err(backend)?;
    let mut ended = Vec::new();
    // One at a time: each delete says whether that session still existed.
    for id in members.iter().filter_map(|id| Id::from_str(id).ok()) {
        let deleted: i64 = pool.del(id.to_string()).await.map_err(backend)?;
        if deleted == 1 {
            ended.push(id);
        }
    }
    let () = pool.del(key).await.map_err(backend)?;
    Ok(ended)
}

/// A session row's record.
fn decode(id: Id, data: &str, expires_at: i64) -> session_store::Result<Record> {
    let data: HashMap<String, Value> =
        serde_json::from_str(data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
    let expiry_date = OffsetDateTime::from_unix_timestamp(expires_at)
        .map_err(|e| session_store::Error::Decode(e.to_string()))?;
    Ok(Record {
        id,
        data,
        expiry_date,
    })
}

/// Sets a Redis key that does not exist yet, until `expires_at` (Unix seconds); `false` when
/// it existed.
async fn set_if_absent(
    pool: &Pool,
    key: String,
    value: &str,
    expires_at: i64,
) -> session_store::Result<bool> {
    pool.set::<Option<String>, _, _>(
        key,
        value,
        Some(Expiration::EXAT(expires_at)),
        Some(SetOptions::NX),
        false,
    )
    .await
    .map(|set| set.is_some())
    .map_err(backend)
}

fn subject_key(issuer: &str, subject: &str) -> String {
    format!("{PREFIX}:subject:{issuer}\n{subject}")
}

fn sid_key(issuer: &str, sid: &str) -> String {
    format!("{PREFIX}:sid:{issuer}\n{sid}")
}

/// What a sealed refresh result is, for its sealing.
const REFRESH_RESULT: &str = "refresh_result";

fn refresh_key(key: &str) -> String {
    format!("{PREFIX}:refresh:{key}")
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut sealed = self.keys.seal_record(record);
        let created = self
            .bounded(async {
                match &self.backend {
                    Backend::Database(db) => loop {
                        let insert =
                            "INSERT INTO sessions (id, data, expires_at, issuer, subject, provider_sid)
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
                        if write_row(db, insert, &sealed).await? == 1 {
                            return Ok(());
                        }
                        sealed.id = Id::default(); // taken (vanishingly rare): another
                    },
                    Backend::Redis(records, pool, _) => {
                        records.create(&mut sealed).await?;
                        Self::index(pool, &sealed).await
                    }
                }
            })
            .await;
        record.id = sealed.id;
        created
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let sealed = &self.keys.seal_record(record);
        self.bounded(async {
            match &self.backend {
                // An UPDATE: a session deleted meanwhile is not written back.
                // (Other instances hear of it from the store's triggers; this one forgets at once.)
                Backend::Database(db) => {
                    let update = "UPDATE sessions SET data = $2, expires_at = $3, issuer = $4,
                         subject = $5, provider_sid = $6 WHERE id = $1";
                    let written = write_row(db, update, sealed).await;
                    self.cache.forget(&[record.id]);
                    written.map(|_| ())
                }
                // The Redis store overwrites existing keys only, and fails (it cannot read Redis's
                // nil as "not written") when the key is gone: the session was ended meanwhile.
                Backend::Redis(records, pool, _) => match records.save(sealed).await {
                    Err(e) if records.load(&record.id).await?.is_none() => {
                        tracing::debug!(error = %e, "session ended while in use; not saved");
                        self.cache.forget(&[record.id]);
                        Ok(())
                    }
                    Err(e) => Err(e),
                    Ok(()) => {
                        self.changed(pool, &[record.id]).await;
                        Self::index(pool, record).await
                    }
                },
            }
        })
        .await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if let Some(entry) = self.cache.get(id) {
            return Ok(Some(entry.record.clone()));
        }
        let generation = self.cache.before_read();
        let record = self.read(id).await?;
        if let Some(record) = &record {
            self.cache.keep(record, generation);
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.bounded(async {
            match &self.backend {
                Backend::Database(db) => {
                    let deleted = on_db!(db, pool => sqlx::query("DELETE FROM sessions WHERE id = $1")
                        .bind(id.to_string())
                        .execute(pool)
                        .await
                        .map(|_| ())
                        .map_err(backend));
                    self.cache.forget(&[*id]);
                    deleted
                }
                // The id stays in its owner's sets until they expire: ending a session that is gone
                // already does nothing.
                Backend::Redis(records, pool, _) => {
                    records.delete(id).await?;
                    self.changed(pool, &[*id]).await;
                    Ok(())
                }
            }
        })
        .await
    }
}

impl Store {
    /// A session record as the store has it.
    async fn read(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = self
            .bounded(async {
                match &self.backend {
                    Backend::Database(db) => {
                        let row: Option<(String, i64)> = on_db!(db, pool => sqlx::query_as(
                        "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
                        .bind(id.to_string())
                        .bind(Utc::now().timestamp())
                        .fetch_optional(pool)
                        .await
                        .map_err(backend))?;
                        row.map(|(data, expires_at)| decode(*id, &data, expires_at))
                            .transpose()
                    }
                    Backend::Redis(records, _, _) => records.load(id).await,
                }
            })
            .await?;
        let Some(record) = record else {
            return Ok(None);
        };
        match self.opened(record) {
            Some(record) => Ok(Some(record)),
            // Its key is gone from SESSION_KEYS: the session ends, and its user signs in again.
            None => {
                tracing::warn!(
                    "a session ended: its tokens are sealed with a key no longer in SESSION_KEYS"
                );
                self.delete(id).await?;
                self.metrics.sessions_ended("key_gone", 1);
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        // Redis expires its keys itself.
        let Backend::Database(db) = &self.backend else {
            return Ok(());
        };
        let now = Utc::now().timestamp();
        // SQLite alone logs session changes in a table (PostgreSQL notifies them).
        let log = matches!(db, Db::Sqlite(_)).then_some("session_changes");
        let tables = ["sessions", "logout_tokens", "token_refreshes"];
        for table in tables.into_iter().chain(log) {
            let deleted = on_db!(db, pool => sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
                .map_err(backend))?;
            if table == "sessions" && deleted > 0 {
                self.metrics.sessions_ended("expiry", deleted as usize);
            }
        }
        Ok(())
    }
}
