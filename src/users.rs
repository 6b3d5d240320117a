//! Users: one record per identity (issuer and subject), created at the first sign-in and
//! updated at each later one.

use std::{future::Future, sync::Arc, time::Duration};

use chrono::Utc;
use serde_json::Value;
use tracing::Instrument;

use crate::{
    db::{self, on_db, Db},
    metrics::Metrics,
    oidc::VerifiedUser,
};

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

#[derive(Clone, Debug)]
pub struct Users {
    db: Db,
    timeout: Duration,
    /// Where failed calls are counted.
    metrics: Arc<Metrics>,
}

impl Users {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            timeout: db::DEFAULT_TIMEOUT,
            metrics: Arc::default(),
        }
    }

    /// Failed calls are counted in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self { metrics, ..self }
    }

    /// Each call fails after `timeout` without an answer.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let span = tracing::debug_span!("store call", store = "database");
        let result = db::bounded(self.timeout, call, |why| {
            sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
        })
        .instrument(span)
        .await;
        if result.is_err() {
            self.metrics.store_error("database");
        }
        result
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
        self.bounded(async {
            on_db!(&self.db, pool => sqlx::query_as::<_, User>(
            "INSERT INTO users (issuer, subject, email, name, claims, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
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
        .fetch_one(pool)
        .await)
        })
        .await
    }

    pub async fn find(&self, issuer: &str, subject: &str) -> Result<Option<User>, sqlx::Error> {
        self.bounded(async { on_db!(&self.db, pool => sqlx::query_as("SELECT * FROM users WHERE issuer = $1 AND subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(pool)
            .await) })
        .await
    }

    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        self.bounded(async {
            on_db!(&self.db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await)
        })
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
            provider: "idp".into(),
            issuer: "https://idp.example".into(),
            subject: subject.into(),
            claims,
            id_token: "header.payload.signature".into(),
            auth_time: None,
            acr: None,
            session_id: None,
            access_token: "access".into(),
            access_expires_at: None,
            refresh_token: None,
            dpop_key: None,
        }
    }

    async fn users() -> (Users, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}/nested/users.db", dir.path().display());
        (Users::new(crate::db::open(&url).await.unwrap()), dir)
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
        let id = Users::new(crate::db::open(&url).await.unwrap())
            .upsert(&verified("bob", "Bob"))
            .await
            .unwrap()
            .id;
        let reopened = Users::new(crate::db::open(&url).await.unwrap());
        let bob = reopened
            .find("https://idp.example", "bob")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.id, id);
    }
}
