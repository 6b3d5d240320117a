//! Sign-ins waiting for the provider's answer, kept in the browser: one encrypted cookie per
//! sign-in (AES-256-GCM under the app's key, the cookie's name bound in), so that starting a
//! sign-in stores nothing on the server, however many anonymous visitors start one.
//!
//! A cookie per sign-in, not one holding a list: two tabs starting sign-ins at once would
//! overwrite each other's list. They stay bounded: at most [`MAX_PENDING`] per browser (the
//! oldest gives way), each for [`PENDING_TTL_SECONDS`], each used once (the callback removes it).

use axum::http::HeaderMap;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::Utc;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::cookie::{time::Duration, Cookie, CookieJar, Key, SameSite};

use crate::{
    config::ConfigError,
    db::{on_db, Db},
    oidc::PendingSignIn,
};

/// Sign-ins one browser may have open at once (one per tab, say); the oldest gives way.
pub const MAX_PENDING: usize = 5;
/// How long the provider's answer to a sign-in may take (login, consent, a coffee).
pub const PENDING_TTL_SECONDS: i64 = 10 * 60;

/// Seals and opens pending sign-in cookies.
#[derive(Clone)]
pub struct PendingSignIns {
    key: Key,
    secure: bool,
}

impl std::fmt::Debug for PendingSignIns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSignIns") // never the key
    }
}

impl PendingSignIns {
    /// With the app's key from the database, made there at the first start: every instance
    /// sharing the database opens the cookies that any of them sealed.
    pub async fn from_database(db: &Db, secure: bool) -> Result<Self, ConfigError> {
        let fresh = URL_SAFE_NO_PAD.encode(Key::generate().master());
        let stored: String = async {
            on_db!(db, pool => sqlx::query("INSERT INTO app_keys (name, key) VALUES ('pending_sign_ins', $1) ON CONFLICT DO NOTHING")
                .bind(&fresh)
                .execute(pool)
                .await
                .map(|_| ()))?;
            on_db!(db, pool => sqlx::query_scalar("SELECT key FROM app_keys WHERE name = 'pending_sign_ins'")
                .fetch_one(pool)
                .await)
        }
        .await
        .map_err(|e: sqlx::Error| {
            ConfigError::new(
                "DATABASE_URL",
                format!("the app's key could not be read: {e}"),
            )
        })?;
        let key = URL_SAFE_NO_PAD
            .decode(stored)
            .ok()
            .and_then(|bytes| Key::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| {
                ConfigError::new("DATABASE_URL", "the app's key in the database is damaged")
            })?;
        Ok(Self { key, secure })
    }

    /// The cookies to set for a new pending sign-in: its own, and removals for the expired ones
    /// and the oldest beyond [`MAX_PENDING`].
    pub fn add(&self, request: &HeaderMap, pending: &PendingSignIn) -> Vec<Cookie<'static>> {
        let now = Utc::now().timestamp_millis();
        let mut set = Vec::new();
        let mut open: Vec<(i64, String)> = Vec::new();
        for cookie in pending_cookies(request, self.prefix()) {
            let name = cookie.name().to_owned();
            match self.open(cookie).filter(|p| fresh(p, now)) {
                Some(p) => open.push((p.started_ms, name)),
                None => set.push(self.removal(name)),
            }
        }
        open.sort();
        let excess = (open.len() + 1).saturating_sub(MAX_PENDING);
        set.extend(open.drain(..excess).map(|(_, name)| self.removal(name)));

        let value = serde_json::to_string(pending).expect("a pending sign-in serializes");
        let name = name_for(self.prefix(), &pending.state);
        let cookie = self.cookie(name, value, PENDING_TTL_SECONDS);
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(cookie);
        set.extend(jar.delta().cloned());
        set
    }

    /// Takes the pending sign-in that `state` names, once: the removal of its cookie comes with
    /// it, to be set whatever happens next.
    pub fn take(
        &self,
        request: &HeaderMap,
        state: &str,
    ) -> (Option<PendingSignIn>, Option<Cookie<'static>>) {
        let name = name_for(self.prefix(), state);
        let Some(cookie) = pending_cookies(request, self.prefix()).find(|c| c.name() == name)
        else {
            return (None, None);
        };
        let now = Utc::now().timestamp_millis();
        let pending = self
            .open(cookie)
            .filter(|p| bool::from(p.state.as_bytes().ct_eq(state.as_bytes())) && fresh(p, now));
        (pending, Some(self.removal(name)))
    }

    /// A pending sign-in cookie opened: `None` when forged, damaged or sealed with another key.
    fn open(&self, cookie: Cookie<'static>) -> Option<PendingSignIn> {
        CookieJar::new()
            .private(&self.key)
            .decrypt(cookie)
            .and_then(|c| serde_json::from_str(c.value()).ok())
    }

    fn cookie(&self, name: String, value: String, max_age: i64) -> Cookie<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            // Lax: sent on the provider's top-level redirect back to the callback.
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(Duration::seconds(max_age))
            .build()
    }

    /// What this app's pending sign-in cookies are named with.
    fn prefix(&self) -> &'static str {
        super::CookieNames::new(self.secure).pending_prefix
    }

    fn removal(&self, name: String) -> Cookie<'static> {
        self.cookie(name, String::new(), 0)
    }
}

/// This browser's pending sign-in cookies, still sealed.
fn pending_cookies<'r>(
    request: &'r HeaderMap,
    prefix: &'static str,
) -> impl Iterator<Item = Cookie<'static>> + 'r {
    super::request_cookies(request).filter(move |cookie| cookie.name().starts_with(prefix))
}

/// Whether a pending sign-in is still within its time (Unix milliseconds `now`).
fn fresh(pending: &PendingSignIn, now: i64) -> bool {
    now - pending.started_ms < PENDING_TTL_SECONDS * 1000
}

/// A cookie name for the sign-in with `state`: a hash, so the name carries nothing of it.
fn name_for(prefix: &str, state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&digest[..12]))
}
