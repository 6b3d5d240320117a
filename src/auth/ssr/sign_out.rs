//! Signing out: here, at the provider that signed this session in, and with `everywhere`, in
//! every browser of the user; or one other browser of the user's, from `/sessions`.

use std::sync::Arc;

use super::{app_state, request_headers, same_origin, session, AuthError};
use crate::{
    failure::{SessionEnding, SignOutFailure},
    links,
    oidc::Provider,
    session as sessions,
};

/// Why a sign-out was refused or failed, inside the server.
enum SignOutError {
    Forged { user_id: i64 },
    Failed(AuthError),
}

impl From<AuthError> for SignOutError {
    fn from(e: AuthError) -> Self {
        Self::Failed(e)
    }
}

impl From<tower_sessions::session::Error> for SignOutError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl From<tower_sessions::session_store::Error> for SignOutError {
    fn from(e: tower_sessions::session_store::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// `POST /logout`: where to send the browser. A refusal goes to the sign-out page, which says why.
pub async fn sign_out(csrf: String, everywhere: bool) -> String {
    match sign_out_here(&csrf, everywhere).await {
        Ok(target) => target,
        Err(SignOutError::Forged { user_id }) => {
            tracing::warn!(user_id, "sign-out refused: CSRF check failed");
            links::sign_out_page(SignOutFailure::Forged)
        }
        Err(SignOutError::Failed(e)) => {
            e.log("sign-out failed");
            links::sign_out_page(SignOutFailure::Failed)
        }
    }
}

async fn sign_out_here(csrf: &str, everywhere: bool) -> Result<String, SignOutError> {
    let app = app_state()?;
    let session = session().await?;
    let Some(user) = sessions::current_user(&session, &app.config.session, &app.metrics).await?
    else {
        return sign_out_refused(&app, &session).await;
    };
    if !same_origin(&request_headers().await, app.config.public_origin.as_str())
        || !sessions::csrf_matches(&user, csrf)
    {
        return Err(SignOutError::Forged {
            user_id: user.user_id,
        });
    }
    // Ending every session of the user is for the user alone: one who has not entered their
    // credentials lately confirms at the provider first, and comes back to confirm here.
    let provider = app.providers.of_session(&user.provider, &user.issuer);
    if everywhere && !user.authenticated_within(app.config.step_up_max_age) {
        if let Some(provider) = provider {
            tracing::info!(user_id = user.user_id, "sign out everywhere: step-up first");
            let max_age = app.config.step_up_max_age.as_secs();
            return Ok(links::step_up(
                provider.id(),
                Some(max_age),
                None,
                links::CONFIRM_EVERYWHERE,
            ));
        }
    }
    // Whose tokens to revoke at the provider once signed out: this session's, or with
    // `everywhere` those of every session of the user, read before they go.
    let mut signed_out = vec![user.clone()];
    if everywhere {
        let sessions = app
            .sessions
            .sessions_of(&user.issuer, &user.subject)
            .await?;
        signed_out.extend(
            sessions
                .iter()
                .filter(|record| Some(record.id) != session.id())
                .filter_map(sessions::user_of),
        );
        let ended = app
            .sessions
            .end_sessions_of(&user.issuer, &user.subject)
            .await?;
        app.metrics.sessions_ended("everywhere", ended);
        tracing::info!(user_id = user.user_id, ended, "signed out everywhere");
    } else {
        app.metrics.sessions_ended("sign_out", 1);
    }
    sessions::sign_out(&session).await?;
    tracing::info!(user_id = user.user_id, "signed out");
    revoke_tokens(&app, signed_out);
    Ok(sign_out_at(provider, &user.id_token).await)
}

/// `POST /sessions/end`: ends the session of the user's that `handle` names (another browser of
/// theirs), and says on `/sessions` what became of it.
pub async fn end_other(csrf: &str, handle: &str) -> String {
    match end_other_session(csrf, handle).await {
        Ok(ending) => links::sessions_page(Ok(ending)),
        Err(SignOutError::Forged { user_id }) => {
            tracing::warn!(user_id, "ending a session refused: CSRF check failed");
            links::sessions_page(Err(SignOutFailure::Forged))
        }
        Err(SignOutError::Failed(e)) => {
            e.log("ending a session failed");
            links::sessions_page(Err(SignOutFailure::Failed))
        }
    }
}

async fn end_other_session(csrf: &str, handle: &str) -> Result<SessionEnding, SignOutError> {
    use tower_sessions::SessionStore;
    let app = app_state()?;
    let session = session().await?;
    let Some(user) = sessions::current_user(&session, &app.config.session, &app.metrics).await?
    else {
        // Signed out meanwhile: `/sessions` sends them to sign in.
        return Ok(SessionEnding::Gone);
    };
    if !same_origin(&request_headers().await, app.config.public_origin.as_str())
        || !sessions::csrf_matches(&user, csrf)
    {
        return Err(SignOutError::Forged {
            user_id: user.user_id,
        });
    }
    // Looked for among this user's own sessions: a handle of anyone else's finds nothing.
    let records = app
        .sessions
        .sessions_of(&user.issuer, &user.subject)
        .await?;
    let Some(record) = records.iter().find(|r| sessions::handle(&r.id) == handle) else {
        return Ok(SessionEnding::Gone);
    };
    if Some(record.id) == session.id() {
        return Ok(SessionEnding::Current);
    }
    app.sessions.delete(&record.id).await?;
    app.metrics.sessions_ended("sessions_page", 1);
    tracing::info!(user_id = user.user_id, "another session of the user ended");
    revoke_tokens(&app, sessions::user_of(record).into_iter().collect());
    Ok(SessionEnding::Ended)
}

/// Where to send the browser: to sign out at `provider` too, when it has an end-session
/// endpoint (with the ID token as its hint), else home.
async fn sign_out_at(provider: Option<&Arc<Provider>>, id_token: &str) -> String {
    match provider {
        Some(p) => p.end_session_url(Some(id_token)).await,
        None => None,
    }
    .map_or_else(|| "/".into(), String::from)
}

/// Nobody signed in here; a sign-in of this browser's that the app refused is signed out at its
/// provider, so that the user can come back with another account.
async fn sign_out_refused(
    app: &crate::state::AppState,
    session: &tower_sessions::Session,
) -> Result<String, SignOutError> {
    if !same_origin(&request_headers().await, app.config.public_origin.as_str()) {
        return Ok("/".into());
    }
    let Some(refused) = sessions::take_refused(session).await? else {
        return Ok("/".into());
    };
    sessions::sign_out(session).await?;
    tracing::info!(provider = %refused.provider, "refused sign-in signed out at its provider");
    let provider = app.providers.by_id(&refused.provider);
    Ok(sign_out_at(provider, &refused.id_token).await)
}

/// Revokes the tokens of signed-out sessions at their providers (RFC 7009), in the background:
/// a provider that is slow or does not answer holds up no sign-out.
fn revoke_tokens(app: &crate::state::AppState, users: Vec<sessions::SessionUser>) {
    use tracing::Instrument;
    let providers = app.providers.clone();
    let revoking = async move {
        for user in users {
            let Some(provider) = providers.of_session(&user.provider, &user.issuer) else {
                continue;
            };
            match provider
                .revoke(user.refresh_token.as_deref(), &user.access_token)
                .await
            {
                Ok(true) => {
                    tracing::info!(user_id = user.user_id, "tokens revoked at the provider")
                }
                Ok(false) => {} // the provider offers no revocation
                Err(e) => {
                    tracing::warn!(user_id = user.user_id, error = %e, "tokens not revoked at the provider")
                }
            }
        }
    };
    tokio::spawn(revoking.instrument(tracing::Span::current()));
}
