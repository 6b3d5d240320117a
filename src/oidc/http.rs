//! Calls to a provider: one pooled client per provider that never follows redirects (a
//! redirecting endpoint must not send the app's credentials elsewhere), each call bounded in
//! time so that a slow provider gives a 504 page, not a hang, counted and timed by endpoint,
//! and traced (a span of its own, and the `traceparent` sent along).

use std::{future::Future, sync::Arc, time::Duration};

use openidconnect::{reqwest, AsyncHttpClient, HttpRequest};
use tracing::Instrument;

use super::OidcError;
use crate::{metrics::Metrics, traces};

/// The HTTP client for a provider: reqwest's, adding the trace context to every request.
pub(super) struct Client(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Client {
    type Error = <reqwest::Client as AsyncHttpClient<'c>>::Error;
    type Future = <reqwest::Client as AsyncHttpClient<'c>>::Future;

    fn call(&'c self, mut request: HttpRequest) -> Self::Future {
        if traces::on() {
            traces::inject(request.headers_mut());
        }
        self.0.call(request)
    }
}

pub(super) struct ProviderHttp {
    pub client: Client,
    timeout: Duration,
    /// The provider's id, for the metrics.
    provider: String,
    metrics: Arc<Metrics>,
}

/// The provider endpoints the app calls (the metrics' `endpoint` label).
#[derive(Clone, Copy)]
pub(super) enum Endpoint {
    /// The discovery document and the keys it names.
    Discovery,
    Keys,
    Token,
    Userinfo,
    Introspection,
    Revocation,
    /// Pushed authorization requests (RFC 9126).
    Par,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::Keys => "keys",
            Self::Token => "token",
            Self::Userinfo => "userinfo",
            Self::Introspection => "introspection",
            Self::Revocation => "revocation",
            Self::Par => "par",
        }
    }
}

impl ProviderHttp {
    pub fn new(timeout: Duration, provider: &str, metrics: Arc<Metrics>) -> Self {
        // The time for a whole call is bounded by `bounded`, which tells a slow provider (504)
        // from an unreachable one (503).
        let client = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .user_agent(concat!("leptos-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with these settings always builds");
        Self {
            client: Client(client),
            timeout,
            provider: provider.to_owned(),
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Bounds one call to the provider's `endpoint` in time, and counts it.
    pub async fn bounded<T, E>(
        &self,
        endpoint: Endpoint,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, OidcError> {
        let started = std::time::Instant::now();
        let span = tracing::debug_span!(
            "provider call",
            otel.name = format!("{} {}", self.provider, endpoint.label()),
            provider = %self.provider,
            endpoint = endpoint.label(),
        );
        let answer = tokio::time::timeout(self.timeout, call)
            .instrument(span)
            .await;
        let outcome = match &answer {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        self.metrics
            .provider_call(&self.provider, endpoint.label(), outcome, started.elapsed());
        answer.map_err(|_| OidcError::Timeout(self.timeout))
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
        let metrics = Arc::new(Metrics::default());
        let http = ProviderHttp::new(Duration::from_millis(50), "acme", metrics.clone());
        let quick = http.bounded(Endpoint::Token, async { Ok::<_, ()>(7) });
        assert_eq!(quick.await.unwrap(), Ok(7));
        let slow = http.bounded(Endpoint::Token, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, ()>(())
        });
        assert!(matches!(slow.await, Err(OidcError::Timeout(t)) if t == Duration::from_millis(50)));
        let text = metrics.render();
        for outcome in ["ok", "timeout"] {
            let line = format!("leptos_oidc_provider_calls_total{{provider=\"acme\",endpoint=\"token\",outcome=\"{outcome}\"}} 1");
            assert!(text.contains(&line), "{text}");
        }
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
