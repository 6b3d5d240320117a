//! Health and readiness, as a load balancer or Kubernetes asks: `/healthz` while the process
//! serves, `/readyz` only while the database, the session store and every provider can be used;
//! and what signed-in people see while a store is away: real servers (Redis, PostgreSQL) going
//! away and coming back under load.

mod support;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use leptos_oidc::failure::outage;
use serde_json::{json, Value};
use support::{
    run, start_app_with, start_app_with_providers, with_session, OwnPostgres, OwnRedis, Stores,
    TestApp, TestProvider,
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

/// A store server the test can take away and bring back.
trait StoreServer {
    fn stores(&self) -> Stores;
    fn go_away(&mut self);
    async fn come_back(&mut self);
}

impl StoreServer for OwnRedis {
    fn stores(&self) -> Stores {
        OwnRedis::stores(self)
    }
    fn go_away(&mut self) {
        self.kill();
    }
    async fn come_back(&mut self) {
        self.resume().await;
    }
}

impl StoreServer for OwnPostgres {
    fn stores(&self) -> Stores {
        OwnPostgres::stores(self)
    }
    fn go_away(&mut self) {
        self.stop();
    }
    async fn come_back(&mut self) {
        self.resume().await;
    }
}

/// One answer seen under load.
struct Answer {
    instance: usize,
    html: bool,
    sent: Duration,
    took: Duration,
    status: u16,
    body: String,
}

/// Two instances serve a signed-in page to browsers and to programs, continuously, while the
/// store goes away for three seconds and comes back: every answer is a 200 or a 503 that says
/// so, none waits longer than the store's bound allows, service returns within two seconds, and
/// the session was not lost.
async fn a_store_outage_is_answered_honestly(mut server: impl StoreServer) {
    let provider = TestProvider::start().await;
    let stores = server.stores();
    let a = start_app_with(&provider.issuer, &stores, &[]).await;
    let b = a.another_instance().await;
    let id = a.sign_in(&provider).await.session_id();
    let urls = [a.url.clone(), b.url.clone()];

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..4)
        .map(|n| {
            let (instance, html) = (n % 2, n < 2);
            let client = with_session(
                &id,
                if html {
                    "text/html"
                } else {
                    "application/json"
                },
            );
            let url = format!("{}/profile", urls[instance]);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = started.elapsed();
                    let response = client.get(&url).send().await.unwrap();
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap();
                    let took = started.elapsed() - sent;
                    answers.push(Answer {
                        instance,
                        html,
                        sent,
                        took,
                        status,
                        body,
                    });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                answers
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let away = started.elapsed();
    server.go_away();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.come_back().await;
    let back = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for load in loads {
        answers.extend(load.await.unwrap());
    }

    let odd: Vec<_> = answers
        .iter()
        .filter(|a| ![200, 503].contains(&a.status))
        .map(|a| (a.status, a.body.chars().take(200).collect::<String>()))
        .collect();
    assert!(odd.is_empty(), "answers other than 200 and 503: {odd:?}");
    let slowest = answers.iter().map(|a| a.took).max().unwrap();
    // The bound is a second; the rest is the machine's.
    assert!(
        slowest < Duration::from_millis(1800),
        "an answer took {slowest:?}"
    );
    for instance in 0..2 {
        for html in [true, false] {
            let unavailable: Vec<_> = answers
                .iter()
                .filter(|a| a.instance == instance && a.html == html && a.status == 503)
                .collect();
            let seen = |a: &&Answer| (away..back + Duration::from_secs(2)).contains(&a.sent);
            assert!(
                !unavailable.is_empty() && unavailable.iter().all(seen),
                "instance {instance} (html: {html}) answered 503 at {:?} (away {away:?}, back {back:?})",
                unavailable.iter().map(|a| a.sent).collect::<Vec<_>>()
            );
            let page = &unavailable[0].body;
            if html {
                assert!(
                    page.contains(outage::MESSAGE) && page.contains("Try again"),
                    "{page}"
                );
            } else {
                let body: Value = serde_json::from_str(page).unwrap();
                assert_eq!(body["error"], outage::CODE, "{body}");
            }
        }
    }
    let recovered = answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.sent + a.took)
        .max()
        .unwrap()
        .saturating_sub(back);
    eprintln!(
        "answers: {}, slowest {slowest:?}, last 503 answered {recovered:?} after the store was back",
        answers.len()
    );
    for app in [&a, &b] {
        assert!(app.signed_in().await, "the session was lost at {}", app.url);
    }
}

#[test]
fn a_redis_crash_is_answered_with_503s_and_loses_no_session() {
    run(async { a_store_outage_is_answered_honestly(OwnRedis::start().await).await })
}

#[test]
fn a_postgresql_stop_is_answered_with_503s_and_loses_no_session() {
    run(async { a_store_outage_is_answered_honestly(OwnPostgres::start().await).await })
}
