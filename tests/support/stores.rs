//! Where test apps keep users and sessions: a SQLite file of their own, or real PostgreSQL and
//! Redis servers that `scripts/test-servers.sh` starts.

use std::sync::Arc;

use tempfile::TempDir;
use url::Url;

use super::unique_name;

/// Where an app keeps users and sessions. Apps started on the same `Stores` share them, as
/// instances behind a load balancer do.
#[derive(Clone)]
pub struct Stores {
    pub database_url: String,
    pub redis_url: Option<String>,
    pub(super) dir: Arc<TempDir>,
}

/// A server the test scripts start (`scripts/test-servers.sh`); tests that need one fail loudly
/// without it rather than skip.
fn test_server(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests with scripts/test.sh, which starts Redis and PostgreSQL")
    })
}

impl Stores {
    /// The embedded default: one SQLite file for users and sessions.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            database_url: format!("sqlite:{}/app.db", dir.path().display()),
            redis_url: None,
            dir: Arc::new(dir),
        }
    }

    /// A fresh PostgreSQL database of its own, for users and sessions.
    pub async fn postgres() -> Self {
        use sqlx::{Connection, Executor};
        let admin_url = test_server("TEST_POSTGRES_URL");
        let name = format!("leptos_oidc_{}", unique_name());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Self {
            database_url: url.into(),
            ..Self::sqlite()
        }
    }

    /// PostgreSQL for users, Redis for sessions: the multi-instance set-up of the README.
    pub async fn postgres_and_redis() -> Self {
        Self {
            redis_url: Some(test_server("TEST_REDIS_URL")),
            ..Self::postgres().await
        }
    }

    /// SQLite for users, Redis for sessions.
    pub fn sqlite_and_redis() -> Self {
        Self {
            redis_url: Some(test_server("TEST_REDIS_URL")),
            ..Self::sqlite()
        }
    }
}
