//! The database: SQLite (the embedded default) or PostgreSQL, as `DATABASE_URL` says, opened
//! with its schema brought up to date. Users live here, and sessions unless Redis keeps them.

use std::{future::Future, path::Path, str::FromStr, sync::Arc, time::Duration};

use crate::config::ConfigError;
use sqlx::{
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
    Connection, PgPool, SqliteConnection,
};
use tokio::sync::{Mutex, MutexGuard};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(Sqlite),
    Postgres(PgPool),
}

/// The SQLite database: one connection, kept open and used by one statement at a time. SQLite
/// commits one writer at a time anyway, and a connection's page cache is emptied whenever
/// another connection writes: with one, it stays warm. Not through sqlx's pool, which pings a
/// connection each time it is given back: one more hand-off to sqlx's worker thread for every
/// statement, which a local file does not need (no statement here leaves a transaction open).
#[derive(Clone, Debug)]
pub struct Sqlite(Arc<Mutex<SqliteConnection>>);

impl Sqlite {
    /// The connection, once no other statement is using it.
    pub async fn connection(&self) -> MutexGuard<'_, SqliteConnection> {
        self.0.lock().await
    }
}

/// Runs one query on whichever database is open (`$pool` is SQLite's connection or
/// PostgreSQL's pool). The SQL is written once, in what both dialects share: `$1` parameters,
/// `ON CONFLICT`, `RETURNING`.
macro_rules! on_db {
    ($db:expr, $pool:ident => $query:expr) => {
        match $db {
            $crate::db::Db::Sqlite(sqlite) => {
                let mut connection = sqlite.connection().await;
                let $pool = &mut *connection;
                $query
            }
            $crate::db::Db::Postgres($pool) => $query,
        }
    };
}
pub(crate) use on_db;

/// How long a call to the database or the session store may take by default (`STORE_TIMEOUT_MS`):
/// a store that does not answer in this time is taken as unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// `call`, or `timed_out()` when it has not finished within `bound`: no request waits longer for
/// a store that does not answer.
pub async fn bounded<T, E>(
    bound: Duration,
    call: impl Future<Output = Result<T, E>>,
    timed_out: impl FnOnce(String) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(bound, call).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(format!(
            "no answer within {} ms",
            bound.as_millis()
        ))),
    }
}

/// Opens the database at `url` (`sqlite:path` or `postgres://...`), creating a SQLite file and
/// its folder if needed, and runs the migrations for its kind.
pub async fn open(url: &str) -> Result<Db, ConfigError> {
    let failed = |problem: String| ConfigError::new("DATABASE_URL", problem);
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Calls are bounded by `STORE_TIMEOUT_MS`; this bounds the connecting at start.
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| failed(format!("cannot connect to PostgreSQL: {e}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| failed(format!("the database migration failed: {e}")))?;
        return Ok(Db::Postgres(pool));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| failed(e.to_string()))?
        .create_if_missing(true)
        // WAL lets readers go on while a sign-in writes.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = Path::new(options.get_filename()).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| failed(format!("cannot open {url}: {e}")))?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut connection)
        .await
        .map_err(|e| failed(format!("the database migration failed: {e}")))?;
    Ok(Db::Sqlite(Sqlite(Arc::new(Mutex::new(connection)))))
}

impl Db {
    /// Whether the database answers a query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }
}
