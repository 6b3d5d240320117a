//! Starting a sign-in (`/login`) and finishing it (the callback), and the sign-in page's choice
//! of providers.

use axum::http::HeaderMap;
use tower_sessions::cookie::{time::Duration, Cookie, SameSite};

use super::{app_state, request_headers, safe_return_to, session, set_cookies, AuthError};
use crate::{links, oidc::StepUp, session as sessions, state::AppState, visitor::ProviderChoice};

/// `/login`: where to send the browser. A failure goes to the page that says what happened.
/// With a step-up, the provider is asked to confirm the user again even when they are signed in.
pub async fn start(provider: Option<String>, return_to: Option<String>, step_up: StepUp) -> String {
    let return_to = safe_return_to(return_to.as_deref());
    match start_sign_in(provider.as_deref(), &return_to, step_up).await {
        Ok(target) => target,
        Err(e) => {
            e.log("sign-in not started");
            count_refusal(&e, provider.as_deref());
            failure_page(&e, provider.as_deref())
        }
    }
}

async fn start_sign_in(
    provider: Option<&str>,
    return_to: &str,
    step_up: StepUp,
) -> Result<String, AuthError> {
    let app = app_state()?;
    let session = session().await?;
    if step_up.is_none()
        && sessions::current_user(&session, &app.config.session, &app.metrics)
            .await?
            .is_some()
    {
        return Ok(return_to.to_owned()); // already signed in: nothing to do at a provider
    }
    let provider = match provider {
        Some(id) => app
            .providers
            .by_id(id)
            .ok_or_else(|| AuthError::UnknownProvider(id.chars().take(64).collect()))?,
        None => match app.providers.only() {
            Some(only) => only,
            // Several: the user chooses.
            None => return Ok(links::sign_in_page(None, None, Some(return_to))),
        },
    };
    let (url, pending) = provider.begin(return_to.to_owned(), step_up).await?;
    set_cookies(app.pending.add(&request_headers().await, &pending));
    app.metrics.sign_in_started(provider.id());
    tracing::info!(
        provider = provider.id(),
        "sign-in started; redirecting to the provider"
    );
    Ok(url.into())
}

/// The callback: where to send the browser. A failure goes to the page that says what happened.
pub async fn finish(
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
) -> String {
    let app = match app_state() {
        Ok(app) => app,
        Err(e) => {
            e.log("sign-in refused");
            return failure_page(&e, None);
        }
    };
    // The pending sign-in is used up whatever happens next: a state works once.
    let pending = match &state {
        Some(state) => {
            let (pending, removal) = app.pending.take(&request_headers().await, state);
            set_cookies(removal);
            pending
        }
        None => None,
    };
    let provider = pending.as_ref().map(|p| p.provider.clone());
    match finish_sign_in(&app, pending, code, state.is_some(), error, iss).await {
        Ok(target) => target,
        Err(e) => {
            e.log("sign-in refused");
            count_refusal(&e, provider.as_deref());
            failure_page(&e, provider.as_deref())
        }
    }
}

async fn finish_sign_in(
    app: &AppState,
    pending: Option<crate::oidc::PendingSignIn>,
    code: Option<String>,
    state_present: bool,
    error: Option<String>,
    iss: Option<String>,
) -> Result<String, AuthError> {
    let session = session().await?;
    if let Some(error) = error {
        return Err(AuthError::ProviderSaidNo(error.chars().take(64).collect()));
    }
    let code = code.ok_or(AuthError::MissingCode)?;
    let Some(pending) = pending else {
        // A stale tab, or a replay, arriving when the user is signed in already: show them
        // their page rather than an error.
        if let Some(user) =
            sessions::current_user(&session, &app.config.session, &app.metrics).await?
        {
            tracing::info!(
                user_id = user.user_id,
                "callback without a pending sign-in; already signed in"
            );
            return Ok("/profile".into());
        }
        return Err(AuthError::NoPendingSignIn { state_present });
    };
    // The pending sign-in names its provider: that one alone completes it.
    let provider = app
        .providers
        .by_id(&pending.provider)
        .ok_or_else(|| AuthError::UnknownProvider(pending.provider.clone()))?;
    let return_to = pending.return_to.clone();
    let verified = provider.complete(pending, code, iss).await?;
    if let Some(rule) = provider.unmet_rule(&verified.claims) {
        // No user record, no session: only what signing out at the provider needs.
        sessions::keep_refused(&session, provider.id(), verified.id_token).await?;
        return Err(AuthError::NotAllowed(rule.to_string()));
    }
    let user = app.users.upsert(&verified).await?;
    let headers = request_headers().await;
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|ua| ua.to_str().ok());
    sessions::sign_in(&session, &user, verified, user_agent).await?;
    set_cookies([last_provider_cookie(
        provider.id(),
        app.config.session.secure,
    )]);
    app.metrics.sign_in_completed(provider.id());
    tracing::info!(user_id = user.id, provider = provider.id(), "signed in");
    Ok(return_to)
}

/// Counts a sign-in refused for `e`, under its provider when that is a configured one (never a
/// name a caller made up) and the failure's code.
fn count_refusal(e: &AuthError, provider: Option<&str>) {
    if let Ok(app) = app_state() {
        let provider = provider.and_then(|id| app.providers.by_id(id));
        app.metrics
            .sign_in_refused(provider.map_or("", |p| p.id()), e.failure().code());
    }
}

/// The page that tells of `e`; with several providers, it names the one to try again.
fn failure_page(e: &AuthError, provider: Option<&str>) -> String {
    let provider = provider.filter(|id| {
        app_state()
            .is_ok_and(|app| app.providers.only().is_none() && app.providers.by_id(id).is_some())
    });
    match e {
        AuthError::NotAllowed(rule) => links::not_allowed_page(provider, rule),
        e => links::sign_in_page(Some(e.failure()), provider, None),
    }
}

/// Remembers which provider this browser signed in with last: the sign-in page lists it first.
fn last_provider_cookie(id: &str, secure: bool) -> Cookie<'static> {
    let name = sessions::CookieNames::new(secure).last_provider;
    Cookie::build((name, id.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(Duration::days(365))
        .build()
}

/// The providers to sign in with, in their configured order, with this browser's last used one
/// first.
pub async fn choices() -> Vec<ProviderChoice> {
    let Ok(app) = app_state() else {
        return Vec::new();
    };
    let names = sessions::CookieNames::new(app.config.session.secure);
    let last = last_provider(&request_headers().await, names);
    let mut choices: Vec<ProviderChoice> = app
        .providers
        .iter()
        .map(|p| ProviderChoice {
            id: p.id().to_owned(),
            label: p.label().to_owned(),
            last_used: last.as_deref() == Some(p.id()),
        })
        .collect();
    // Stable: the others keep their order.
    choices.sort_by_key(|c| !c.last_used);
    choices
}

/// The provider this browser signed in with last, as its cookie says.
fn last_provider(headers: &HeaderMap, names: sessions::CookieNames) -> Option<String> {
    sessions::request_cookies(headers)
        .find(|c| c.name() == names.last_provider)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn the_last_used_provider_is_read_from_its_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=b; leptos_oidc_last_provider=globex; c=d"
                .parse()
                .unwrap(),
        );
        let names = sessions::CookieNames::new(false);
        assert_eq!(last_provider(&headers, names).as_deref(), Some("globex"));
        assert_eq!(last_provider(&HeaderMap::new(), names), None);
        // Over https only the __Host- cookie counts: a plain one may come from another host.
        let https = sessions::CookieNames::new(true);
        assert_eq!(last_provider(&headers, https), None);
    }
}
