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

use crate::session::COOKIE_NAME;

/// The pages worth it: public, and the same for every anonymous visitor. Only without a query:
/// `/signin?error=...` says something particular.
const PAGES: [&str; 3] = ["/", "/signin", "/logout"];

#[derive(Clone, Default)]
pub struct AnonymousPages(Arc<RwLock<HashMap<&'static str, (HeaderMap, Bytes)>>>);

/// Middleware: serves a cached page when it can, and keeps the first render of each.
pub async fn serve(State(cache): State<AnonymousPages>, request: Request, next: Next) -> Response {
    let page = PAGES
        .iter()
        .find(|page| **page == request.uri().path())
        .filter(|_| request.method() == Method::GET && request.uri().query().is_none());
    let Some(&page) = page.filter(|_| !has_session_cookie(request.headers())) else {
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

fn has_session_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| {
            pair.trim_start().starts_with(COOKIE_NAME)
                && pair.trim_start()[COOKIE_NAME.len()..].starts_with('=')
        })
}
