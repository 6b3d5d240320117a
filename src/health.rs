//! Health, for load balancers and orchestrators: `GET /healthz` says the process serves (no
//! dependency is asked), `GET /readyz` whether it can sign people in now: the database and the
//! session store answer, and every provider's metadata and keys are loaded, and no shutdown has
//! begun. Each check has a bound, so a store that hangs makes the answer a 503, not a hang.

use std::{sync::atomic::Ordering, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::state::AppState;

/// The longest one readiness check may take.
const CHECK_BOUND: Duration = Duration::from_secs(1);

pub async fn healthz() -> Response {
    answer(StatusCode::OK, json!({ "live": true }))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutting_down.load(Ordering::SeqCst) {
        let failing = ["shutting_down"];
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ready": false, "failing": failing }),
        );
    }
    let mut providers = tokio::task::JoinSet::new();
    for provider in state.providers.iter() {
        let provider = provider.clone();
        providers.spawn(async move {
            let ready = bounded(provider.ready()).await;
            (!ready).then(|| format!("provider:{}", provider.id()))
        });
    }
    let (database, session_store) = tokio::join!(
        bounded(async { state.db.ping().await.is_ok() }),
        bounded(async { state.sessions.ping().await.is_ok() }),
    );
    let mut failing: Vec<String> = Vec::new();
    if !database {
        failing.push("database".into());
    }
    if !session_store {
        failing.push("session_store".into());
    }
    let mut unready: Vec<String> = providers.join_all().await.into_iter().flatten().collect();
    unready.sort();
    failing.extend(unready);
    if failing.is_empty() {
        answer(StatusCode::OK, json!({ "ready": true }))
    } else {
        tracing::info!(?failing, "not ready");
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ready": false, "failing": failing }),
        )
    }
}

/// A check's answer, or `false` when it takes longer than [`CHECK_BOUND`].
async fn bounded(check: impl std::future::Future<Output = bool>) -> bool {
    tokio::time::timeout(CHECK_BOUND, check)
        .await
        .unwrap_or(false)
}

/// A small JSON answer that no cache keeps.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
