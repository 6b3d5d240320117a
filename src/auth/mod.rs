//! The sign-in flow as the browser sees it: server functions at fixed paths (the ones users of
//! Okta's sample have registered at their provider).
//!
//! - `GET /login?provider=<id>&return_to=/path` starts a sign-in at that provider (without
//!   `provider`: at the only one, or on the sign-in page's choice of several).
//! - `GET /authorization-code/callback` is every provider's redirect back.
//! - `POST /logout` (with the session's CSRF token) signs out, at the provider too; with
//!   `everywhere` set, it ends every session of the user, in every browser.
//! - `POST /sessions/end` (with the CSRF token and a session's handle from `/sessions`) ends
//!   another of the user's sessions.
//! - `POST /backchannel-logout` is where providers end sessions (Back-Channel Logout 1.0).
//!
//! A page asks [`current_visit`] who is looking (renewing their access token shortly before it
//! expires) and, for a visitor who is not signed in, the providers to offer. Each
//! browser-facing endpoint answers with a redirect,
//! also on failure: to a page that says what happened with a 4xx/5xx status and offers a way on.
//! The server half is in [`ssr`].

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::visitor::Visitor;
use crate::visitor::{SessionSummary, Visit};

#[cfg(feature = "ssr")]
pub mod ssr;
#[cfg(feature = "ssr")]
pub use ssr::protect::{require_user, ApiError, SignedIn};

/// Starts a sign-in at `provider`: redirects there, then back to `return_to` (a same-origin path).
/// `max_age` (seconds) and `acr_values` (space-separated) make it a step-up: the provider is
/// asked to confirm the user again, and its answer must show it did.
#[server(prefix = "", endpoint = "login", input = server_fn::codec::GetUrl)]
pub async fn login(
    provider: Option<String>,
    return_to: Option<String>,
    max_age: Option<u64>,
    acr_values: Option<String>,
) -> Result<(), ServerFnError> {
    let step_up = crate::oidc::StepUp {
        max_age,
        acr_values: acr_values
            .iter()
            .flat_map(|values| values.split_whitespace().map(str::to_owned))
            .collect(),
    };
    ssr::redirect(&ssr::sign_in::start(provider, return_to, step_up).await);
    Ok(())
}

/// A provider's redirect back after sign-in.
#[server(prefix = "", endpoint = "authorization-code/callback", input = server_fn::codec::GetUrl)]
pub async fn callback(
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
) -> Result<(), ServerFnError> {
    ssr::redirect(&ssr::sign_in::finish(code, state, error, iss).await);
    Ok(())
}

/// Signs out here and, when the provider supports it, at the provider. With `everywhere`, ends
/// the user's sessions in every browser too.
#[server(prefix = "", endpoint = "logout")]
pub async fn logout(csrf: String, everywhere: Option<String>) -> Result<(), ServerFnError> {
    ssr::redirect(&ssr::sign_out::sign_out(csrf, everywhere.is_some()).await);
    Ok(())
}

/// The signed-in user's sessions, in every browser and on every instance (`/sessions`): this
/// browser's first, then the most recently used.
#[server(endpoint = "your_sessions")]
pub async fn your_sessions() -> Result<Vec<SessionSummary>, ServerFnError> {
    require_user().await?.sessions().await
}

/// Ends another session of the user's, named by its handle (`/sessions`' buttons), and comes
/// back to `/sessions`, which says what became of it.
#[server(prefix = "", endpoint = "sessions/end")]
pub async fn end_session(csrf: String, session: String) -> Result<(), ServerFnError> {
    ssr::redirect(&ssr::sign_out::end_other(&csrf, &session).await);
    Ok(())
}

/// Who is looking: signed in (with tokens renewed if they were about to expire), or not; and
/// for one who is not, the providers to sign in with, this browser's last used first.
#[server]
pub async fn current_visit() -> Result<Visit, ServerFnError> {
    use tracing::Instrument;
    let visit = async {
        let visitor = ssr::renewal::current_user().await?;
        let choices = match visitor {
            Visitor::SignedIn(_) | Visitor::Unknown => Vec::new(),
            Visitor::Anonymous | Visitor::SessionEnded => ssr::sign_in::choices().await,
        };
        Ok(Visit { visitor, choices })
    };
    // A page's render runs on a task of its own, outside the request's span: its log lines
    // (renewals, expiries) and trace spans belong to the request all the same.
    visit.instrument(ssr::request_span()).await
}
