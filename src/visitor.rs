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

impl Profile {
    /// Whether the claim `name` is `value`, or a list that includes it ([`crate::claims`]): for
    /// showing a part of a page to some users only. What they may do is the server's to decide
    /// (`SignedIn::require_claim`); a page only shows or hides.
    pub fn has_claim(&self, name: &str, value: &str) -> bool {
        self.claims
            .iter()
            .find(|(claim, _)| claim == name)
            .is_some_and(|(_, text)| {
                // Claims reach pages as text: lists and booleans as their JSON.
                let parsed = serde_json::from_str(text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
                crate::claims::has_value(&parsed, value)
            })
    }
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

/// One of the signed-in user's sessions, as `/sessions` shows it. Named by a handle, never by
/// its id: the id is what signs a browser in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// What ending it takes (`POST /sessions/end`): stands for the session, reveals nothing.
    pub handle: String,
    /// The browser and its system, from its User-Agent: "Firefox 132 on Linux".
    pub browser: String,
    /// The label of the provider that signed it in.
    pub provider: String,
    pub started: String,
    pub last_used: String,
    /// Whether it is the session of the browser looking.
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_sees_claim_values_in_lists_and_alone() {
        let profile = Profile {
            name: "Alice".into(),
            email: None,
            provider: "Acme".into(),
            issuer: "https://idp.example".into(),
            subject: "alice".into(),
            claims: vec![
                ("email_verified".into(), "true".into()),
                ("groups".into(), r#"["staff","admins"]"#.into()),
                ("team".into(), "blue".into()),
            ],
            signed_in_at: String::new(),
            session_ends_at: String::new(),
            access_token_expires_at: None,
            access_token_renews: false,
            csrf_token: String::new(),
        };
        assert!(profile.has_claim("groups", "admins"));
        assert!(profile.has_claim("team", "blue"));
        assert!(profile.has_claim("email_verified", "true"));
        assert!(!profile.has_claim("groups", "owners"));
        assert!(!profile.has_claim("roles", "admins"));
    }
}
