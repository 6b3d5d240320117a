//! Calls to a provider: one pooled client per provider that never follows redirects (a
//! redirecting endpoint must not send the app's credentials elsewhere), each call bounded in
//! time so that a slow provider gives a 504 page, not a hang.

use std::{future::Future, time::Duration};

use openidconnect::reqwest;

use super::OidcError;

pub(super) struct ProviderHttp {
    pub client: reqwest::Client,
    timeout: Duration,
}

impl ProviderHttp {
    pub fn new(timeout: Duration) -> Self {
        // The time for a whole call is bounded by `bounded`, which tells a slow provider (504)
        // from an unreachable one (503).
        let client = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .user_agent(concat!("leptos-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with these settings always builds");
        Self { client, timeout }
    }

    /// Bounds one call to the provider in time.
    pub async fn bounded<T>(&self, call: impl Future<Output = T>) -> Result<T, OidcError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| OidcError::Timeout(self.timeout))
    }
}

/// An error with its causes, for the log.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_past_the_bound_is_a_timeout() {
        let http = ProviderHttp::new(Duration::from_millis(50));
        assert_eq!(http.bounded(async { 7 }).await.unwrap(), 7);
        let slow = http
            .bounded(tokio::time::sleep(Duration::from_secs(5)))
            .await;
        assert!(matches!(slow, Err(OidcError::Timeout(t)) if t == Duration::from_millis(50)));
    }

    #[test]
    fn an_error_is_told_with_its_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("discovery")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "discovery: connection refused");
    }
}
