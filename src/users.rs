//! Users: one record per identity (issuer and subject), created at the first sign-in and
//! updated at each later one. The database itself (SQLite, migrations) opens here too.

use std::{path::Path, str::FromStr, time::Duration};

use chrono::Utc;
use serde_json::Value;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};

use crate::oidc::VerifiedUser;

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The last sign-in's claims, a JSON object.
    pub claims: String,
    pub created_at: i64,
    pub last_login_at: i64,
    pub login_count: i64,
}

#[derive(Clone)]
pub struct Users {
    pool: SqlitePool,
}

/// Opens (creating if needed) the SQLite database at `url` and brings its schema up to date.
pub async fn open_database(url: &str) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("DATABASE_URL: {e}"))?
        .create_if_missing(true)
        // WAL lets readers go on while a sign-in writes.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = Path::new(options.get_filename()).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("DATABASE_URL: cannot create {}: {e}", dir.display()))?;
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|e| format!("DATABASE_URL: cannot open {url}: {e}"))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| format!("database migration failed: {e}"))?;
    Ok(pool)
}

impl Users {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Creates the user at their first sign-in; updates their claims at each later one.
    pub async fn upsert(&self, verified: &VerifiedUser) -> Result<User, sqlx::Error> {
        let text = |name: &str| {
            verified
                .claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let claims = serde_json::to_string(&verified.claims).unwrap_or_else(|_| "{}".into());
        let now = Utc::now().timestamp();
        sqlx::query_as::<_, User>(
            "INSERT INTO users (issuer, subject, email, name, claims, created_at, last_login_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (issuer, subject) DO UPDATE SET
                 email = excluded.email,
                 name = excluded.name,
                 claims = excluded.claims,
                 last_login_at = excluded.last_login_at,
                 login_count = users.login_count + 1
             RETURNING *",
        )
        .bind(&verified.issuer)
        .bind(&verified.subject)
        .bind(text("email"))
        .bind(text("name"))
        .bind(claims)
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn find(&self, issuer: &str, subject: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM users WHERE issuer = ?1 AND subject = ?2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn verified(subject: &str, name: &str) -> VerifiedUser {
        let claims: BTreeMap<String, Value> = [
            ("name".to_owned(), Value::from(name)),
            (
                "email".to_owned(),
                Value::from(format!("{subject}@example.com")),
            ),
        ]
        .into();
        VerifiedUser {
            issuer: "https://idp.example".into(),
            subject: subject.into(),
            claims,
            id_token: "header.payload.signature".into(),
            session_id: None,
        }
    }

    async fn users() -> (Users, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}/nested/users.db", dir.path().display());
        (Users::new(open_database(&url).await.unwrap()), dir)
    }

    #[tokio::test]
    async fn first_sign_in_creates_the_user_and_later_ones_update_it() {
        let (users, _dir) = users().await;
        let first = users.upsert(&verified("alice", "Alice")).await.unwrap();
        assert_eq!(
            (first.login_count, first.name.as_deref()),
            (1, Some("Alice"))
        );
        assert_eq!(first.email.as_deref(), Some("alice@example.com"));

        let again = users
            .upsert(&verified("alice", "Alice Liddell"))
            .await
            .unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(again.login_count, 2);
        assert_eq!(again.name.as_deref(), Some("Alice Liddell"));
        assert_eq!(again.created_at, first.created_at);
        assert_eq!(users.count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_same_subject_at_another_issuer_is_another_user() {
        let (users, _dir) = users().await;
        let a = users.upsert(&verified("alice", "Alice")).await.unwrap();
        let mut other = verified("alice", "Mallory");
        other.issuer = "https://other-idp.example".into();
        let b = users.upsert(&other).await.unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(users.count().await.unwrap(), 2);
        let found = users
            .find("https://idp.example", "alice")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.name.as_deref(), Some("Alice"));
        assert!(users
            .find("https://idp.example", "bob")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn users_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}/users.db", dir.path().display());
        let id = Users::new(open_database(&url).await.unwrap())
            .upsert(&verified("bob", "Bob"))
            .await
            .unwrap()
            .id;
        let reopened = Users::new(open_database(&url).await.unwrap());
        let bob = reopened
            .find("https://idp.example", "bob")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.id, id);
    }
}
