//! Health and readiness, as a load balancer or Kubernetes asks: `/healthz` while the process
//! serves, `/readyz` only while the database, the session store and every provider can be used,
//! with real servers (Redis, PostgreSQL) going away and coming back.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{
    run, start_app_with, start_app_with_providers, OwnPostgres, OwnRedis, Stores, TestApp,
    TestProvider,
};

async fn json_of(app: &TestApp, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

/// Asks `/readyz` until it answers `status` (each answer within the checks' bound), for at most
/// `patience`; returns the last body.
async fn readiness_becomes(app: &TestApp, status: u16, patience: Duration) -> Value {
    let started = Instant::now();
    loop {
        let asked = Instant::now();
        let (answered, body) = json_of(app, "/readyz").await;
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "/readyz took {:?}",
            asked.elapsed()
        );
        if answered == status {
            return body;
        }
        assert!(
            started.elapsed() < patience,
            "/readyz still answers {answered} {body} after {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn live_and_ready_when_everything_answers() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        assert_eq!(
            json_of(&app, "/healthz").await,
            (200, json!({ "live": true }))
        );
        let body = readiness_becomes(&app, 200, Duration::from_secs(5)).await;
        assert_eq!(body, json!({ "ready": true }));
    })
}

#[test]
fn not_ready_while_a_provider_is_down_and_still_live() {
    run(async {
        let (acme, globex) = (TestProvider::start().await, TestProvider::down().await);
        let app = start_app_with_providers(
            &[("acme", &acme), ("globex", &globex)],
            &Stores::sqlite(),
            &[],
        )
        .await;
        let body = readiness_becomes(&app, 503, Duration::from_secs(5)).await;
        assert_eq!(
            body,
            json!({ "ready": false, "failing": ["provider:globex"] })
        );
        assert_eq!(json_of(&app, "/healthz").await.0, 200);
    })
}

#[test]
fn not_ready_while_the_session_store_is_down_and_ready_again_when_it_returns() {
    run(async {
        let provider = TestProvider::start().await;
        let mut redis = OwnRedis::start().await;
        let app = start_app_with(&provider.issuer, &redis.stores(), &[]).await;
        readiness_becomes(&app, 200, Duration::from_secs(5)).await;

        redis.kill();
        let body = readiness_becomes(&app, 503, Duration::from_secs(3)).await;
        assert_eq!(
            body,
            json!({ "ready": false, "failing": ["session_store"] })
        );
        assert_eq!(json_of(&app, "/healthz").await.0, 200);

        redis.resume().await;
        readiness_becomes(&app, 200, Duration::from_secs(10)).await;
    })
}

#[test]
fn not_ready_while_postgresql_is_down_and_ready_again_when_it_returns() {
    run(async {
        let provider = TestProvider::start().await;
        let postgres = OwnPostgres::start().await;
        let app = start_app_with(&provider.issuer, &postgres.stores(), &[]).await;
        readiness_becomes(&app, 200, Duration::from_secs(5)).await;

        postgres.stop();
        let body = readiness_becomes(&app, 503, Duration::from_secs(3)).await;
        assert_eq!(
            body,
            json!({ "ready": false, "failing": ["database", "session_store"] })
        );
        assert_eq!(json_of(&app, "/healthz").await.0, 200);

        postgres.resume().await;
        readiness_becomes(&app, 200, Duration::from_secs(10)).await;
    })
}
