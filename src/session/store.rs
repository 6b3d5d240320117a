//! Where sessions live: in the database (SQLite or PostgreSQL) or in Redis. Every instance of
//! the app that shares the store shares its sessions, and with them what makes logout reach
//! everywhere: an index of whose each session is (by subject and by the provider's `sid`), the
//! logout tokens already used, and the token refreshes under way.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use tower_sessions::{
    session::{Id, Record},
    session_store, ExpiredDeletion, SessionStore,
};
use tower_sessions_redis_store::{
    fred::{
        prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface, Pool, SetsInterface},
        types::{Expiration, ExpireOptions, SetOptions},
    },
    RedisStore,
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::db::{on_db, Db};

/// The session records and what the instances share beside them.
#[derive(Clone, Debug)]
pub struct Store {
    records: Records,
    shared: Shared,
}

#[derive(Clone, Debug)]
enum Records {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore<Pool>),
}

#[derive(Clone, Debug)]
enum Shared {
    Db(Db),
    Redis(Pool),
}

/// Redis keys of this app besides the session records (which are keyed by session id alone).
const PREFIX: &str = "leptos_oidc";

/// The part of a session's user that says whose the session is.
#[derive(Deserialize)]
struct Owner {
    issuer: String,
    subject: String,
    provider_sid: Option<String>,
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl Store {
    /// Sessions in the app's database, in a table of their own.
    pub async fn in_database(db: Db) -> Result<Self, String> {
        let records = match &db {
            Db::Sqlite(pool) => {
                let store = SqliteStore::new(pool.clone());
                store.migrate().await.map(|_| Records::Sqlite(store))
            }
            Db::Postgres(pool) => {
                let store = PostgresStore::new(pool.clone());
                store.migrate().await.map(|_| Records::Postgres(store))
            }
        }
        .map_err(|e| format!("session store migration failed: {e}"))?;
        Ok(Self {
            records,
            shared: Shared::Db(db),
        })
    }

    /// Sessions in Redis at `url`. Fails when Redis cannot be reached at start; later, a lost
    /// connection is re-established in the background and a command waits at most 5 s.
    pub async fn in_redis(url: &str) -> Result<Self, String> {
        let config =
            RedisConfig::from_url(url).map_err(|e| format!("REDIS_URL: {}", e.details()))?;
        let pool = Builder::from_config(config)
            .with_performance_config(|c| c.default_command_timeout = Duration::from_secs(5))
            .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
            .set_policy(
                tower_sessions_redis_store::fred::types::config::ReconnectPolicy::new_exponential(
                    0, 100, 5_000, 2,
                ),
            )
            .build_pool(4)
            .map_err(|e| format!("REDIS_URL: {}", e.details()))?;
        pool.init()
            .await
            .map_err(|e| format!("REDIS_URL: cannot connect to Redis: {}", e.details()))?;
        Ok(Self {
            records: Records::Redis(RedisStore::new(pool.clone())),
            shared: Shared::Redis(pool),
        })
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
        let ids = match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query_scalar::<_, String>(
                "SELECT session_id FROM session_owners WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_all(pool)
                .await
                .map_err(backend)),
            Shared::Redis(pool) => pool
                .smembers(subject_key(issuer, subject))
                .await
                .map_err(backend),
        }?;
        self.end_sessions(ids).await
    }

    /// Ends every session that the provider's session `sid` signed in, on every instance.
    pub async fn end_provider_session(
        &self,
        issuer: &str,
        sid: &str,
    ) -> session_store::Result<usize> {
        let ids = match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query_scalar::<_, String>(
                "SELECT session_id FROM session_owners WHERE issuer = $1 AND provider_sid = $2")
                .bind(issuer)
                .bind(sid)
                .fetch_all(pool)
                .await
                .map_err(backend)),
            Shared::Redis(pool) => pool.smembers(sid_key(issuer, sid)).await.map_err(backend),
        }?;
        self.end_sessions(ids).await
    }

    async fn end_sessions(&self, ids: Vec<String>) -> session_store::Result<usize> {
        let mut ended = 0;
        for id in ids.iter().filter_map(|id| Id::from_str(id).ok()) {
            if self.records_exist(&id).await? {
                ended += 1;
            }
            self.delete(&id).await?;
        }
        Ok(ended)
    }

    /// Records that the logout token `jti` of `issuer` has been used; `false` when it had been
    /// already (a replay). Remembered until `expires_at` (Unix seconds), the token's own end.
    pub async fn first_use_of_logout_token(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: i64,
    ) -> session_store::Result<bool> {
        match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query(
                "INSERT INTO logout_tokens (issuer, jti, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING")
                .bind(issuer)
                .bind(jti)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)),
            Shared::Redis(pool) => pool
                .set::<Option<String>, _, _>(
                    format!("{PREFIX}:jti:{issuer}\n{jti}"),
                    1,
                    Some(Expiration::EXAT(expires_at.max(Utc::now().timestamp() + 1))),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map(|set| set.is_some())
                .map_err(backend),
        }
    }

    /// Claims the refresh that uses the refresh token hashed as `key`: `true` for the one
    /// request (on any instance) that should run it; the others wait for its result.
    pub async fn claim_refresh(&self, key: &str, ttl: Duration) -> session_store::Result<bool> {
        let expires_at = Utc::now().timestamp() + ttl.as_secs() as i64;
        match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query(
                "INSERT INTO token_refreshes (token_hash, result, expires_at) VALUES ($1, NULL, $2)
                 ON CONFLICT (token_hash) DO UPDATE SET result = NULL, expires_at = excluded.expires_at
                 WHERE token_refreshes.expires_at < $3")
                .bind(key)
                .bind(expires_at)
                .bind(Utc::now().timestamp())
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)),
            Shared::Redis(pool) => pool
                .set::<Option<String>, _, _>(
                    refresh_key(key),
                    "",
                    Some(Expiration::EXAT(expires_at)),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map(|set| set.is_some())
                .map_err(backend),
        }
    }

    /// Publishes the result of a claimed refresh to the requests waiting for it.
    pub async fn finish_refresh(&self, key: &str, result: &str) -> session_store::Result<()> {
        match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query(
                "UPDATE token_refreshes SET result = $2 WHERE token_hash = $1")
                .bind(key)
                .bind(result)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(backend)),
            Shared::Redis(pool) => pool
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
    }

    /// The result of the refresh claimed as `key`, once it has one.
    pub async fn refresh_result(&self, key: &str) -> session_store::Result<Option<String>> {
        match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query_scalar::<_, Option<String>>(
                "SELECT result FROM token_refreshes WHERE token_hash = $1 AND expires_at >= $2")
                .bind(key)
                .bind(Utc::now().timestamp())
                .fetch_optional(pool)
                .await
                .map(Option::flatten)
                .map_err(backend)),
            Shared::Redis(pool) => pool
                .get::<Option<String>, _>(refresh_key(key))
                .await
                .map(|r| r.filter(|r| !r.is_empty()))
                .map_err(backend),
        }
    }

    /// Notes whose the session is, when a user is signed in to it, until it expires.
    async fn index(&self, record: &Record) -> session_store::Result<()> {
        let Some(owner) = owner(record) else {
            return Ok(());
        };
        let id = record.id.to_string();
        let expires_at = record.expiry_date.unix_timestamp();
        match &self.shared {
            Shared::Db(db) => on_db!(db, pool => sqlx::query(
                "INSERT INTO session_owners (session_id, issuer, subject, provider_sid, expires_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (session_id) DO UPDATE SET expires_at = excluded.expires_at")
                .bind(&id)
                .bind(&owner.issuer)
                .bind(&owner.subject)
                .bind(&owner.provider_sid)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(backend)),
            Shared::Redis(pool) => {
                let mut keys = vec![subject_key(&owner.issuer, &owner.subject)];
                keys.extend(owner.provider_sid.map(|sid| sid_key(&owner.issuer, &sid)));
                for key in keys {
                    let () = pool.sadd(&key, &id).await.map_err(backend)?;
                    // The set lives as long as its longest-lived session: NX sets an expiry on
                    // a new set, GT only ever lengthens it.
                    let () = pool
                        .expire_at(&key, expires_at, Some(ExpireOptions::NX))
                        .await
                        .map_err(backend)?;
                    let () = pool
                        .expire_at(&key, expires_at, Some(ExpireOptions::GT))
                        .await
                        .map_err(backend)?;
                }
                Ok(())
            }
        }
    }

    async fn records_exist(&self, id: &Id) -> session_store::Result<bool> {
        Ok(self.records_load(id).await?.is_some())
    }

    async fn records_load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match &self.records {
            Records::Sqlite(store) => store.load(id).await,
            Records::Postgres(store) => store.load(id).await,
            Records::Redis(store) => store.load(id).await,
        }
    }
}

/// Whose the session is, when a user is signed in to it.
fn owner(record: &Record) -> Option<Owner> {
    Owner::deserialize(record.data.get(super::USER)?).ok()
}

/// Whether the session still has its owner row, that is, was not ended meanwhile.
async fn owned(db: &Db, id: &Id) -> session_store::Result<bool> {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM session_owners WHERE session_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await)
    .map(|n| n > 0)
    .map_err(backend)
}

fn subject_key(issuer: &str, subject: &str) -> String {
    format!("{PREFIX}:subject:{issuer}\n{subject}")
}

fn sid_key(issuer: &str, sid: &str) -> String {
    format!("{PREFIX}:sid:{issuer}\n{sid}")
}

fn refresh_key(key: &str) -> String {
    format!("{PREFIX}:refresh:{key}")
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match &self.records {
            Records::Sqlite(store) => store.create(record).await,
            Records::Postgres(store) => store.create(record).await,
            Records::Redis(store) => store.create(record).await,
        }?;
        self.index(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        // A session ended elsewhere (sign out everywhere, back-channel logout) while this request
        // ran must stay ended. The database stores would write it back, so a signed-in session
        // whose owner row is gone is not saved. (The Redis store only overwrites existing keys.)
        if let Shared::Db(db) = &self.shared {
            if owner(record).is_some() && !owned(db, &record.id).await? {
                return Ok(());
            }
        }
        match &self.records {
            Records::Sqlite(store) => store.save(record).await,
            Records::Postgres(store) => store.save(record).await,
            // The Redis store fails (it cannot read Redis's nil as "not written") when the key
            // is gone: then the session was ended meanwhile, and stays so.
            Records::Redis(store) => match store.save(record).await {
                Err(e) if !self.records_exist(&record.id).await? => {
                    tracing::debug!(error = %e, "session ended while in use; not saved");
                    return Ok(());
                }
                saved => saved,
            },
        }?;
        self.index(record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.records_load(id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        // The owner row first: from then on, a request still holding the session cannot save it
        // back (see `save`). In Redis, the id stays in its owner's sets until they expire: ending
        // a session that is gone already does nothing.
        if let Shared::Db(db) = &self.shared {
            on_db!(db, pool => sqlx::query("DELETE FROM session_owners WHERE session_id = $1")
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(|_| ()))
            .map_err(backend)?;
        }
        match &self.records {
            Records::Sqlite(store) => store.delete(id).await,
            Records::Postgres(store) => store.delete(id).await,
            Records::Redis(store) => store.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match &self.records {
            Records::Sqlite(store) => store.delete_expired().await?,
            Records::Postgres(store) => store.delete_expired().await?,
            Records::Redis(_) => {}
        }
        if let Shared::Db(db) = &self.shared {
            let now = Utc::now().timestamp();
            for table in ["session_owners", "logout_tokens", "token_refreshes"] {
                on_db!(db, pool => sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|_| ()))
                .map_err(backend)?;
            }
        }
        Ok(())
    }
}
