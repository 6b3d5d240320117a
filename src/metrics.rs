//! Prometheus metrics (`GET /metrics`, or on `METRICS_ADDR` alone): requests, sign-ins, calls to
//! providers, renewals, back-channel logouts, ended sessions and store errors.
//!
//! Every label comes from a fixed set: route templates, the configured providers' ids, and
//! reason and outcome codes of this app's own. Never a user, a raw path, a provider's error text
//! or anything a caller chose.

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

/// What Prometheus is given to read: `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    route: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignIn {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    provider: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Call {
    provider: String,
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Endpoint {
    provider: String,
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Store {
    store: &'static str,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// One instance's metrics, registered once at start.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Answered, Counter>,
    request_seconds: Timings<Route>,
    sign_ins_started: Family<SignIn, Counter>,
    sign_ins_completed: Family<SignIn, Counter>,
    sign_ins_refused: Family<Refusal, Counter>,
    provider_calls: Family<Call, Counter>,
    provider_call_seconds: Timings<Endpoint>,
    key_refetches: Family<SignIn, Counter>,
    renewals: Family<Outcome, Counter>,
    backchannel_logouts: Family<Outcome, Counter>,
    sessions_ended: Family<Kind, Counter>,
    store_errors: Family<Store, Counter>,
}

/// Pages answer in well under a millisecond; providers in tens of milliseconds; both may take
/// up to their bounds (a second, ten seconds).
fn request_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

fn provider_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// A counter family, registered as `name`.
fn counter<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::default();
    registry.register(name, help, family.clone());
    family
}

/// A histogram family of seconds with these `buckets`, registered as `name`.
fn timings<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    buckets: fn() -> Histogram,
) -> Timings<L>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Timings::new_with_constructor(buckets);
    registry.register_with_unit(name, help, Unit::Seconds, family.clone());
    family
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("leptos_oidc");
        let requests = counter(
            &mut registry,
            "http_requests",
            "HTTP requests answered, by route template and status class",
        );
        let sign_ins_started = counter(
            &mut registry,
            "sign_ins_started",
            "Sign-ins sent to a provider",
        );
        let sign_ins_completed = counter(
            &mut registry,
            "sign_ins_completed",
            "Sign-ins that ended signed in",
        );
        let sign_ins_refused = counter(
            &mut registry,
            "sign_ins_refused",
            "Sign-ins that failed, by provider (empty when none was known) and reason",
        );
        let provider_calls = counter(
            &mut registry,
            "provider_calls",
            "Calls to providers, by endpoint and outcome (ok, error, timeout)",
        );
        let key_refetches = counter(
            &mut registry,
            "provider_key_refetches",
            "Key sets fetched again for a key id not yet seen",
        );
        let renewals = counter(
            &mut registry,
            "token_renewals",
            "Token renewals, by outcome (renewed, refused, unreachable)",
        );
        let backchannel_logouts = counter(
            &mut registry,
            "backchannel_logouts",
            "Back-channel logouts, by outcome (accepted, or why refused)",
        );
        let sessions_ended = counter(
            &mut registry,
            "sessions_ended",
            "Sessions ended, by kind (sign_out, everywhere, sessions_page, backchannel, expiry, renewal_refused, key_gone)",
        );
        let store_errors = counter(
            &mut registry,
            "store_errors",
            "Calls to the session store or the database that failed or found no answer in time",
        );
        let request_seconds = timings(
            &mut registry,
            "http_request_duration",
            "Time to answer an HTTP request, by route template",
            request_buckets,
        );
        let provider_call_seconds = timings(
            &mut registry,
            "provider_call_duration",
            "Time a provider took to answer, by endpoint",
            provider_buckets,
        );
        Self {
            registry,
            requests,
            request_seconds,
            sign_ins_started,
            sign_ins_completed,
            sign_ins_refused,
            provider_calls,
            provider_call_seconds,
            key_refetches,
            renewals,
            backchannel_logouts,
            sessions_ended,
            store_errors,
        }
    }
}

impl Metrics {
    /// The text Prometheus reads.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&Answered { route, status })
            .inc();
        self.request_seconds
            .get_or_create(&Route { route })
            .observe(took.as_secs_f64());
    }

    pub fn sign_in_started(&self, provider: &str) {
        let labels = SignIn {
            provider: provider.to_owned(),
        };
        self.sign_ins_started.get_or_create(&labels).inc();
    }

    pub fn sign_in_completed(&self, provider: &str) {
        let labels = SignIn {
            provider: provider.to_owned(),
        };
        self.sign_ins_completed.get_or_create(&labels).inc();
    }

    /// `provider` must be a configured provider's id (or empty), `reason` a failure code.
    pub fn sign_in_refused(&self, provider: &str, reason: &'static str) {
        let labels = Refusal {
            provider: provider.to_owned(),
            reason,
        };
        self.sign_ins_refused.get_or_create(&labels).inc();
    }

    pub fn provider_call(
        &self,
        provider: &str,
        endpoint: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        let provider = provider.to_owned();
        self.provider_call_seconds
            .get_or_create(&Endpoint {
                provider: provider.clone(),
                endpoint,
            })
            .observe(took.as_secs_f64());
        self.provider_calls
            .get_or_create(&Call {
                provider,
                endpoint,
                outcome,
            })
            .inc();
    }

    pub fn key_refetch(&self, provider: &str) {
        let labels = SignIn {
            provider: provider.to_owned(),
        };
        self.key_refetches.get_or_create(&labels).inc();
    }

    pub fn renewal(&self, outcome: &'static str) {
        self.renewals.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn backchannel_logout(&self, outcome: &'static str) {
        self.backchannel_logouts
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    pub fn sessions_ended(&self, kind: &'static str, count: usize) {
        self.sessions_ended
            .get_or_create(&Kind { kind })
            .inc_by(count as u64);
    }

    /// `store` is `session_store` or `database`.
    pub fn store_error(&self, store: &'static str) {
        self.store_errors.get_or_create(&Store { store }).inc();
    }
}

/// `GET /metrics`.
pub async fn serve(State(metrics): State<Arc<Metrics>>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, CONTENT_TYPE),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, metrics.render()).into_response()
}

/// Where the matched route's template is left for the request's count: put in the request by
/// the outermost middleware, filled by [`NoteRoute`] inside the router.
#[derive(Clone, Default)]
pub struct RouteSlot(Arc<OnceLock<&'static str>>);

impl RouteSlot {
    pub fn get(&self) -> Option<&'static str> {
        self.0.get().copied()
    }
}

/// Inside the router, around each route: notes the matched route's template in the request's
/// [`RouteSlot`]. A plain service that returns the route's own future untouched: wrapping it
/// (as `from_fn` does) would move the whole page render's future once more on every request.
#[derive(Clone)]
pub struct NoteRoute<S>(S);

#[derive(Clone)]
pub struct NoteRouteLayer;

impl<S> tower::Layer<S> for NoteRouteLayer {
    type Service = NoteRoute<S>;

    fn layer(&self, inner: S) -> NoteRoute<S> {
        NoteRoute(inner)
    }
}

impl<S: tower::Service<Request>> tower::Service<Request> for NoteRoute<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> S::Future {
        let extensions = request.extensions();
        if let (Some(matched), Some(slot)) = (
            extensions.get::<MatchedPath>(),
            extensions.get::<RouteSlot>(),
        ) {
            let _ = slot.0.set(intern(matched.as_str()));
        }
        self.0.call(request)
    }
}

/// The route a request is counted under: the template it matched (`/items/{id}`, not the
/// path), the page it was served from memory for, the static files, or `unmatched`.
pub fn route_of(
    matched: &RouteSlot,
    path: &str,
    response: &Response,
    kept_pages: &[&'static str],
) -> &'static str {
    if let Some(template) = matched.get() {
        return template;
    }
    if let Some(page) = kept_pages.iter().find(|page| **page == path) {
        return page;
    }
    if response.status().as_u16() < 400 {
        return "static";
    }
    "unmatched"
}

/// The router's route templates, known before any request matched them.
pub fn know_routes<'a>(templates: impl IntoIterator<Item = &'a str>) {
    for template in templates {
        intern(template);
    }
}

/// The route template that is this very path (`/profile`), when there is one: what a request
/// can be named by before the router has matched it.
pub fn known_route(path: &str) -> Option<&'static str> {
    templates().read().expect("not poisoned").get(path).copied()
}

fn templates() -> &'static RwLock<HashSet<&'static str>> {
    static TEMPLATES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    TEMPLATES.get_or_init(RwLock::default)
}

/// A route template as a label that lives as long as the process: there are only as many as
/// the router has routes.
fn intern(template: &str) -> &'static str {
    let templates = templates();
    if let Some(known) = templates.read().expect("not poisoned").get(template) {
        return known;
    }
    let mut templates = templates.write().expect("not poisoned");
    if let Some(known) = templates.get(template) {
        return known;
    }
    let leaked: &'static str = Box::leak(template.to_owned().into_boxed_str());
    templates.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_rendered_with_their_labels() {
        let metrics = Metrics::default();
        metrics.request("/profile", 200, Duration::from_micros(300));
        metrics.request("/profile", 503, Duration::from_millis(2));
        metrics.sign_in_refused("acme", "code_refused");
        let text = metrics.render();
        assert!(
            text.contains("leptos_oidc_http_requests_total{route=\"/profile\",status=\"2xx\"} 1")
        );
        assert!(
            text.contains("leptos_oidc_http_requests_total{route=\"/profile\",status=\"5xx\"} 1")
        );
        assert!(text.contains(
            "leptos_oidc_sign_ins_refused_total{provider=\"acme\",reason=\"code_refused\"} 1"
        ));
        assert!(
            text.contains("leptos_oidc_http_request_duration_seconds_count{route=\"/profile\"} 2")
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
