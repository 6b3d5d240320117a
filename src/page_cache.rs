//! Pages served from memory instead of rendered again:
//!
//! - for anonymous visitors (no session cookie), the public pages, the same for all of them;
//! - for a signed-in visitor, the pages rendered from their session's current record, kept
//!   beside that record in the session cache (`session::Cache`) and dropped with it whenever the
//!   session changes or ends on any instance. Such a page is served only to a request carrying
//!   that session's cookie, and only until the session wants a render again (a touch of its
//!   last use, a token renewal, its end).
//!
//! Each serving gets a fresh CSP nonce ([`Renonced`]).

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, RwLock},
};

use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use tower_sessions::session::Id;

use crate::{
    config::SessionConfig,
    csp::Renonced,
    session::{self, Cache, CookieNames},
};

/// The pages worth it. Only without a query: `/signin?error=...` says something particular.
pub const PAGES: [&str; 4] = ["/", "/signin", "/profile", "/logout"];

#[derive(Clone)]
pub struct Pages {
    anonymous: Arc<RwLock<HashMap<&'static str, Renonced>>>,
    sessions: Arc<Cache>,
    config: SessionConfig,
}

impl Pages {
    pub fn new(sessions: Arc<Cache>, config: SessionConfig) -> Self {
        Self {
            anonymous: Arc::default(),
            sessions,
            config,
        }
    }
}

/// Middleware: serves a kept page when it can, and keeps the renders worth keeping.
pub async fn serve(State(pages): State<Pages>, request: Request, next: Next) -> Response {
    let page = PAGES
        .iter()
        .find(|page| **page == request.uri().path())
        .filter(|_| request.method() == Method::GET && request.uri().query().is_none());
    // The cookies are looked at only for a page worth it: no other request pays for the scan.
    let Some(&page) = page else {
        return next.run(request).await;
    };
    let names = CookieNames::new(pages.config.secure);
    match cookie_value(request.headers(), names.session) {
        Some(id) => match Id::from_str(id) {
            Ok(id) => signed_in(&pages, id, page, request, next).await,
            Err(_) => next.run(request).await,
        },
        // A visitor with a last-used provider (which the sign-in page lists first) gets a page
        // of their own.
        None if cookie_value(request.headers(), names.last_provider).is_some() => {
            next.run(request).await
        }
        None => anonymous(&pages, page, request, next).await,
    }
}

async fn anonymous(pages: &Pages, page: &'static str, request: Request, next: Next) -> Response {
    if let Some(kept) = pages.anonymous.read().expect("not poisoned").get(page) {
        return kept.serve();
    }
    let response = next.run(request).await;
    keep(response, |content| {
        let mut kept = pages.anonymous.write().expect("not poisoned");
        kept.insert(page, content);
    })
    .await
}

async fn signed_in(
    pages: &Pages,
    id: Id,
    page: &'static str,
    request: Request,
    next: Next,
) -> Response {
    // Without the session's record at hand (first request here, or the cache is off), render.
    let Some(entry) = pages.sessions.get(&id) else {
        return next.run(request).await;
    };
    let now = Utc::now().timestamp();
    if let Some(kept) = entry.page(page).filter(|kept| now < kept.until) {
        return kept.content.serve();
    }
    let response = next.run(request).await;
    let Some(until) =
        session::pages_good_until(&entry.record, &pages.config).filter(|until| now < *until)
    else {
        return response;
    };
    keep(response, |content| {
        let kept = session::Page { until, content };
        // Kept only if the render was from this very record: a session that changed meanwhile
        // has a new entry, and the page finds no place.
        pages.sessions.keep_page(&entry, page, kept);
    })
    .await
}

/// Hands a plain 200 answer (no cookie set) to `keep` and serves it.
async fn keep(response: Response, keep: impl FnOnce(Renonced)) -> Response {
    if response.status() != StatusCode::OK || response.headers().contains_key(header::SET_COOKIE) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Our own render, of a known page: no size limit needed.
    match to_bytes(body, usize::MAX).await {
        Ok(body) => {
            keep(Renonced::new(parts.headers.clone(), body.clone()));
            Response::from_parts(parts, Body::from(body))
        }
        Err(e) => {
            tracing::error!(error = %e, "page render failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The value of the request's cookie `name`: one scan, not a parse, on this hot path.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim_start().strip_prefix(name)?.strip_prefix('='))
        .map(str::trim_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_by_its_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "leptos_oidc_session_x=1; leptos_oidc_session=abc ; other=2"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie_value(&headers, "leptos_oidc_session"), Some("abc"));
        assert_eq!(cookie_value(&headers, "other"), Some("2"));
        assert_eq!(cookie_value(&headers, "missing"), None);
    }
}
