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

/// A Redis server of the test's own, on a free port, that the test can stop and start again (on
/// the same port, as a restarted server would be).
pub struct OwnRedis {
    pub url: String,
    port: u16,
    dir: TempDir,
    server: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            dir: tempfile::tempdir().unwrap(),
            server: None,
        };
        redis.resume().await;
        redis
    }

    /// Stores on this server for sessions, SQLite for users.
    pub fn stores(&self) -> Stores {
        Stores {
            redis_url: Some(self.url.clone()),
            ..Stores::sqlite()
        }
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill().unwrap();
            server.wait().unwrap();
        }
    }

    /// Starts the server again on its port, with what it kept on disk (append-only file).
    pub async fn resume(&mut self) {
        let server = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        self.server = Some(server);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
