//! What pages learn about who is looking, from the server: shared by the server and the browser,
//! so it holds nothing secret but the session's CSRF token (the sign-out form needs it).

use serde::{Deserialize, Serialize};

/// The signed-in user, as pages see them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub email: Option<String>,
    /// The label of the provider that signed this session in.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    /// Claim name and its value as text, sorted by name.
    pub claims: Vec<(String, String)>,
    pub signed_in_at: String,
    pub session_ends_at: String,
    pub access_token_expires_at: Option<String>,
    /// Whether the app renews the access token (it holds a refresh token).
    pub access_token_renews: bool,
    pub csrf_token: String,
}

/// Who is looking at a page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Visitor {
    Anonymous,
    SignedIn(Box<Profile>),
    /// Was signed in until this request: the provider would not renew the tokens.
    SessionEnded,
    /// Not known: the session store did not answer. Pages say so (a 503) rather than take the
    /// visitor for signed out: their session is not lost.
    Unknown,
}

/// A provider the sign-in page offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderChoice {
    /// What `/login?provider=` takes.
    pub id: String,
    /// The button's text.
    pub label: String,
    /// This browser signed in with it last (it is listed first).
    pub last_used: bool,
}

/// What every page knows of this visit: who is looking and, unless they are signed in, the
/// providers they may sign in with. One request per page brings both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub visitor: Visitor,
    /// In the configured order, this browser's last used first.
    pub choices: Vec<ProviderChoice>,
}
