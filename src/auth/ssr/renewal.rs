//! Who is looking, with their tokens renewed before they expire: one refresh per session at a
//! time, across instances, the others waiting for its result.

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use leptos::prelude::ServerFnError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use super::app_state;
use crate::{
    oidc::{Provider, Refreshed},
    session::{self, SessionUser},
    state::AppState,
    visitor::Visitor,
};

/// Who is looking, as pages see them.
pub async fn current_user() -> Result<Visitor, ServerFnError> {
    let Ok(app) = app_state() else {
        return Ok(Visitor::Anonymous);
    };
    let session = leptos_axum::extract::<Session>().await?;
    let user = match signed_in(&app, &session).await {
        Ok(user) => user,
        Err(visitor) => return Ok(visitor),
    };
    let provider = app
        .providers
        .of_session(&user.provider, &user.issuer)
        .map_or(user.issuer.as_str(), |p| p.label());
    Ok(Visitor::SignedIn(Box::new(
        user.profile(&app.config.session, provider),
    )))
}

/// The signed-in user, with their tokens renewed when due; or who else is looking. A session
/// store that does not answer makes the visitor unknown, never signed out.
pub async fn signed_in(app: &AppState, session: &Session) -> Result<SessionUser, Visitor> {
    let unknown = |e: tower_sessions::session::Error| {
        tracing::error!(error = %e, "the session store did not answer");
        Visitor::Unknown
    };
    let mut user = match session::current_user(session, &app.config.session, &app.metrics).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(Visitor::Anonymous),
        Err(e) => return Err(unknown(e)),
    };
    if session::tokens_due(&user) && !renew_tokens(app, session, &mut user).await {
        end_unrenewed(app, session, &user).await?;
        return Err(Visitor::SessionEnded);
    }
    Ok(user)
}

/// Ends a session whose tokens the provider would not renew.
pub async fn end_unrenewed(
    app: &AppState,
    session: &Session,
    user: &SessionUser,
) -> Result<(), Visitor> {
    if let Err(e) = session::sign_out(session).await {
        tracing::error!(error = %e, "the session store did not answer");
        return Err(Visitor::Unknown);
    }
    app.metrics.sessions_ended("renewal_refused", 1);
    tracing::info!(user_id = user.user_id, "session ended: tokens not renewed");
    Ok(())
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
/// instance or another, wait for the one that claimed it and take its result. `false` when the
/// provider refused, and the session must end.
pub async fn renew_tokens(app: &AppState, session: &Session, user: &mut SessionUser) -> bool {
    let Some(refresh_token) = user.refresh_token.clone() else {
        return true;
    };
    let Some(provider) = app.providers.of_session(&user.provider, &user.issuer) else {
        // Its provider is no longer configured: nobody can renew these tokens.
        tracing::warn!(provider = %user.provider, "token refresh impossible: provider not configured");
        return false;
    };
    let key = renewal_key(&refresh_token, &user.access_token);
    let renewal = match app.sessions.claim_refresh(&key, REFRESH_CLAIM).await {
        Ok(true) => {
            let renewal = refresh(provider, user, &refresh_token).await;
            app.metrics.renewal(match renewal {
                Renewal::Renewed(_) => "renewed",
                Renewal::Refused => "refused",
                Renewal::Later => "unreachable",
            });
            let published = serde_json::to_string(&renewal).unwrap_or_default();
            if let Err(e) = app.sessions.finish_refresh(&key, &published).await {
                tracing::warn!(error = %e, "token refresh result not shared");
            }
            renewal
        }
        Ok(false) => wait_for_renewal(app, &key, provider.timeout()).await,
        Err(e) => {
            tracing::warn!(error = %e, "token refresh not claimed");
            Renewal::Later
        }
    };
    match renewal {
        Renewal::Renewed(refreshed) => {
            if let Err(e) = session::keep_refreshed(session, user, refreshed).await {
                tracing::error!(error = %e, "renewed tokens not saved");
            }
            tracing::info!(user_id = user.user_id, "tokens renewed");
            true
        }
        Renewal::Refused => false,
        Renewal::Later => true,
    }
}

/// What names one renewal, shared by the requests that hold the same tokens: the refresh token
/// alone would not do, as many providers keep it across refreshes (oidc-provider and Okta for
/// confidential clients, Google), and a later renewal would then take an earlier one's result,
/// its access token by then expired.
fn renewal_key(refresh_token: &str, access_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(refresh_token)
        .chain_update([0])
        .chain_update(access_token)
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// The refresh itself, at the provider that signed the session in.
async fn refresh(provider: &Provider, user: &SessionUser, refresh_token: &str) -> Renewal {
    match provider
        .refresh(refresh_token, &user.subject, user.dpop_key.as_deref())
        .await
    {
        Ok(refreshed) => Renewal::Renewed(refreshed),
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "token refresh postponed");
            Renewal::Later
        }
        Err(e) => {
            tracing::warn!(error = %e, "token refresh refused");
            Renewal::Refused
        }
    }
}

/// Waits for the refresh another request claimed, as long as one call to the provider may take
/// and a second more.
async fn wait_for_renewal(app: &AppState, key: &str, timeout: Duration) -> Renewal {
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
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
