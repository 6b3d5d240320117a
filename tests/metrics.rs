//! `/metrics` as Prometheus reads it: after a scripted run (sign-ins, a refusal, a renewal, a
//! back-channel logout and its replay, sign-outs), parsed with a Prometheus text parser, the
//! counters say what happened, under labels from fixed sets only.

mod support;

use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use support::{
    logout_claims, run, sign_jwt, start_app_with, Behaviour, Signer, Stores, TestApp, TestProvider,
};
use tower_sessions::ExpiredDeletion;

/// The app's metrics, parsed.
async fn scrape(app: &TestApp) -> Scrape {
    let response = reqwest::get(format!("{}/metrics", app.url)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    if std::env::var("SHOW_METRICS").is_ok() {
        eprintln!("{text}");
    }
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

/// The value of the sample `name` with exactly these labels (0 when there is none).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.len() == labels.len())
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        })
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} appears {} times",
        found.len()
    );
    found.first().copied().unwrap_or(0.0)
}

#[test]
fn metrics_count_sign_ins_refusals_renewals_logouts_and_requests() {
    run(async {
        let provider = TestProvider::start().await;
        // Access tokens of 4 s, renewed in their last quarter.
        provider.set_behaviour(Behaviour::short_tokens(4));
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;

        // Two sign-ins; one signs out, the other is ended by the provider's back-channel logout.
        let leaving = app.in_another_browser();
        for browser in [&app, &leaving] {
            browser.sign_in(&provider).await;
        }
        let csrf = leaving.csrf_token().await;
        let out = leaving
            .post_form("/logout", &[("csrf", csrf.as_str())], Some(&app.url))
            .await;
        assert_eq!(out.status, 302);
        // A refusal: a callback no sign-in of this browser started.
        let stale = app
            .in_another_browser()
            .get("/authorization-code/callback?code=c&state=s")
            .await;
        assert_eq!(stale.location.as_deref(), Some("/signin?error=bad_state"));
        // A renewal, on the next page view once the token is due.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 1);
        // The back-channel logout, and its replay.
        let token = sign_jwt(&Signer::default(), &logout_claims(&provider.issuer));
        assert_eq!(app.post_logout_token(&token).await.status(), 200);
        assert_eq!(app.post_logout_token(&token).await.status(), 400);
        assert!(!app.signed_in().await);

        let scrape = scrape(&app).await;
        let provider_label = [("provider", "default")];
        let count = |name: &str, labels: &[(&str, &str)]| value(&scrape, name, labels);
        assert_eq!(
            count("leptos_oidc_sign_ins_started_total", &provider_label),
            2.0
        );
        assert_eq!(
            count("leptos_oidc_sign_ins_completed_total", &provider_label),
            2.0
        );
        // No pending sign-in: no provider to name.
        let refused = [("provider", ""), ("reason", "bad_state")];
        assert_eq!(count("leptos_oidc_sign_ins_refused_total", &refused), 1.0);
        assert_eq!(
            count(
                "leptos_oidc_token_renewals_total",
                &[("outcome", "renewed")]
            ),
            1.0
        );
        for (outcome, n) in [("accepted", 1.0), ("replayed", 1.0)] {
            let labels = [("outcome", outcome)];
            assert_eq!(count("leptos_oidc_backchannel_logouts_total", &labels), n);
        }
        for kind in ["sign_out", "backchannel"] {
            assert_eq!(
                count("leptos_oidc_sessions_ended_total", &[("kind", kind)]),
                1.0
            );
        }
        // Each sign-in's code exchange and userinfo, and the refresh, at the token endpoint.
        for (endpoint, n) in [("token", 3.0), ("userinfo", 2.0), ("discovery", 1.0)] {
            let labels = [
                ("provider", "default"),
                ("endpoint", endpoint),
                ("outcome", "ok"),
            ];
            assert_eq!(
                count("leptos_oidc_provider_calls_total", &labels),
                n,
                "{endpoint}"
            );
        }
        let provider_times = scrape.samples.iter().find(|s| {
            s.metric == "leptos_oidc_provider_call_duration_seconds"
                && s.labels.get("endpoint") == Some("token")
        });
        assert!(
            matches!(&provider_times.unwrap().value, Value::Histogram(buckets) if !buckets.is_empty()),
            "the token endpoint's times are a histogram"
        );
        // Requests by route template and status class: the profile (200s, and a 302 once
        // the session was ended), the callback's redirects.
        let requests = |route: &str, status: &str| {
            count(
                "leptos_oidc_http_requests_total",
                &[("route", route), ("status", status)],
            )
        };
        assert!(requests("/profile", "2xx") >= 2.0);
        assert_eq!(requests("/authorization-code/callback", "3xx"), 3.0);
        assert_eq!(requests("/backchannel-logout", "4xx"), 1.0);
        assert_eq!(
            count(
                "leptos_oidc_store_errors_total",
                &[("store", "session_store")]
            ),
            0.0
        );

        // Every label is one of a fixed set: no path with a query, no id, no provider text.
        let allowed_routes = [
            "/",
            "/signin",
            "/profile",
            "/logout",
            "/login",
            "/authorization-code/callback",
            "/backchannel-logout",
            "/metrics",
            "/healthz",
            "/readyz",
            "static",
            "unmatched",
        ];
        for sample in &scrape.samples {
            for (name, label) in sample.labels.iter() {
                let bounded = match name.as_str() {
                    "route" => {
                        allowed_routes.contains(&label.as_str()) || label.starts_with("/api/")
                    }
                    "provider" => ["default", ""].contains(&label.as_str()),
                    "status" => ["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&label.as_str()),
                    "le" => true,
                    _ => label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                };
                assert!(bounded, "{}: {name}={label:?}", sample.metric);
            }
        }
    })
}

/// Sessions that expire unseen are counted when the store deletes them.
#[test]
fn expired_sessions_are_counted_when_deleted() {
    run(async {
        let provider = TestProvider::start().await;
        let vars = [("SESSION_IDLE_SECONDS", "2")];
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &vars).await;
        app.sign_in(&provider).await;
        tokio::time::sleep(Duration::from_millis(3100)).await;
        app.sessions.delete_expired().await.unwrap();
        let expired = value(
            &scrape(&app).await,
            "leptos_oidc_sessions_ended_total",
            &[("kind", "expiry")],
        );
        assert_eq!(expired, 1.0);
    })
}

#[test]
fn a_store_error_is_counted() {
    run(async {
        let provider = TestProvider::start().await;
        let mut redis = support::OwnRedis::start().await;
        let app = start_app_with(&provider.issuer, &redis.stores(), &[]).await;
        app.sign_in(&provider).await;
        redis.kill();
        // Once the cache has stopped vouching for the session, the page needs the store.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(app.get("/profile").await.status, 503);
        let scrape = scrape(&app).await;
        let errors = value(
            &scrape,
            "leptos_oidc_store_errors_total",
            &[("store", "session_store")],
        );
        assert!(errors >= 1.0, "{errors}");
        let unavailable = [("route", "/profile"), ("status", "5xx")];
        assert_eq!(
            value(&scrape, "leptos_oidc_http_requests_total", &unavailable),
            1.0
        );
    })
}
