//! The sign-in flow as the browser sees it: server functions at fixed paths (the ones users of
//! Okta's sample have registered at their provider), what a page learns about the signed-in
//! user, and what each failure tells the user.
//!
//! - `GET /login?return_to=/path` starts a sign-in and redirects to the provider.
//! - `GET /authorization-code/callback` is the provider's redirect back.
//! - `POST /logout` (with the session's CSRF token) signs out, at the provider too.
//!
//! Each answers with a redirect, also on failure: to `/signin?error=<code>`, a page that says
//! what happened with a 4xx/5xx status and offers to try again.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The signed-in user, as pages see them. Holds nothing secret but the session's CSRF token,
/// which the sign-out form needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub email: Option<String>,
    pub issuer: String,
    pub subject: String,
    /// Claim name and its value as text, sorted by name.
    pub claims: Vec<(String, String)>,
    pub signed_in_at: String,
    pub session_ends_at: String,
    pub csrf_token: String,
}

/// Why a sign-in did not complete: the `error` of `/signin?error=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInFailure {
    AccessDenied,
    ProviderError,
    MissingCode,
    BadState,
    CodeRefused,
    TokenRefused,
    ProviderUnavailable,
    ProviderMisconfigured,
    ProviderTimeout,
    StorageUnavailable,
}

impl SignInFailure {
    pub const ALL: [Self; 10] = [
        Self::AccessDenied,
        Self::ProviderError,
        Self::MissingCode,
        Self::BadState,
        Self::CodeRefused,
        Self::TokenRefused,
        Self::ProviderUnavailable,
        Self::ProviderMisconfigured,
        Self::ProviderTimeout,
        Self::StorageUnavailable,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::ProviderError => "provider_error",
            Self::MissingCode => "missing_code",
            Self::BadState => "bad_state",
            Self::CodeRefused => "code_refused",
            Self::TokenRefused => "token_refused",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderMisconfigured => "provider_misconfigured",
            Self::ProviderTimeout => "provider_timeout",
            Self::StorageUnavailable => "storage_unavailable",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// The HTTP status of the page that reports it.
    pub fn status(self) -> u16 {
        match self {
            Self::AccessDenied => 403,
            Self::ProviderUnavailable | Self::ProviderMisconfigured | Self::StorageUnavailable => {
                503
            }
            Self::ProviderTimeout => 504,
            _ => 400,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::AccessDenied => "Sign-in cancelled",
            Self::ProviderUnavailable => "The sign-in service is unavailable",
            Self::ProviderMisconfigured => "The sign-in service is misconfigured",
            Self::ProviderTimeout => "The sign-in service is not answering",
            Self::StorageUnavailable => "Sign-in could not be saved",
            Self::BadState => "This sign-in has expired",
            _ => "Sign-in failed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::AccessDenied => "You cancelled the sign-in, or did not allow this app access. Nothing was changed.",
            Self::ProviderError => "The identity provider could not sign you in. It may be misconfigured for this app.",
            Self::MissingCode => "The identity provider sent you back without a sign-in code.",
            Self::BadState => "This sign-in was started too long ago, in another browser, or was already used.",
            Self::CodeRefused => "The identity provider did not accept the sign-in code. It may have expired or been used already.",
            Self::TokenRefused => "The identity provider's answer did not pass this app's security checks, so you were not signed in.",
            Self::ProviderUnavailable => "The identity provider could not be reached. Please try again in a moment.",
            Self::ProviderMisconfigured => "The identity provider's settings do not match this app's, so nobody can sign in until an administrator fixes them.",
            Self::ProviderTimeout => "The identity provider took too long to answer. Please try again in a moment.",
            Self::StorageUnavailable => "The app could not store your session. Please try again in a moment.",
        }
    }
}

/// Starts a sign-in: redirects to the provider, then back to `return_to` (a same-origin path).
#[server(prefix = "", endpoint = "login", input = server_fn::codec::GetUrl)]
pub async fn login(return_to: Option<String>) -> Result<(), ServerFnError> {
    flow::redirect(&flow::login(return_to).await);
    Ok(())
}

/// The provider's redirect back after sign-in.
#[server(prefix = "", endpoint = "authorization-code/callback", input = server_fn::codec::GetUrl)]
pub async fn callback(
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
) -> Result<(), ServerFnError> {
    flow::redirect(&flow::callback(code, state, error, iss).await);
    Ok(())
}

/// Signs out here and, when the provider supports it, at the provider.
#[server(prefix = "", endpoint = "logout")]
pub async fn logout(csrf: String) -> Result<(), ServerFnError> {
    flow::redirect(&flow::logout(csrf).await);
    Ok(())
}

/// The signed-in user, if any.
#[server]
pub async fn current_user() -> Result<Option<Profile>, ServerFnError> {
    flow::current_user().await
}

#[cfg(feature = "ssr")]
mod flow {
    use super::{Profile, SignInFailure};
    use crate::{server::AppState, session};
    use axum::http::{header, HeaderMap};
    use leptos::prelude::*;
    use tower_sessions::Session;

    /// The app's state, provided to every request. Absent only when the app is rendered outside
    /// a request (the route list is built at start-up), where nobody is signed in.
    fn app_state() -> Result<AppState, SignInFailure> {
        use_context::<AppState>().ok_or(SignInFailure::StorageUnavailable)
    }

    /// A real 302 whatever the request's `Accept` says (leptos_axum answers 200 to clients that
    /// do not ask for HTML): these endpoints are reached by links, redirects and plain forms,
    /// never by the WASM client.
    pub fn redirect(target: &str) {
        leptos_axum::redirect(target);
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::FOUND);
        }
    }

    fn failure_page(failure: SignInFailure) -> String {
        format!("/signin?error={}", failure.code())
    }

    async fn session() -> Result<Session, SignInFailure> {
        leptos_axum::extract::<Session>().await.map_err(|e| {
            tracing::error!(error = %e, "session layer missing");
            SignInFailure::StorageUnavailable
        })
    }

    fn storage_failed(e: tower_sessions::session::Error) -> SignInFailure {
        tracing::error!(error = %e, "session store failed");
        SignInFailure::StorageUnavailable
    }

    pub async fn login(return_to: Option<String>) -> String {
        let return_to = safe_return_to(return_to.as_deref());
        match start_sign_in(return_to).await {
            Ok(target) => target,
            Err(failure) => failure_page(failure),
        }
    }

    async fn start_sign_in(return_to: String) -> Result<String, SignInFailure> {
        let app = app_state()?;
        let session = session().await?;
        if session::current_user(&session, &app.config.session)
            .await
            .map_err(storage_failed)?
            .is_some()
        {
            return Ok(return_to); // already signed in: nothing to do at the provider
        }
        let (url, pending) = app.oidc.begin(return_to).await.map_err(|e| {
            tracing::warn!(error = %e, "sign-in not started");
            e.failure()
        })?;
        session::add_pending(&session, pending)
            .await
            .map_err(storage_failed)?;
        tracing::info!("sign-in started; redirecting to the provider");
        Ok(url.into())
    }

    pub async fn callback(
        code: Option<String>,
        state: Option<String>,
        error: Option<String>,
        iss: Option<String>,
    ) -> String {
        match finish_sign_in(code, state, error, iss).await {
            Ok(target) => target,
            Err(failure) => {
                tracing::warn!(failure = failure.code(), "sign-in refused");
                failure_page(failure)
            }
        }
    }

    async fn finish_sign_in(
        code: Option<String>,
        state: Option<String>,
        error: Option<String>,
        iss: Option<String>,
    ) -> Result<String, SignInFailure> {
        let app = app_state()?;
        let session = session().await?;
        // The pending sign-in is used up whatever happens next: a state works once.
        let pending = match &state {
            Some(state) => session::take_pending(&session, state)
                .await
                .map_err(storage_failed)?,
            None => None,
        };

        if let Some(error) = error {
            tracing::info!(error = %error.chars().take(64).collect::<String>(), "the provider returned an error");
            return Err(if error == "access_denied" {
                SignInFailure::AccessDenied
            } else {
                SignInFailure::ProviderError
            });
        }
        let Some(code) = code else {
            return Err(SignInFailure::MissingCode);
        };
        let Some(pending) = pending else {
            // A stale tab, or a replay, arriving when the user is signed in already: show them
            // their page rather than an error.
            if let Some(user) = session::current_user(&session, &app.config.session)
                .await
                .map_err(storage_failed)?
            {
                tracing::info!(
                    user_id = user.user_id,
                    "callback without a pending sign-in; already signed in"
                );
                return Ok("/profile".into());
            }
            tracing::warn!(
                state_present = state.is_some(),
                "callback state matches no pending sign-in"
            );
            return Err(SignInFailure::BadState);
        };
        // RFC 9207: a response naming another issuer is a mix-up attack or a misconfiguration.
        if let Some(iss) = iss {
            if iss != app.oidc.issuer() {
                tracing::warn!(%iss, "authorization response from another issuer");
                return Err(SignInFailure::TokenRefused);
            }
        }

        let return_to = pending.return_to.clone();
        let verified = app.oidc.complete(pending, code).await.map_err(|e| {
            tracing::warn!(error = %e, "sign-in failed at the token step");
            e.failure()
        })?;
        let user = app.users.upsert(&verified).await.map_err(|e| {
            tracing::error!(error = %e, "user record not saved");
            SignInFailure::StorageUnavailable
        })?;
        session::sign_in(&session, &user, verified)
            .await
            .map_err(storage_failed)?;
        tracing::info!(user_id = user.id, "signed in");
        Ok(return_to)
    }

    pub async fn logout(csrf: String) -> String {
        let (Ok(app), Ok(session)) = (app_state(), session().await) else {
            return "/logout?error=failed".into();
        };
        let user = match session::current_user(&session, &app.config.session).await {
            Ok(Some(user)) => user,
            Ok(None) => return "/".into(),
            Err(e) => {
                storage_failed(e);
                return "/logout?error=failed".into();
            }
        };
        let headers = leptos_axum::extract::<HeaderMap>()
            .await
            .unwrap_or_default();
        if !same_origin(&headers, app.config.public_origin.as_str())
            || !session::csrf_matches(&user, &csrf)
        {
            tracing::warn!(
                user_id = user.user_id,
                "sign-out refused: CSRF check failed"
            );
            return "/logout?error=csrf".into();
        }
        if let Err(e) = session::sign_out(&session).await {
            storage_failed(e);
            return "/logout?error=failed".into();
        }
        tracing::info!(user_id = user.user_id, "signed out");
        match app.oidc.end_session_url(Some(&user.id_token)).await {
            Some(url) => url.into(),
            None => "/".into(),
        }
    }

    pub async fn current_user() -> Result<Option<Profile>, ServerFnError> {
        let Ok(app) = app_state() else {
            return Ok(None);
        };
        let session = leptos_axum::extract::<Session>().await?;
        let user = session::current_user(&session, &app.config.session)
            .await
            .map_err(|e| ServerFnError::new(e.to_string()))?;
        Ok(user.map(|u| u.profile(&app.config.session)))
    }

    /// A request whose `Origin` (or, failing that, `Referer`) names another site is refused; a
    /// request with neither is judged by the CSRF token alone.
    fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
        let public_origin = public_origin.trim_end_matches('/');
        if let Some(origin) = headers.get(header::ORIGIN) {
            return origin.as_bytes() == public_origin.as_bytes();
        }
        match headers.get(header::REFERER).and_then(|r| r.to_str().ok()) {
            Some(referer) => referer
                .strip_prefix(public_origin)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            None => true,
        }
    }

    /// `return_to` as a path on this site, or `/profile`. Anything that a browser could read as
    /// another origin (`//host`, `/\host`, encoded slashes, schemes, control characters) is
    /// refused.
    pub fn safe_return_to(return_to: Option<&str>) -> String {
        const DEFAULT: &str = "/profile";
        let Some(path) = return_to else {
            return DEFAULT.into();
        };
        let lowered = path.to_ascii_lowercase();
        let safe = path.starts_with('/')
            && !path.starts_with("//")
            && path.len() <= 512
            && !path.contains('\\')
            && !lowered.contains("%2f")
            && !lowered.contains("%5c")
            && !path.chars().any(|c| c.is_control() || c.is_whitespace());
        if safe {
            path.to_owned()
        } else {
            tracing::warn!("unsafe return_to ignored");
            DEFAULT.into()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn return_to_keeps_same_origin_paths() {
            for path in ["/profile", "/", "/a/b?c=d&e=f#g", "/caf%C3%A9"] {
                assert_eq!(safe_return_to(Some(path)), path);
            }
            assert_eq!(safe_return_to(None), "/profile");
        }

        #[test]
        fn return_to_refuses_every_way_out_of_the_origin() {
            for path in [
                "//evil.example",
                "/\\evil.example",
                "\\\\evil.example",
                "/%2F%2Fevil.example",
                "/%2fevil.example",
                "/%5Cevil.example",
                "https://evil.example/",
                "javascript:alert(1)",
                "evil.example",
                "/\tevil",
                "/ok\r\nSet-Cookie: x=y",
                "",
            ] {
                assert_eq!(safe_return_to(Some(path)), "/profile", "{path:?}");
            }
        }

        #[test]
        fn origin_check_refuses_other_sites() {
            let origin = "http://127.0.0.1:3000/";
            let with = |name: header::HeaderName, value: &str| {
                let mut h = HeaderMap::new();
                h.insert(name, value.parse().unwrap());
                h
            };
            assert!(same_origin(
                &with(header::ORIGIN, "http://127.0.0.1:3000"),
                origin
            ));
            assert!(!same_origin(
                &with(header::ORIGIN, "http://evil.example"),
                origin
            ));
            assert!(!same_origin(&with(header::ORIGIN, "null"), origin));
            assert!(same_origin(
                &with(header::REFERER, "http://127.0.0.1:3000/profile"),
                origin
            ));
            assert!(!same_origin(
                &with(header::REFERER, "http://127.0.0.1:3000.evil/"),
                origin
            ));
            assert!(same_origin(&HeaderMap::new(), origin));
        }
    }
}
