//! `POST /backchannel-logout`: a provider orders the sessions of one of its sessions (`sid`),
//! or of a user (`sub`), ended. The token is checked with the keys of the provider it names
//! alone; every instance sharing the store sees the sessions gone.

use axum::{
    extract::{rejection::FormRejection, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Form, Json,
};
use serde::Deserialize;

use crate::{oidc::OidcError, state::AppState};

#[derive(Deserialize)]
pub struct LogoutTokenForm {
    logout_token: String,
}

/// Why a back-channel logout was not done: the provider is told with a 400 (a bad token) or a
/// 503 (try again), and a JSON error body.
#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("{0}")]
    BadForm(String),
    #[error("logout token from no configured issuer")]
    UnknownIssuer,
    #[error(transparent)]
    Token(#[from] OidcError),
    #[error("logout token already used")]
    Replayed,
    #[error("the session store failed: {0}")]
    Store(#[from] tower_sessions::session_store::Error),
}

impl BackchannelError {
    /// Why it was refused, as the metrics count it.
    fn reason(&self) -> &'static str {
        match self {
            Self::BadForm(_) => "bad_request",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Token(e) if e.is_transient() => "provider_unavailable",
            Self::Token(_) => "bad_token",
            Self::Replayed => "replayed",
            Self::Store(_) => "store_unavailable",
        }
    }
}

impl IntoResponse for BackchannelError {
    fn into_response(self) -> Response {
        let transient = match &self {
            Self::Token(e) => e.is_transient(),
            Self::Store(_) => true,
            _ => false,
        };
        let (status, error, description) = if transient {
            let description = match &self {
                Self::Store(_) => "the session store is unavailable".to_owned(),
                other => other.to_string(),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                description,
            )
        } else {
            (StatusCode::BAD_REQUEST, "invalid_request", self.to_string())
        };
        let body = Json(serde_json::json!({ "error": error, "error_description": description }));
        (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
    }
}

pub async fn backchannel_logout(
    State(app): State<AppState>,
    form: Result<Form<LogoutTokenForm>, FormRejection>,
) -> Result<impl IntoResponse, BackchannelError> {
    let result = end_sessions(&app, form).await;
    match &result {
        Ok(()) => app.metrics.backchannel_logout("accepted"),
        Err(e) => {
            app.metrics.backchannel_logout(e.reason());
            tracing::warn!(error = %e, "back-channel logout refused");
        }
    }
    result.map(|()| ([(header::CACHE_CONTROL, "no-store")], ""))
}

async fn end_sessions(
    app: &AppState,
    form: Result<Form<LogoutTokenForm>, FormRejection>,
) -> Result<(), BackchannelError> {
    let Form(form) = form.map_err(|e| BackchannelError::BadForm(e.body_text()))?;
    let provider = app
        .providers
        .for_jwt(&form.logout_token)
        .ok_or(BackchannelError::UnknownIssuer)?;
    let order = provider.verify_logout_token(&form.logout_token).await?;
    let issuer = provider.issuer();
    if !app
        .sessions
        .first_use_of_logout_token(issuer, &order.jti, order.expires_at)
        .await?
    {
        return Err(BackchannelError::Replayed);
    }
    // A `sid` names one provider session: only its sessions end. A `sub` alone names them all.
    let ended = match (&order.sid, &order.subject) {
        (Some(sid), _) => app.sessions.end_provider_session(issuer, sid).await?,
        (None, Some(subject)) => app.sessions.end_sessions_of(issuer, subject).await?,
        (None, None) => 0,
    };
    app.metrics.sessions_ended("backchannel", ended);
    tracing::info!(
        provider = provider.id(),
        ended,
        by_sid = order.sid.is_some(),
        "back-channel logout"
    );
    Ok(())
}
