//! The server half of the flow: starting and finishing sign-ins, signing out, renewing tokens,
//! and the providers' back-channel logout; with the request helpers they share.

pub mod backchannel;
mod error;
pub mod malformed;
pub mod protect;
pub mod renewal;
pub mod sign_in;
pub mod sign_out;

use axum::http::{header, HeaderMap};
use leptos::prelude::use_context;
use tower_sessions::{cookie::Cookie, Session};

pub use error::AuthError;

use crate::state::AppState;

/// The app's state, provided to every request. Absent only when the app is rendered outside a
/// request (the route list is built at start-up), where nobody is signed in.
fn app_state() -> Result<AppState, AuthError> {
    use_context::<AppState>().ok_or(AuthError::NoAppState)
}

async fn session() -> Result<Session, AuthError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|e| AuthError::NoSessionLayer(e.to_string()))
}

/// A real 302 whatever the request's `Accept` says (leptos_axum answers 200 to clients that do
/// not ask for HTML): these endpoints are reached by links, redirects and plain forms, never by
/// the WASM client.
pub fn redirect(target: &str) {
    leptos_axum::redirect(target);
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::FOUND);
    }
}

/// The span of the request being served, as the server's outermost layer made it (the current
/// span outside a request). Work a page's render does may run on a task of its own, where the
/// current span is not the request's.
pub fn request_span() -> tracing::Span {
    use_context::<axum::http::request::Parts>()
        .and_then(|request| request.extensions.get::<RequestSpan>().map(|s| s.0.clone()))
        .unwrap_or_else(tracing::Span::current)
}

/// The request's span, carried in its extensions for the work done on other tasks.
#[derive(Clone)]
pub struct RequestSpan(pub tracing::Span);

/// The request's headers (none outside a request).
async fn request_headers() -> HeaderMap {
    leptos_axum::extract::<HeaderMap>()
        .await
        .unwrap_or_default()
}

fn set_cookies(cookies: impl IntoIterator<Item = Cookie<'static>>) {
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    for cookie in cookies {
        // Our values are base64 or ids: valid cookie characters, no encoding needed.
        if let Ok(value) = cookie.to_string().parse() {
            response.append_header(header::SET_COOKIE, value);
        }
    }
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
/// another origin (`//host`, `/\host`, encoded slashes, schemes, control characters) is refused.
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
