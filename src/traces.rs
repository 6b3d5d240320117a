//! OpenTelemetry traces. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, every request's span goes out over OTLP/HTTP
//! (protobuf), with a child span for each call to a provider and to a store, and calls to
//! providers carry the W3C `traceparent`; the standard variables (`OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, ...) apply. Without them nothing is exported, and the work that
//! only traces need is not done.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider};
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{SpanExporter, WithHttpConfig};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{registry::LookupSpan, EnvFilter, Layer};

use crate::config::ConfigError;

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The exporter, to be flushed before the process exits.
pub struct Traces(SdkTracerProvider);

impl Traces {
    /// Sends the spans still waiting; the exporter's own thread may need the runtime meanwhile.
    pub async fn shutdown(self) {
        let provider = self.0;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "the last spans were not exported");
        }
    }
}

/// The layer that exports spans, when the environment asks for it: this app's spans down to
/// `debug` (the provider and store calls), others from `warn`.
#[allow(clippy::type_complexity)]
pub fn layer<S>() -> Result<Option<(Box<dyn Layer<S> + Send + Sync>, Traces)>, ConfigError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let set = |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime {
            client: openidconnect::reqwest::Client::new(),
            runtime: tokio::runtime::Handle::current(),
        })
        .build()
        .map_err(|e| ConfigError::new("OTEL_EXPORTER_OTLP_ENDPOINT", e.to_string()))?;
    let mut resource = Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("leptos-oidc");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("leptos-oidc"))
        .with_filter(EnvFilter::new("warn,leptos_oidc=debug"))
        .boxed();
    ON.store(true, Ordering::Relaxed);
    Ok(Some((layer, Traces(provider))))
}

/// Makes `span` part of the caller's trace, when the request carries a `traceparent`.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Adds the current span's `traceparent` to an outgoing request's headers.
pub fn inject(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// Sends the exports through the app's HTTP client, on the app's runtime: the exporter runs on
/// a thread of its own, where an async client finds no runtime.
#[derive(Debug)]
struct OnRuntime {
    client: openidconnect::reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: axum::http::Request<Bytes>,
    ) -> Result<axum::http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = openidconnect::reqwest::Request::try_from(request)?;
            let response =
                tokio::time::timeout(std::time::Duration::from_secs(10), client.execute(request))
                    .await
                    .map_err(|_| "the trace receiver did not answer within 10 s")??;
            let mut answer = axum::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            Ok::<_, HttpError>(answer.body(response.bytes().await?)?)
        });
        sent.await?
    }
}
