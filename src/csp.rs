//! The Content-Security-Policy of every page. Scripts run only with the response's nonce, which
//! Leptos puts on its hydration scripts, and the WASM only from the app; forms are posted only
//! to the app and redirected on only to the providers (browsers apply `form-action` to the
//! redirects after a post: sign-out goes on to the provider's end-session endpoint, a step-up to
//! its sign-in); no framing, no `<base>`, no plugins.
//!
//! A page served again from memory (`page_cache`) gets a fresh nonce each time: [`Renonced`].

use axum::{
    body::Bytes,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use leptos::nonce::Nonce;

/// The policy of a page rendered with `nonce`; `form_targets` are the origins a posted form
/// may be redirected to besides the app's own, `reload` the live-reload socket while
/// `cargo leptos watch` runs.
pub fn policy(nonce: &str, form_targets: &[String], reload: Option<&str>) -> String {
    let mut policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self'; connect-src 'self'"
    );
    if let Some(source) = reload {
        policy.push(' ');
        policy.push_str(source);
    }
    policy.push_str("; form-action 'self'");
    for origin in form_targets {
        policy.push(' ');
        policy.push_str(origin);
    }
    policy.push_str("; frame-ancestors 'none'; base-uri 'none'; object-src 'none'");
    policy
}

/// Sets the policy on the page being rendered (by the app's shell, on the server), with the
/// render's nonce; `form_targets` as for [`policy`].
pub fn set_for_page(options: &leptos::config::LeptosOptions, form_targets: &[String]) {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let policy = policy(&nonce, form_targets, live_reload(options).as_deref());
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The live-reload socket's sources while `cargo leptos watch` runs (as Leptos's `AutoReload`
/// decides), on the host the page was loaded from: `ws:`, or `wss:` for a page served over
/// https, as its script picks.
fn live_reload(options: &leptos::config::LeptosOptions) -> Option<String> {
    std::env::var("LEPTOS_WATCH").ok()?;
    let port = options.reload_external_port.unwrap_or(options.reload_port);
    Some(format!("ws://*:{port} wss://*:{port}"))
}

/// A page kept to be served again, and where its nonce is: each serving gets a fresh nonce, in
/// the policy and in the page alike, so that no nonce is ever seen twice.
#[derive(Clone, Debug)]
pub struct Renonced {
    headers: HeaderMap,
    body: Bytes,
    /// The nonce's length, and where it stands in the body and in the policy.
    nonce_len: usize,
    in_body: std::sync::Arc<[usize]>,
    in_policy: Option<usize>,
}

impl Renonced {
    /// A rendered page, to be served again.
    pub fn new(headers: HeaderMap, body: Bytes) -> Self {
        let policy = headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let nonce = policy
            .split_once("'nonce-")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(nonce, _)| nonce)
            .unwrap_or_default();
        let (in_body, in_policy) = if nonce.is_empty() {
            (Default::default(), None)
        } else {
            let in_policy = policy.find(nonce);
            let finder = memchr::memmem::Finder::new(nonce.as_bytes());
            (finder.find_iter(&body).collect(), in_policy)
        };
        Self {
            nonce_len: nonce.len(),
            headers,
            body,
            in_body,
            in_policy,
        }
    }

    /// The page with a fresh nonce, as a 200.
    pub fn serve(&self) -> Response {
        let Some(at) = self.in_policy else {
            return (StatusCode::OK, self.headers.clone(), self.body.clone()).into_response();
        };
        let nonce = Nonce::new();
        let nonce = nonce.as_bytes();
        if nonce.len() != self.nonce_len {
            // Not as rendered (cannot happen: Leptos's nonces are all of one length).
            return (StatusCode::OK, self.headers.clone(), self.body.clone()).into_response();
        }
        let mut body = self.body.to_vec();
        for &spot in self.in_body.iter() {
            body[spot..spot + nonce.len()].copy_from_slice(nonce);
        }
        let mut headers = self.headers.clone();
        let mut policy = self.headers[header::CONTENT_SECURITY_POLICY]
            .as_bytes()
            .to_vec();
        policy[at..at + nonce.len()].copy_from_slice(nonce);
        if let Ok(policy) = HeaderValue::from_bytes(&policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        (StatusCode::OK, headers, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline_and_forms_only_to_the_app_and_providers() {
        let policy = policy("abc", &["https://idp.example".into()], None);
        assert!(!policy.contains("'unsafe-inline'") && !policy.contains(" 'unsafe-eval'"));
        assert!(policy.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"));
        assert!(policy.contains("form-action 'self' https://idp.example;"));
        for directive in [
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(policy.contains(directive), "{directive}");
        }
        let watching = super::policy("abc", &[], Some("ws://*:3001 wss://*:3001"));
        assert!(watching.contains("connect-src 'self' ws://*:3001 wss://*:3001;"));
    }

    #[test]
    fn a_kept_page_gets_a_fresh_nonce_each_time_everywhere_it_stood() {
        let old = Nonce::new();
        let mut headers = HeaderMap::new();
        let value = policy(&old, &[], None);
        headers.insert(header::CONTENT_SECURITY_POLICY, value.parse().unwrap());
        let body = format!(
            r#"<link crossorigin="{old}"><script nonce="{old}">go()</script><script nonce="{old}">x</script>"#
        );
        let kept = Renonced::new(headers, Bytes::from(body.clone()));
        let nonces = |response: &Response| {
            let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            let nonce = policy
                .split("'nonce-")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            nonce.to_owned()
        };
        let (one, two) = (kept.serve(), kept.serve());
        let (first, second) = (nonces(&one), nonces(&two));
        assert_ne!(first, second);
        assert_ne!(first, old.to_string());
        let body_of = |response: Response| async {
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let served = futures::executor::block_on(body_of(one));
        assert_eq!(served, body.replace(&old.to_string(), &first));
        assert!(!served.contains(&old.to_string()));
    }
}
