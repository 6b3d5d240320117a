//! Sessions: the cookie, and the signed-in user with their tokens and their idle and absolute
//! lifetimes. Where sessions are kept, and how they are ended from anywhere: [`store`], their
//! tokens sealed on the way: [`sealing`]. The sign-ins waiting for the provider's answer live in
//! the browser: [`pending`].

mod cache;
mod changes;
mod pending;
mod sealing;
mod store;
pub use cache::{Cache, Page};
pub use pending::{PendingSignIns, MAX_PENDING, PENDING_TTL_SECONDS};
pub use sealing::{development_key, SealingKeys};
pub use store::Store;

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap};
use chrono::{TimeZone, Utc};
use openidconnect::CsrfToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tower_sessions::{
    cookie::{Cookie, SameSite},
    session::{Error, Id, Record},
    Expiry, Session, SessionManagerLayer,
};

use crate::{
    config::SessionConfig,
    metrics::Metrics,
    oidc::{Refreshed, VerifiedUser},
    users::User,
    visitor::{Profile, SessionSummary},
};

/// The names of the app's cookies. Served over https they take the `__Host-` prefix, which a
/// browser accepts only on a cookie set over https with `Secure`, `Path=/` and no `Domain`: no
/// other host of the domain, and no plain-http answer, can set or shadow them. Over plain http
/// (development) browsers refuse such names, and the plain ones are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieNames {
    pub session: &'static str,
    /// The provider this browser signed in with last (the sign-in page lists it first).
    pub last_provider: &'static str,
    /// Each pending sign-in's cookie is this and a hash of its `state`.
    pub pending_prefix: &'static str,
}

impl CookieNames {
    pub const fn new(secure: bool) -> Self {
        if secure {
            Self {
                session: "__Host-leptos_oidc_session",
                last_provider: "__Host-leptos_oidc_last_provider",
                pending_prefix: "__Host-leptos_oidc_signin_",
            }
        } else {
            Self {
                session: "leptos_oidc_session",
                last_provider: "leptos_oidc_last_provider",
                pending_prefix: "leptos_oidc_signin_",
            }
        }
    }
}
const USER: &str = "user";
const REFUSED: &str = "refused";
/// How long a refused sign-in is kept for signing out at its provider.
const REFUSED_FOR: time::Duration = time::Duration::minutes(10);

/// The session cookie: HttpOnly, SameSite=Lax (Strict would drop the cookie on the provider's
/// cross-site redirect back), Secure when the app is served over https.
pub fn layer(store: Store, config: &SessionConfig) -> SessionManagerLayer<Store> {
    SessionManagerLayer::new(store)
        .with_name(CookieNames::new(config.secure).session)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure)
        .with_expiry(Expiry::OnInactivity(duration(config.idle)))
}

fn duration(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// The signed-in user, as the session keeps them (server side only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionUser {
    pub user_id: i64,
    /// The id of the provider that signed this session in (empty in sessions from before there
    /// were several: their provider is found by issuer).
    #[serde(default)]
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub claims: BTreeMap<String, Value>,
    /// For `id_token_hint` at sign-out; never sent to the browser.
    pub id_token: String,
    pub provider_sid: Option<String>,
    /// The provider's tokens: server side only.
    #[serde(default)]
    pub access_token: String,
    /// Unix seconds; `None` when the provider did not say.
    #[serde(default)]
    pub access_expires_at: Option<i64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// With DPoP: the key the access token is bound to (see `oidc::dpop`); sealed like the
    /// tokens.
    #[serde(default)]
    pub dpop_key: Option<String>,
    /// When the tokens were last obtained (Unix seconds).
    #[serde(default)]
    pub tokens_at: i64,
    pub csrf_token: String,
    /// Unix seconds.
    pub signed_in_at: i64,
    pub last_seen: i64,
    /// When the user last entered their credentials at the provider (Unix seconds), and how
    /// (`acr`), as its ID token said: what a step-up is judged by.
    #[serde(default)]
    pub auth_time: Option<i64>,
    #[serde(default)]
    pub acr: Option<String>,
    /// The browser's User-Agent at sign-in (shortened): what "your sessions" names it by.
    #[serde(default)]
    pub user_agent: Option<String>,
}

impl SessionUser {
    /// Whether the user entered their credentials at the provider within `max_age`.
    pub fn authenticated_within(&self, max_age: std::time::Duration) -> bool {
        self.auth_time
            .is_some_and(|at| Utc::now().timestamp() - at <= max_age.as_secs() as i64)
    }

    /// When the session ends (Unix seconds) unless used before: its idle or its absolute
    /// lifetime, whichever comes first.
    fn ends_at(&self, config: &SessionConfig) -> i64 {
        (self.last_seen + config.idle.as_secs() as i64)
            .min(self.signed_in_at + config.absolute.as_secs() as i64)
    }

    /// When a request should note it was used (Unix seconds): the store only writes a changed
    /// session, so being active is noted now and then (a tenth of the idle time), not on every
    /// request.
    fn touch_at(&self, config: &SessionConfig) -> i64 {
        self.last_seen + config.idle.as_secs() as i64 / 10 + 1
    }

    /// What pages see of the user; `provider` is the label of the provider that signed them in.
    pub fn profile(&self, config: &SessionConfig, provider: &str) -> Profile {
        let text = |name: &str| match self.claims.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let ends_at = self.ends_at(config);
        Profile {
            name: text("name")
                .or_else(|| text("preferred_username"))
                .or_else(|| text("email"))
                .unwrap_or_else(|| self.subject.clone()),
            email: text("email"),
            provider: provider.to_owned(),
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            claims: self
                .claims
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (name.clone(), value)
                })
                .collect(),
            signed_in_at: format_time(self.signed_in_at),
            session_ends_at: format_time(ends_at),
            access_token_expires_at: self.access_expires_at.map(format_time),
            access_token_renews: self.refresh_token.is_some(),
            csrf_token: self.csrf_token.clone(),
        }
    }

    /// What "your sessions" shows of this session (`id`); `current` when it is the browser's
    /// looking, `provider` the label of the provider that signed it in.
    pub fn summary(&self, id: &Id, current: bool, provider: &str) -> SessionSummary {
        SessionSummary {
            handle: handle(id),
            browser: self
                .user_agent
                .as_deref()
                .and_then(browser)
                .unwrap_or_else(|| "Unknown browser".into()),
            provider: provider.to_owned(),
            started: format_time(self.signed_in_at),
            last_used: format_time(self.last_seen),
            current,
        }
    }
}

/// The longest User-Agent kept: enough for every browser's, not a place to store data.
const MAX_USER_AGENT: usize = 256;

/// "Firefox 132 on Linux", from a User-Agent; `None` when the parser finds no browser in it.
fn browser(user_agent: &str) -> Option<String> {
    let parsed = woothee::parser::Parser::new().parse(user_agent)?;
    // Crawlers and HTTP libraries (`misc`) are not browsers a user would recognise.
    let browsers = ["pc", "smartphone", "mobilephone", "appliance"];
    if parsed.name == woothee::woothee::VALUE_UNKNOWN || !browsers.contains(&parsed.category) {
        return None;
    }
    let major = parsed.version.split('.').next().unwrap_or_default();
    let name = [parsed.name, major].join(" ");
    Some(match parsed.os {
        woothee::woothee::VALUE_UNKNOWN => name.trim().to_owned(),
        os => format!("{} on {os}", name.trim()),
    })
}

/// What stands for the session `id` where the id itself must not go (pages, forms): its
/// SHA-256, shortened. The id is random: its hash reveals nothing of it, and cannot sign in.
pub fn handle(id: &Id) -> String {
    hashed(id.to_string().as_bytes(), 16)
}

/// The first `bytes` bytes of the SHA-256 of `data`, in hex: a name for a secret that reveals
/// nothing of it.
fn hashed(data: &[u8], bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)[..bytes]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn format_time(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Signs the user in: a new session id (against session fixation), the user, a CSRF token, and
/// the browser's `user_agent`.
pub async fn sign_in(
    session: &Session,
    user: &User,
    verified: VerifiedUser,
    user_agent: Option<&str>,
) -> Result<(), Error> {
    // A session the browser brought gets a new id; a new one has none to replace (cycling it
    // would only delete a row that never was).
    if session.id().is_some() {
        session.cycle_id().await?;
    }
    let now = Utc::now().timestamp();
    session
        .insert(
            USER,
            SessionUser {
                user_id: user.id,
                provider: verified.provider,
                issuer: verified.issuer,
                subject: verified.subject,
                claims: verified.claims,
                id_token: verified.id_token,
                provider_sid: verified.session_id,
                access_token: verified.access_token,
                access_expires_at: verified.access_expires_at,
                refresh_token: verified.refresh_token,
                dpop_key: verified.dpop_key,
                tokens_at: now,
                csrf_token: CsrfToken::new_random().into_secret(),
                signed_in_at: now,
                last_seen: now,
                auth_time: verified.auth_time,
                acr: verified.acr,
                user_agent: user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            },
        )
        .await
}

/// The signed-in user, or `None`. A session past its idle or absolute lifetime ends here (and
/// is counted in `metrics`).
pub async fn current_user(
    session: &Session,
    config: &SessionConfig,
    metrics: &Metrics,
) -> Result<Option<SessionUser>, Error> {
    let Some(mut user) = session.get::<SessionUser>(USER).await? else {
        return Ok(None);
    };
    let now = Utc::now().timestamp();
    if now >= user.ends_at(config) {
        tracing::info!(user_id = user.user_id, "session expired");
        session.flush().await?;
        metrics.sessions_ended("expiry", 1);
        return Ok(None);
    }
    if now >= user.touch_at(config) {
        user.last_seen = now;
        session.insert(USER, &user).await?;
    }
    Ok(Some(user))
}

/// Whether the access token should be renewed now.
pub fn tokens_due(user: &SessionUser) -> bool {
    tokens_due_at(user).is_some_and(|due| Utc::now().timestamp() >= due)
}

/// When the access token should be renewed (Unix seconds), if it can be: a minute before it
/// expires, or in the last quarter of its life for a short-lived one.
fn tokens_due_at(user: &SessionUser) -> Option<i64> {
    let (Some(_), Some(expires_at)) = (&user.refresh_token, user.access_expires_at) else {
        return None;
    };
    let margin = ((expires_at - user.tokens_at) / 4).clamp(0, 60);
    Some(expires_at - margin)
}

/// Who is signed in to the session of `record`, if anyone.
pub fn user_of(record: &Record) -> Option<SessionUser> {
    SessionUser::deserialize(record.data.get(USER)?).ok()
}

/// Until when (Unix seconds, exclusive) a page rendered from this session record is what a new
/// render would give: the first moment its user wants a touch of `last_seen`, a renewal of the
/// tokens, or the end of the session. `None` when nobody is signed in to it.
pub fn pages_good_until(record: &Record, config: &SessionConfig) -> Option<i64> {
    let user = user_of(record)?;
    let until = user.touch_at(config).min(user.ends_at(config));
    Some(tokens_due_at(&user).map_or(until, |due| until.min(due)))
}

/// A sign-in the app refused (the user's claims did not satisfy its rules), kept so that the
/// user can sign out at the provider, which wants the ID token as its hint. No user in it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refused {
    pub provider: String,
    pub id_token: String,
}

/// Keeps a refused sign-in in the browser's session, for [`REFUSED_FOR`] when nobody is signed
/// in to it.
pub async fn keep_refused(
    session: &Session,
    provider: &str,
    id_token: String,
) -> Result<(), Error> {
    if session.get_value(USER).await?.is_none() {
        session.set_expiry(Some(Expiry::OnInactivity(REFUSED_FOR)));
    }
    let refused = Refused {
        provider: provider.to_owned(),
        id_token,
    };
    session.insert(REFUSED, refused).await
}

/// Takes the refused sign-in the session keeps, once.
pub async fn take_refused(session: &Session) -> Result<Option<Refused>, Error> {
    session.remove(REFUSED).await
}

/// Keeps the tokens of a refresh. A provider that sends no new refresh token (or ID token) lets
/// the old one stand.
pub async fn keep_refreshed(
    session: &Session,
    user: &mut SessionUser,
    refreshed: Refreshed,
) -> Result<(), Error> {
    user.tokens_at = refreshed.issued_at;
    user.access_token = refreshed.access_token;
    user.access_expires_at = refreshed.access_expires_at;
    if let Some(token) = refreshed.refresh_token {
        user.refresh_token = Some(token);
    }
    if let Some(token) = refreshed.id_token {
        user.id_token = token;
    }
    session.insert(USER, &*user).await
}

pub fn csrf_matches(user: &SessionUser, token: &str) -> bool {
    bool::from(user.csrf_token.as_bytes().ct_eq(token.as_bytes()))
}

/// Ends the session: the record is deleted and the cookie cleared.
pub async fn sign_out(session: &Session) -> Result<(), Error> {
    session.flush().await
}

/// The cookies a request carries, parsed (those that do not parse are skipped).
pub fn request_cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'static>> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| Cookie::parse(pair.trim().to_owned()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_named_by_name_major_version_and_system() {
        let named = |ua| browser(ua);
        assert_eq!(
            named("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15").as_deref(),
            Some("Safari 17 on Mac OSX")
        );
        assert_eq!(
            named("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1").as_deref(),
            Some("Safari 17 on iPhone")
        );
        assert_eq!(
            named("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0").as_deref(),
            Some("Edge 131 on Windows 10")
        );
        assert_eq!(named("curl/8.5.0"), None);
        assert_eq!(named(""), None);
    }

    #[test]
    fn a_handle_stands_for_one_session_and_does_not_reveal_it() {
        let (one, other) = (Id::default(), Id::default());
        assert_eq!(handle(&one), handle(&one));
        assert_ne!(handle(&one), handle(&other));
        assert_eq!(handle(&one).len(), 32);
        assert!(!handle(&one).contains(&one.to_string()));
    }
}
