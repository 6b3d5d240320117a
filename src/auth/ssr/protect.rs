//! For server functions that are for signed-in users only: [`require_user`], and calls to APIs
//! with the user's access token ([`SignedIn::send`]).

use std::{sync::Arc, time::Duration};

use axum::http::{header, StatusCode};
use leptos::prelude::{use_context, ServerFnError};
use openidconnect::reqwest;
use tower_sessions::Session;

use super::{app_state, redirect, renewal, request_headers, same_origin, session};
use crate::{
    failure::{
        self, forbidden, outage, sign_in_required, step_up_required, SignInFailure, CODE_HEADER,
    },
    json_errors, links,
    oidc::dpop,
    session::SessionUser,
    state::AppState,
    visitor::{SessionSummary, Visitor},
};

/// The signed-in user of this request, with fresh tokens.
pub struct SignedIn {
    pub user: SessionUser,
    session: Session,
    app: AppState,
}

/// The signed-in user, for a server function that is theirs only:
/// `let mut user = require_user().await?;`. Their access token is renewed first when it is due.
/// Without a session the call fails: a page load or a plain form post is sent to sign in and
/// back to the page it came from; any other caller (the WASM client, `fetch`, `curl`) gets a
/// 401 with a JSON body (`sign_in_required`, or `session_ended`); a 503 while the session store
/// does not answer.
pub async fn require_user() -> Result<SignedIn, ServerFnError> {
    let app = app_state().map_err(|e| ServerFnError::new(e.to_string()))?;
    let session = session()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    match renewal::signed_in(&app, &session).await {
        Ok(user) => Ok(SignedIn { user, session, app }),
        Err(visitor) => Err(refuse(&app, visitor).await),
    }
}

/// Answers a call without a signed-in user, and the error the server function returns.
async fn refuse(app: &AppState, visitor: Visitor) -> ServerFnError {
    let (status, code) = match visitor {
        Visitor::Unknown => (StatusCode::SERVICE_UNAVAILABLE, outage::CODE),
        Visitor::SessionEnded => (StatusCode::UNAUTHORIZED, SignInFailure::SessionEnded.code()),
        _ => (StatusCode::UNAUTHORIZED, sign_in_required::CODE),
    };
    let headers = request_headers().await;
    if status == StatusCode::UNAUTHORIZED && json_errors::wants_html(&headers) {
        redirect(&links::login(None, Some(&back_to(app, &headers))));
        return ServerFnError::new(failure::describe(code).unwrap_or(code));
    }
    fail(status, code)
}

/// The page a form was posted from, when it is one of ours: where to come back to.
fn back_to(app: &AppState, headers: &axum::http::HeaderMap) -> String {
    let origin = app.config.public_origin.as_str().trim_end_matches('/');
    headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .filter(|_| same_origin(headers, origin))
        .and_then(|r| r.strip_prefix(origin))
        .filter(|path| path.starts_with('/'))
        .map(|path| super::safe_return_to(Some(path)))
        .unwrap_or_else(|| "/".into())
}

/// The error a server function returns for a failure, its status and code set on the answer
/// (callers that do not ask for HTML get its JSON form).
fn fail(status: StatusCode, code: &'static str) -> ServerFnError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
        response.insert_header(
            axum::http::HeaderName::from_static(CODE_HEADER),
            axum::http::HeaderValue::from_static(code),
        );
    }
    ServerFnError::new(failure::describe(code).unwrap_or(code))
}

/// Why a call to an API with the user's token did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the API could not be reached: {0}")]
    Unreachable(#[from] reqwest::Error),
    /// The provider would not renew the tokens: the session has ended.
    #[error("the session has ended")]
    SessionEnded,
    /// The session's DPoP key could not make a proof for the request.
    #[error("the request could not carry a DPoP proof: {0}")]
    Proof(#[from] crate::oidc::OidcError),
}

impl SignedIn {
    /// Goes on only when the user entered their credentials at the provider within `max_age`
    /// (a step-up for a sensitive action): `user.require_recent_sign_in(Duration::from_secs(300))
    /// .await?;`. Otherwise a form post or page load is sent to the provider to confirm it is
    /// them (`prompt=login`, `max_age`), and back to the page it came from; a program gets a 401
    /// (`step_up_required`). The provider's answer is checked, not trusted: its `auth_time`
    /// must be within `max_age`.
    pub async fn require_recent_sign_in(&self, max_age: Duration) -> Result<(), ServerFnError> {
        if self.user.authenticated_within(max_age) {
            return Ok(());
        }
        self.step_up(Some(max_age.as_secs()), None).await
    }

    /// Goes on only when the user signed in with one of the authentication context classes
    /// `acr_values` (space-separated, as the provider names them: `mfa`, say); otherwise as
    /// [`SignedIn::require_recent_sign_in`], the provider asked for one of them.
    pub async fn require_acr(&self, acr_values: &str) -> Result<(), ServerFnError> {
        let acr = self.user.acr.as_deref();
        if acr.is_some_and(|acr| acr_values.split_whitespace().any(|v| v == acr)) {
            return Ok(());
        }
        self.step_up(None, Some(acr_values)).await
    }

    async fn step_up(&self, max_age: Option<u64>, acr: Option<&str>) -> Result<(), ServerFnError> {
        tracing::info!(user_id = self.user.user_id, "step-up required");
        let headers = request_headers().await;
        match self.provider() {
            Some(provider) if json_errors::wants_html(&headers) => {
                let back = back_to(&self.app, &headers);
                redirect(&links::step_up(provider.id(), max_age, acr, &back));
                Err(ServerFnError::new(step_up_required::MESSAGE))
            }
            _ => Err(fail(StatusCode::UNAUTHORIZED, step_up_required::CODE)),
        }
    }

    /// Goes on only when the user's claim `name` is `value`, or a list that includes it
    /// ([`crate::claims`]): `user.require_claim("groups", "admins")?;`. Otherwise the call
    /// fails with a 403 (`{"error":"forbidden",...}` for programs).
    pub fn require_claim(&self, name: &str, value: &str) -> Result<(), ServerFnError> {
        match self.user.claims.get(name) {
            Some(claim) if crate::claims::has_value(claim, value) => Ok(()),
            _ => {
                tracing::info!(
                    user_id = self.user.user_id,
                    claim = name,
                    value,
                    "call refused: claim required"
                );
                Err(fail(StatusCode::FORBIDDEN, forbidden::CODE))
            }
        }
    }

    /// Sends the request `build` makes, with the user's access token as its Bearer token (with
    /// DPoP, bound to the session's key: `Authorization: DPoP` and a proof, sent once more when
    /// the API asks for a nonce). When the API answers 401, the tokens are renewed once (the
    /// same single renewal per session as pages use) and the request sent once more; its answer
    /// is the answer, whatever it is.
    pub async fn send(
        &mut self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        let answer = self.send_once(&build).await?;
        if answer.status() != reqwest::StatusCode::UNAUTHORIZED || self.user.refresh_token.is_none()
        {
            return Ok(answer);
        }
        let (app, session) = (self.app.clone(), self.session.clone());
        if !renewal::renew_tokens(&app, &session, &mut self.user).await {
            let _ = renewal::end_unrenewed(&app, &session, &self.user).await;
            return Err(ApiError::SessionEnded);
        }
        self.send_once(&build).await
    }

    async fn send_once(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        let client = &self.app.api_client;
        let bearer = || build(client).bearer_auth(&self.user.access_token);
        let Some(key) = &self.user.dpop_key else {
            return Ok(bearer().send().await?);
        };
        let key = dpop::DpopKey::from_stored(key)?;
        // The nonces of the provider that bound the token (a session whose provider is gone
        // from the configuration still gets one retry).
        let own = dpop::Nonces::default();
        let nonces = self.provider().map_or(&own, |p| p.dpop_nonces());
        let request = bearer().build()?;
        let (method, url) = (request.method().clone(), request.url().clone());
        let headers = request.headers().clone();
        let mut first = Some(request);
        dpop::send(
            (&key, nonces),
            &method,
            &url,
            &headers,
            ApiError::Proof,
            |headers| {
                // The request built above, then (for a retry) the same one built again.
                let request = first.take().map_or_else(|| bearer().build(), Ok);
                async move {
                    let mut request = request?;
                    *request.headers_mut() = headers;
                    Ok(client.execute(request).await?)
                }
            },
        )
        .await
    }

    /// The user's sessions, in every browser and on every instance: this browser's first, then
    /// the most recently used. A 503 while the session store does not answer.
    pub async fn sessions(&self) -> Result<Vec<SessionSummary>, ServerFnError> {
        let user = &self.user;
        let records = match self
            .app
            .sessions
            .sessions_of(&user.issuer, &user.subject)
            .await
        {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "the session store did not list the sessions");
                return Err(fail(StatusCode::SERVICE_UNAVAILABLE, outage::CODE));
            }
        };
        let current = self.session.id();
        let mut sessions: Vec<(i64, SessionSummary)> = records
            .iter()
            .filter_map(|record| {
                let owner = crate::session::user_of(record)?;
                let provider = self
                    .app
                    .providers
                    .of_session(&owner.provider, &owner.issuer)
                    .map_or(owner.issuer.as_str(), |p| p.label());
                let summary = owner.summary(&record.id, Some(record.id) == current, provider);
                Some((owner.last_seen, summary))
            })
            .collect();
        sessions.sort_by_key(|(last_seen, s)| (!s.current, std::cmp::Reverse(*last_seen)));
        Ok(sessions.into_iter().map(|(_, summary)| summary).collect())
    }

    /// The provider that signed this session in.
    pub fn provider(&self) -> Option<&Arc<crate::oidc::Provider>> {
        self.app
            .providers
            .of_session(&self.user.provider, &self.user.issuer)
    }
}
