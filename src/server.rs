//! The server: router, layers, and start-up. The one place that wires state and routes.

use std::{io::IsTerminal, sync::Arc, time::Duration};

use crate::{
    app::{shell, App},
    auth::ssr::{backchannel, malformed},
    config::{self, Config, ConfigError},
    db, health,
    oidc::Providers,
    page_cache, session,
    state::AppState,
    users::Users,
};
use axum::{
    extract::Request,
    http::{header, HeaderValue},
    middleware::{self, Next},
    response::Response,
    Router,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{generate_route_list, LeptosRoutes};

/// Logs to standard output, in colour only on a terminal; `RUST_LOG` chooses what (default:
/// this app at info, the rest at warn).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,leptos_oidc=info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

/// Reads the configuration and serves until Ctrl-C or SIGTERM, then shuts down as
/// [`config::ShutdownConfig`] says: not ready at once, new connections refused after the delay,
/// requests under way given the grace to finish.
pub async fn run() -> Result<(), ConfigError> {
    let leptos_options = config::leptos_options()?;
    let config = Config::from_env(leptos_options.site_addr)?;
    let addr = leptos_options.site_addr;
    let shutdown = config.shutdown;
    let state = start(config, leptos_options).await?;
    let shutting_down = state.shutting_down.clone();
    let router = router(state);
    let cannot_listen = |e: std::io::Error| {
        ConfigError::new("LEPTOS_SITE_ADDR", format!("cannot listen on {addr}: {e}"))
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(cannot_listen)?;
    tracing::info!("listening on http://{addr}");

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

/// The whole app as a router. No provider is contacted here: the app starts, and serves its
/// public pages, while providers are down.
pub async fn app(config: Config, leptos_options: LeptosOptions) -> Result<Router, ConfigError> {
    Ok(router(start(config, leptos_options).await?))
}

/// Opens the stores and starts the app's background work (keeping the session cache true to the
/// store, deleting expired sessions, keeping providers' keys fresh): the state to serve with.
pub async fn start(config: Config, leptos_options: LeptosOptions) -> Result<AppState, ConfigError> {
    let db = db::open(&config.database_url).await?;
    let sessions = match &config.redis_url {
        Some(url) => session::Store::in_redis(url).await?,
        None => session::Store::in_database(db.clone()),
    };
    sessions.listen_for_changes();
    // Expired sessions are deleted, not kept forever.
    tokio::spawn(
        sessions
            .clone()
            .delete_expired_forever(Duration::from_secs(60)),
    );

    let pending = session::PendingSignIns::from_database(&db, config.session.secure).await?;
    let providers = Arc::new(Providers::new(&config));
    providers.keep_fresh();
    Ok(AppState {
        leptos_options,
        providers,
        users: Users::new(db.clone()),
        db,
        sessions,
        pending,
        config: Arc::new(config),
        shutting_down: Arc::default(),
    })
}

/// The routes and layers, serving `state`.
pub fn router(state: AppState) -> Router {
    let session_layer = session::layer(state.sessions.clone(), &state.config.session);
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    // Server functions and every rendered page, the 404 page included, get the state: behind
    // an Arc, so that giving it to each request costs one counter, not a copy of every field.
    let context = {
        let state = Arc::new(state.clone());
        move || provide_context(state.clone())
    };
    Router::new()
        .route(
            "/backchannel-logout",
            axum::routing::post(backchannel::backchannel_logout),
        )
        .route("/healthz", axum::routing::get(health::healthz))
        .route("/readyz", axum::routing::get(health::readyz))
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(session_layer)
        // Before the session: a malformed request costs no session work.
        .layer(middleware::from_fn(malformed::refuse_malformed))
        // Outside the session layer: a kept page costs no session work at all.
        .layer(middleware::from_fn_with_state(
            page_cache::Pages::new(state.sessions.cache().clone(), state.config.session),
            page_cache::serve,
        ))
        .layer(middleware::from_fn(headers_and_log))
        .with_state(state)
}

/// Security headers on every answer, `no-store` on pages (they may show who is signed in), and
/// one log line per request. The line has the path only: query strings carry codes and state.
async fn headers_and_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;

    let headers = response.headers_mut();
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

    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %path, status, ms, "request");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    response
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
