//! Pages that are the same for every anonymous visitor (no session cookie), rendered once and
//! then served from memory. A visitor with a session cookie always gets a fresh render, so a
//! signed-in page is never cached and never shown to anyone else.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use axum::{
    body::{to_bytes, Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{auth::ssr::sign_in::LAST_PROVIDER_COOKIE, session::COOKIE_NAME};

/// The pages worth it: public, and the same for every anonymous visitor. Only without a query:
/// `/signin?error=...` says something particular.
const PAGES: [&str; 3] = ["/", "/signin", "/logout"];

#[derive(Clone, Default)]
pub struct AnonymousPages(Arc<RwLock<HashMap<&'static str, (HeaderMap, Bytes)>>>);

/// Middleware: serves a cached page when it can, and keeps the first render of each. A visitor
/// with a session, or with a last-used provider (which the sign-in page lists first), gets a
/// page of their own.
pub async fn serve(State(cache): State<AnonymousPages>, request: Request, next: Next) -> Response {
    let page = PAGES
        .iter()
        .find(|page| **page == request.uri().path())
        .filter(|_| request.method() == Method::GET && request.uri().query().is_none());
    // The cookies are looked at only for a page worth it: no other request pays for the scan.
    let Some(&page) =
        page.filter(|_| !has_any_cookie(request.headers(), &[COOKIE_NAME, LAST_PROVIDER_COOKIE]))
    else {
        return next.run(request).await;
    };
    if let Some((headers, body)) = cache.0.read().expect("not poisoned").get(page) {
        return (StatusCode::OK, headers.clone(), body.clone()).into_response();
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK || response.headers().contains_key(header::SET_COOKIE) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Our own render, of a known page: no size limit needed.
    match to_bytes(body, usize::MAX).await {
        Ok(body) => {
            let kept = (parts.headers.clone(), body.clone());
            cache.0.write().expect("not poisoned").insert(page, kept);
            Response::from_parts(parts, Body::from(body))
        }
        Err(e) => {
            tracing::error!(page, error = %e, "page render failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Whether the request carries any of the cookies `names`: one scan, not a parse, on this hot
/// path.
fn has_any_cookie(headers: &HeaderMap, names: &[&str]) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| {
            let pair = pair.trim_start();
            names.iter().any(|name| {
                pair.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('='))
            })
        })
}
