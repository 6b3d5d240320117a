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

/// A PostgreSQL server of the test's own (Debian's, as `scripts/test-servers.sh` starts them),
/// on a free port, that the test can stop and start again with its data.
pub struct OwnPostgres {
    pub url: String,
    port: u16,
    dir: TempDir,
    bin: std::path::PathBuf,
}

impl OwnPostgres {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL (scripts/test.sh installs it)")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .max()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let postgres = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            dir,
            bin,
        };
        // PostgreSQL refuses to run as root: then it runs as Debian's `postgres` user.
        if postgres.as_root() {
            std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(postgres.dir.path())
                .status()
                .unwrap();
        }
        let data = postgres.data();
        postgres.pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        postgres.resume().await;
        postgres
    }

    fn as_root(&self) -> bool {
        let id = std::process::Command::new("id").arg("-u").output().unwrap();
        String::from_utf8_lossy(&id.stdout).trim() == "0"
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when the tests run as root).
    fn pg(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        };
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (fast: sessions are cut, as when it goes away).
    pub fn stop(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server (again) on its port, with its data.
    pub async fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stores on this server: users and sessions.
    pub fn stores(&self) -> Stores {
        Stores {
            database_url: self.url.clone(),
            ..Stores::sqlite()
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = std::panic::catch_unwind(|| {
            self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
        });
    }
}
