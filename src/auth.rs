//! The sign-in flow as the browser sees it: server functions at fixed paths (the ones users of
//! Okta's sample have registered at their provider), what a page learns about the signed-in
//! user, and what each failure tells the user.
//!
//! - `GET /login?return_to=/path` starts a sign-in and redirects to the provider.
//! - `GET /authorization-code/callback` is the provider's redirect back.
//! - `POST /logout` (with the session's CSRF token) signs out, at the provider too; with
//!   `everywhere` set, it ends every session of the user, in every browser.
//! - `POST /backchannel-logout` is where the provider ends sessions (Back-Channel Logout 1.0).
//!
//! A page asks [`current_user`], which renews the access token shortly before it expires.
//!
//! Each browser-facing endpoint answers with a redirect, also on failure: to `/signin?error=<code>`, a page that says
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
}

impl Visitor {
    pub fn user(self) -> Option<Profile> {
        match self {
            Self::SignedIn(profile) => Some(*profile),
            _ => None,
        }
    }
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
    SessionEnded,
}

impl SignInFailure {
    pub const ALL: [Self; 11] = [
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
        Self::SessionEnded,
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
            Self::SessionEnded => "session_ended",
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
            Self::SessionEnded => 401,
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
            Self::SessionEnded => "Your session has ended",
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
            Self::SessionEnded => "Your identity provider no longer vouches for your session (it may have been ended there, or expired), so you were signed out here. Please sign in again.",
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

/// Signs out here and, when the provider supports it, at the provider. With `everywhere`, ends
/// the user's sessions in every browser too.
#[server(prefix = "", endpoint = "logout")]
pub async fn logout(csrf: String, everywhere: Option<String>) -> Result<(), ServerFnError> {
    flow::redirect(&flow::logout(csrf, everywhere.is_some()).await);
    Ok(())
}

/// Who is looking: signed in (with tokens renewed if they were about to expire), or not.
#[server]
pub async fn current_user() -> Result<Visitor, ServerFnError> {
    flow::current_user().await
}

#[cfg(feature = "ssr")]
pub use flow::backchannel_logout;

#[cfg(feature = "ssr")]
mod flow {
    use super::{SignInFailure, Visitor};
    use crate::{
        oidc::{OidcError, Refreshed},
        server::AppState,
        session::{self, SessionUser},
    };
    use axum::{
        extract::{rejection::FormRejection, State},
        http::{header, HeaderMap, StatusCode},
        response::{IntoResponse, Response},
        Form, Json,
    };
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use leptos::prelude::*;
    use serde::{Deserialize, Serialize};
    use sha2::{Digest, Sha256};
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };
    use tower_sessions::Session;

    /// The app's state, provided to every request. Absent only when the app is rendered outside
    /// a request (the route list is built at start-up), where nobody is signed in.
    fn app_state() -> Result<Arc<AppState>, SignInFailure> {
        use_context::<Arc<AppState>>().ok_or(SignInFailure::StorageUnavailable)
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

    /// The request's headers (none outside a request).
    async fn request_headers() -> HeaderMap {
        leptos_axum::extract::<HeaderMap>()
            .await
            .unwrap_or_default()
    }

    fn set_cookies(cookies: impl IntoIterator<Item = tower_sessions::cookie::Cookie<'static>>) {
        let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
            return;
        };
        for cookie in cookies {
            // Sealed values are base64: valid cookie characters, no encoding needed.
            if let Ok(value) = cookie.to_string().parse() {
                response.append_header(header::SET_COOKIE, value);
            }
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
        set_cookies(app.pending.add(&request_headers().await, &pending));
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
            Some(state) => {
                let (pending, removal) = app.pending.take(&request_headers().await, state);
                set_cookies(removal);
                pending
            }
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

    pub async fn logout(csrf: String, everywhere: bool) -> String {
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
        if !same_origin(&request_headers().await, app.config.public_origin.as_str())
            || !session::csrf_matches(&user, &csrf)
        {
            tracing::warn!(
                user_id = user.user_id,
                "sign-out refused: CSRF check failed"
            );
            return "/logout?error=csrf".into();
        }
        if everywhere {
            match app
                .sessions
                .end_sessions_of(&user.issuer, &user.subject)
                .await
            {
                Ok(ended) => tracing::info!(user_id = user.user_id, ended, "signed out everywhere"),
                Err(e) => {
                    tracing::error!(error = %e, "sign-out everywhere failed");
                    return "/logout?error=failed".into();
                }
            }
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

    pub async fn current_user() -> Result<Visitor, ServerFnError> {
        let Ok(app) = app_state() else {
            return Ok(Visitor::Anonymous);
        };
        let session = leptos_axum::extract::<Session>().await?;
        let Some(mut user) = session::current_user(&session, &app.config.session)
            .await
            .map_err(|e| ServerFnError::new(e.to_string()))?
        else {
            return Ok(Visitor::Anonymous);
        };
        if session::tokens_due(&user) && !renew_tokens(&app, &session, &mut user).await {
            session::sign_out(&session)
                .await
                .map_err(|e| ServerFnError::new(e.to_string()))?;
            tracing::info!(user_id = user.user_id, "session ended: tokens not renewed");
            return Ok(Visitor::SessionEnded);
        }
        Ok(Visitor::SignedIn(Box::new(
            user.profile(&app.config.session),
        )))
    }

    /// What became of a refresh, shared with the requests that waited for it.
    #[derive(Debug, Serialize, Deserialize)]
    enum Renewal {
        Renewed(Refreshed),
        /// The provider refused: the session ends.
        Refused,
        /// The provider could not be asked: the old tokens stay, and a later request tries again.
        Later,
    }

    /// How long one refresh holds its claim: others wait for it meanwhile, and may try again after.
    const REFRESH_CLAIM: Duration = Duration::from_secs(30);
    const REFRESH_POLL: Duration = Duration::from_millis(25);

    /// Renews the user's tokens, one refresh per session at a time: parallel requests, on this
    /// instance or another, wait for the one that claimed it and take its result. `false` when
    /// the provider refused, and the session must end.
    async fn renew_tokens(app: &AppState, session: &Session, user: &mut SessionUser) -> bool {
        let Some(refresh_token) = user.refresh_token.clone() else {
            return true;
        };
        let key = URL_SAFE_NO_PAD.encode(Sha256::digest(refresh_token.as_bytes()));
        let renewal = match app.sessions.claim_refresh(&key, REFRESH_CLAIM).await {
            Ok(true) => {
                let renewal = match app.oidc.refresh(&refresh_token, &user.subject).await {
                    Ok(refreshed) => Renewal::Renewed(refreshed),
                    Err(e @ (OidcError::Unavailable(_) | OidcError::Timeout(_))) => {
                        tracing::warn!(error = %e, "token refresh postponed");
                        Renewal::Later
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "token refresh refused");
                        Renewal::Refused
                    }
                };
                let published = serde_json::to_string(&renewal).unwrap_or_default();
                if let Err(e) = app.sessions.finish_refresh(&key, &published).await {
                    tracing::warn!(error = %e, "token refresh result not shared");
                }
                renewal
            }
            Ok(false) => wait_for_renewal(app, &key).await,
            Err(e) => {
                tracing::warn!(error = %e, "token refresh not claimed");
                Renewal::Later
            }
        };
        match renewal {
            Renewal::Renewed(refreshed) => {
                if let Err(e) = session::keep_refreshed(session, user, refreshed).await {
                    storage_failed(e);
                }
                tracing::info!(user_id = user.user_id, "tokens renewed");
                true
            }
            Renewal::Refused => false,
            Renewal::Later => true,
        }
    }

    async fn wait_for_renewal(app: &AppState, key: &str) -> Renewal {
        let deadline = Instant::now() + app.config.provider_timeout + Duration::from_secs(1);
        while Instant::now() < deadline {
            match app.sessions.refresh_result(key).await {
                Ok(Some(result)) => {
                    return serde_json::from_str(&result).unwrap_or(Renewal::Later);
                }
                Ok(None) => tokio::time::sleep(REFRESH_POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "token refresh result unreadable");
                    break;
                }
            }
        }
        Renewal::Later
    }

    #[derive(Deserialize)]
    pub struct LogoutTokenForm {
        logout_token: String,
    }

    /// Why a back-channel logout was not done: the provider is told with a 400 (a bad token)
    /// or a 503 (try again), and a JSON error body.
    #[derive(Debug)]
    pub enum BackchannelError {
        BadRequest(String),
        Unavailable(String),
    }

    impl IntoResponse for BackchannelError {
        fn into_response(self) -> Response {
            let (status, error, description) = match self {
                Self::BadRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
                Self::Unavailable(d) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    d,
                ),
            };
            let body =
                Json(serde_json::json!({ "error": error, "error_description": description }));
            (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
        }
    }

    /// `POST /backchannel-logout`: the provider orders the sessions of one of its sessions
    /// (`sid`), or of a user (`sub`), ended. Every instance sharing the store sees them gone.
    pub async fn backchannel_logout(
        State(app): State<AppState>,
        form: Result<Form<LogoutTokenForm>, FormRejection>,
    ) -> Result<impl IntoResponse, BackchannelError> {
        let Form(form) = form.map_err(|e| BackchannelError::BadRequest(e.body_text()))?;
        let order = app
            .oidc
            .verify_logout_token(&form.logout_token)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "back-channel logout refused");
                match e {
                    OidcError::Unavailable(_) | OidcError::Timeout(_) => {
                        BackchannelError::Unavailable(e.to_string())
                    }
                    _ => BackchannelError::BadRequest(e.to_string()),
                }
            })?;
        let store_failed = |e: tower_sessions::session_store::Error| {
            tracing::error!(error = %e, "back-channel logout: session store failed");
            BackchannelError::Unavailable("the session store is unavailable".into())
        };
        let issuer = app.oidc.issuer();
        if !app
            .sessions
            .first_use_of_logout_token(issuer, &order.jti, order.expires_at)
            .await
            .map_err(store_failed)?
        {
            tracing::warn!("back-channel logout refused: logout token replayed");
            return Err(BackchannelError::BadRequest(
                "logout token already used".into(),
            ));
        }
        // A `sid` names one provider session: only its sessions end. A `sub` alone names them all.
        let ended = match (&order.sid, &order.subject) {
            (Some(sid), _) => app.sessions.end_provider_session(issuer, sid).await,
            (None, Some(subject)) => app.sessions.end_sessions_of(issuer, subject).await,
            (None, None) => Ok(0),
        }
        .map_err(store_failed)?;
        tracing::info!(ended, by_sid = order.sid.is_some(), "back-channel logout");
        Ok(([(header::CACHE_CONTROL, "no-store")], ""))
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
