//! The server: router, layers, and start-up. The one place that wires state and routes.

use std::{
    io::IsTerminal,
    sync::{Arc, OnceLock},
    time::Duration,
};

use crate::{
    app::{shell, App},
    auth::ssr::{backchannel, malformed},
    bearer,
    config::{self, Config, ConfigError},
    db, health, json_errors,
    metrics::{self, Metrics},
    oidc::Providers,
    page_cache, session,
    state::{AppState, Shared},
    traces::{self, Traces},
    users::Users,
};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::{self, Next},
    response::Response,
    Router,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tracing::Instrument;

/// Logs to standard output: readable lines, in colour only on a terminal, or with
/// `LOG_FORMAT=json` one JSON object per line (time, level, target, message and fields, and the
/// request's id). `RUST_LOG` chooses what (default: this app at info, the rest at warn). With
/// the OpenTelemetry variables set, spans are exported too ([`traces`]): flush them with
/// [`Traces::shutdown`] before exiting.
pub fn init_tracing() -> Result<Option<Traces>, ConfigError> {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,leptos_oidc=info".into());
    let log = tracing_subscriber::fmt::layer();
    let log = match std::env::var("LOG_FORMAT").unwrap_or_default().trim() {
        "" | "text" => log.with_ansi(std::io::stdout().is_terminal()).boxed(),
        "json" => log
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        other => {
            let problem = format!("\"{other}\" is neither text nor json");
            return Err(ConfigError::new("LOG_FORMAT", problem));
        }
    };
    let (exported, traces) = traces::layer()?.unzip();
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(exported)
        .init();
    Ok(traces)
}

/// Reads the configuration and serves until Ctrl-C or SIGTERM, then shuts down as
/// [`config::ShutdownConfig`] says: not ready at once, new connections refused after the delay,
/// requests under way given the grace to finish.
pub async fn run() -> Result<(), ConfigError> {
    let leptos_options = config::leptos_options()?;
    let config = Config::from_env(leptos_options.site_addr)?;
    let addr = leptos_options.site_addr;
    let shutdown = config.shutdown;
    let config_metrics_addr = config.metrics_addr;
    let state = start(config, leptos_options).await?;
    let metrics = state.metrics.clone();
    let shutting_down = state.shutting_down.clone();
    let router = router(state);
    let cannot_listen = |e: std::io::Error| {
        ConfigError::new("LEPTOS_SITE_ADDR", format!("cannot listen on {addr}: {e}"))
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(cannot_listen)?;
    tracing::info!("listening on http://{addr}");
    if let Some(metrics_addr) = config_metrics_addr {
        serve_metrics(metrics_addr, metrics).await?;
    }

    let signalled = Arc::new(tokio::sync::Notify::new());
    let stop_accepting = {
        let signalled = signalled.clone();
        async move {
            shutdown_signal().await;
            shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
            signalled.notify_one();
            tracing::info!(
                delay_seconds = shutdown.delay.as_secs(),
                grace_seconds = shutdown.grace.as_secs(),
                "shutting down: not ready; new connections refused after the delay"
            );
            tokio::time::sleep(shutdown.delay).await;
        }
    };
    let serving = axum::serve(listener, router).with_graceful_shutdown(stop_accepting);
    tokio::select! {
        served = serving => served.map_err(cannot_listen),
        () = async {
            signalled.notified().await;
            tokio::time::sleep(shutdown.delay + shutdown.grace).await;
        } => {
            tracing::warn!("requests still under way after SHUTDOWN_GRACE_SECONDS; exiting without them");
            Ok(())
        }
    }
}

/// Opens the stores and starts the app's background work (keeping the session cache true to the
/// store, deleting expired sessions, keeping providers' keys fresh): the state to serve with.
/// No provider is contacted here: the app starts, and serves its public pages, while providers
/// are down.
pub async fn start(config: Config, leptos_options: LeptosOptions) -> Result<AppState, ConfigError> {
    let metrics = Arc::new(Metrics::default());
    let db = db::open(&config.database_url).await?;
    let keys = match &config.session_keys {
        Some(keys) => keys.clone(),
        None => vec![session::development_key(&config.data_dir)?],
    };
    let sessions = match &config.redis_url {
        Some(url) => session::Store::in_redis(url, config.store_timeout).await?,
        None => session::Store::in_database(db.clone()).with_timeout(config.store_timeout),
    }
    .with_metrics(metrics.clone())
    .with_keys(Arc::new(session::SealingKeys::new(&keys)));
    sessions.listen_for_changes();
    // Expired sessions are deleted, not kept forever.
    tokio::spawn(
        sessions
            .clone()
            .delete_expired_forever(Duration::from_secs(60)),
    );

    let pending = session::PendingSignIns::from_database(&db, config.session.secure).await?;
    let providers = Arc::new(Providers::new(&config, &metrics)?);
    providers.keep_fresh();
    Ok(AppState::new(Shared {
        leptos_options,
        providers,
        users: Users::new(db.clone())
            .with_timeout(config.store_timeout)
            .with_metrics(metrics.clone()),
        metrics,
        // Never follows redirects: the user's token goes to the address asked for, nowhere else.
        api_client: openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("leptos-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::new("(HTTP client)", e.to_string()))?,
        db,
        sessions,
        pending,
        config: Arc::new(config),
        introspections: Arc::default(),
        shutting_down: Arc::default(),
    }))
}

/// `GET /.well-known/jwks.json`: the public keys of the app's clients that authenticate with
/// `private_key_jwt`, for providers that fetch them (the client's `jwks_uri`).
async fn client_jwks(
    axum::extract::State(providers): axum::extract::State<Arc<crate::oidc::Providers>>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(providers.client_jwks()),
    )
}

/// The app's pages, as Leptos lists them: once per process. Listing them runs the app with
/// resource loading suppressed for the whole process (a flag of leptos_server's, leptos#4773):
/// a page that another app in the same process began rendering meanwhile would wait forever.
/// The tests run many apps in one process, and restart them.
fn pages() -> Vec<AxumRouteListing> {
    static PAGES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    PAGES.get_or_init(|| generate_route_list(App)).clone()
}

/// The routes and layers, serving `state`.
pub fn router(state: AppState) -> Router {
    let session_layer = session::layer(state.sessions.clone(), &state.config.session);
    let leptos_options = state.leptos_options.clone();
    let pages = pages();
    metrics::know_routes(
        pages
            .iter()
            .map(|page| page.path())
            .chain(leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path))
            .chain([
                "/backchannel-logout",
                "/api/me",
                "/healthz",
                "/readyz",
                "/metrics",
            ]),
    );
    // Server functions and every rendered page, the 404 page included, get the state (one
    // counter's worth: it is behind an Arc).
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let mut router = Router::new()
        .route(
            "/backchannel-logout",
            axum::routing::post(backchannel::backchannel_logout),
        )
        .route("/api/me", axum::routing::get(bearer::me))
        .route("/.well-known/jwks.json", axum::routing::get(client_jwks))
        .route("/healthz", axum::routing::get(health::healthz))
        .route("/readyz", axum::routing::get(health::readyz));
    // Prometheus reads the metrics here, unless they have a listener of their own.
    if state.config.metrics_addr.is_none() {
        router = router.route("/metrics", axum::routing::get(metrics::serve));
    }
    let routes = router
        .leptos_routes_with_context(&state, pages, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .route_layer(metrics::NoteRouteLayer)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .with_state(state.clone());
    // Around the whole router, not each route: a layer on the router itself would wrap every
    // route, and `from_fn` clones what it wraps (the app's state included) on every request.
    Router::new()
        .fallback_service(routes)
        .layer(session_layer)
        // Before the session: a malformed request costs no session work.
        .layer(middleware::from_fn(malformed::refuse_malformed))
        // Outside the session layer: a kept page costs no session work at all.
        .layer(middleware::from_fn_with_state(
            page_cache::Pages::new(state.sessions.cache().clone(), state.config.session),
            page_cache::serve,
        ))
        .layer(middleware::from_fn(json_errors::for_programs))
        .layer(middleware::from_fn_with_state(
            Edge {
                metrics: state.metrics.clone(),
                https: state.config.session.secure,
            },
            headers_and_log,
        ))
}

/// What the outermost layer needs: where to count, and whether the app is served over https.
#[derive(Clone)]
struct Edge {
    metrics: Arc<Metrics>,
    https: bool,
}

/// Security headers on every answer (`Strict-Transport-Security` too when served over https),
/// `no-store` on pages (they may show who is signed in), a
/// request id (`X-Request-Id`: the caller's when sane, else a new one) returned and carried by
/// every log line made while serving, one log line per request, and the request counted and
/// timed by route. The line has the path only: query strings carry codes and state.
async fn headers_and_log(
    State(Edge { metrics, https }): State<Edge>,
    mut request: Request,
    next: Next,
) -> Response {
    let matched = metrics::RouteSlot::default();
    request.extensions_mut().insert(matched.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let id = request_id(request.headers());
    let traced = traces::on();
    // Traces name a request by its method and route (its path, when that is a route; the
    // method alone until the router has matched one), as OpenTelemetry's conventions do.
    let name = traced.then(|| match metrics::known_route(&path) {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    });
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        otel.name = name,
        http.request.method = traced.then(|| method.as_str()),
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if traced {
        traces::continue_trace(&span, request.headers());
    }
    request
        .extensions_mut()
        .insert(crate::auth::ssr::RequestSpan(span.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html || headers.contains_key(header::LOCATION) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The callback URL carries the code: never pass it on as a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Served over https (the public origin says so): browsers keep to https for a year. Not
    // `includeSubDomains` or `preload`: the app cannot speak for its domain's other hosts.
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }

    let status = response.status().as_u16();
    let took = started.elapsed();
    let route = metrics::route_of(&matched, &path, &response, &page_cache::PAGES);
    metrics.request(route, status, took);
    if traced {
        span.record("http.route", route);
        span.record("http.response.status_code", status);
    }
    let ms = took.as_secs_f64() * 1000.0;
    let _serving = span.enter();
    if status >= 500 {
        tracing::error!(%method, %path, status, ms, "request");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    response
}

const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is sane (1 to 128 letters, digits and `-_.:`), else a new
/// one: this instance's random prefix and a counter, unique and costing no system call.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    let sane = |id: &&str| {
        (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    if let Some(id) = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(sane)
    {
        return id.to_owned();
    }
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .unwrap_or_default();
        u64::from_le_bytes(bytes)
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix:016x}-{n:x}")
}

/// Serves `/metrics` alone on `addr`, for as long as the process runs.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(), ConfigError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError::new("METRICS_ADDR", format!("cannot listen on {addr}: {e}")))?;
    let router = Router::new()
        .route("/metrics", axum::routing::get(metrics::serve))
        .with_state(metrics);
    tracing::info!("metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced() {
        let with = |id: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(REQUEST_ID, id.parse().unwrap());
            request_id(&headers)
        };
        assert_eq!(with("abc-123_x.y:z"), "abc-123_x.y:z");
        for bad in ["", "has space", "quote\"", &"x".repeat(129), "caf\u{e9}"] {
            let mut headers = axum::http::HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(bad) {
                headers.insert(REQUEST_ID, value);
            }
            let id = request_id(&headers);
            let (prefix, counter) = id.split_once('-').unwrap();
            assert_eq!(prefix.len(), 16, "{id}");
            assert!(
                [prefix, counter]
                    .iter()
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit())),
                "{bad:?} gave {id:?}"
            );
        }
        let (a, b) = (with("bad id"), with("bad id"));
        assert_ne!(a, b, "new ids are unique");
    }
}
