//! OpenID Connect, one file per concern. It knows nothing of sessions, users or pages.
//!
//! - [`registry`]: the configured providers, found by id or by issuer;
//! - [`provider`]: one provider's flow (begin, complete, refresh, end-session URL, logout
//!   tokens);
//! - [`discovery`]: its metadata and keys, cached and kept fresh;
//! - [`id_token`] and [`logout_token`]: the checks on the tokens it signs; [`access_token`]:
//!   those on access tokens presented to the app's own API (JWT, or introspection);
//! - [`client_auth`]: how the app proves it is the client; [`dpop`]: access tokens bound to a
//!   key of the session's (DPoP);
//! - [`http`]: calls to it, bounded in time; [`jwt`]: reading compact JWTs.

pub mod access_token;
mod client_auth;
mod discovery;
pub mod dpop;
mod http;
mod id_token;
mod jwk;
mod jwt;
mod logout_token;
mod provider;
mod registry;

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use client_auth::ClientKeys;
pub use provider::Provider;
pub use registry::Providers;

/// Why a call to a provider or a check of its tokens failed. The text is for the log: it names
/// the cause (an algorithm and the allowed set, a claim and its value), never a token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider could not be reached or answered nonsense: {0}")]
    Unavailable(String),
    #[error("the provider's metadata does not fit this app's configuration: {0}")]
    Misconfigured(String),
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the provider refused the authorization code: {0}")]
    CodeRefused(String),
    #[error("the provider's tokens were refused: {0}")]
    TokenRefused(String),
    /// A step-up the provider did not perform: no new sign-in, or not the class asked for.
    #[error("the provider did not step up the sign-in: {0}")]
    NotSteppedUp(String),
}

impl OidcError {
    /// The provider could not be asked (down, garbled, slow): worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

/// Why a token failed its checks: a key we do not know (the provider may have rotated its keys:
/// worth one refetch), or anything else.
#[derive(Debug)]
enum Refusal {
    UnknownKey,
    Invalid(String),
}

/// A sign-in that has been sent to a provider and not yet come back. Travels sealed in a cookie
/// of the browser's (see `session::pending`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The provider's id: the callback completes the sign-in there, and nowhere else.
    pub provider: String,
    pub state: String,
    nonce: String,
    pkce_verifier: String,
    /// A same-origin path to land on after sign-in.
    pub return_to: String,
    /// What the sign-in must prove beyond who the user is (a step-up).
    #[serde(default)]
    pub step_up: StepUp,
    /// Unix milliseconds: tabs started within a second still have an order.
    pub started_ms: i64,
}

/// What a sign-in must prove beyond who the user is, for a sensitive action (OIDC Core
/// 3.1.2.1): that they signed in at most `max_age` seconds ago, or with one of the
/// authentication context classes `acr_values`. Asked of the provider, and checked in the ID
/// token it sends back, not trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUp {
    pub max_age: Option<u64>,
    pub acr_values: Vec<String>,
}

impl StepUp {
    pub fn is_none(&self) -> bool {
        self.max_age.is_none() && self.acr_values.is_empty()
    }
}

/// What a completed sign-in proved about the user.
#[derive(Clone, Debug)]
pub struct VerifiedUser {
    /// The id of the provider that signed them in.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    /// ID token and userinfo claims (userinfo wins), without the protocol's own claims.
    pub claims: BTreeMap<String, Value>,
    /// Kept server side for `id_token_hint` at sign-out.
    pub id_token: String,
    /// When the user last entered their credentials at the provider (Unix seconds), and how
    /// (`acr`), when the ID token says.
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    /// The provider's session id (`sid`), when it sends one.
    pub session_id: Option<String>,
    pub access_token: String,
    /// Unix seconds, when the provider says.
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    /// With DPoP: the session's key, which the access token is bound to ([`dpop::DpopKey`]).
    pub dpop_key: Option<String>,
}

/// New tokens from a refresh, validated. What the provider did not renew stays as it was.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refreshed {
    /// Unix seconds: when the provider answered (a request that waited for this refresh may
    /// apply it later).
    pub issued_at: i64,
    pub access_token: String,
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// What a provider vouches for about an access token presented to the app's API.
#[derive(Clone, Debug, Serialize)]
pub struct Vouched {
    /// The id of the provider that vouched.
    pub provider: String,
    pub subject: Option<String>,
    /// The client the token was issued to, when it says.
    pub client_id: Option<String>,
    /// Unix seconds, when the token says.
    pub expires_at: Option<i64>,
    /// The token's claims (a JWT's payload, or the introspection answer), as the provider said.
    pub claims: Map<String, Value>,
}

/// What a valid logout token orders: end the sessions of the provider session `sid`, or of the
/// subject, or both.
#[derive(Clone, Debug)]
pub struct LogoutOrder {
    pub sid: Option<String>,
    pub subject: Option<String>,
    pub jti: String,
    /// Unix seconds: until then, the same token must not work twice.
    pub expires_at: i64,
}
