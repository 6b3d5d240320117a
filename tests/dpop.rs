//! DPoP (RFC 9449): with `OIDC_DPOP=true` the access token is bound to a key of the session's.
//! The test provider checks every proof (signature with the key it carries, `htm`/`htu`, a recent
//! `iat`, a `jti` used once, `ath` for the token, its current nonce when it requires one) and
//! takes a bound token at userinfo only with a proof of its key.

mod support;

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{run, start_app_with, Behaviour, Stores, TestApp, TestProvider};

/// The app with DPoP on, on SQLite, with these settings too, signing in at `provider`.
async fn app_with_dpop(provider: &TestProvider, vars: &[(&'static str, &str)]) -> TestApp {
    let vars = [&[("OIDC_DPOP", "true")], vars].concat();
    start_app_with(&provider.issuer, &Stores::sqlite(), &vars).await
}

/// The proofs the provider took at `endpoint` (`token` or `userinfo`).
fn proofs_at(provider: &TestProvider, endpoint: &str) -> Vec<Value> {
    provider
        .dpop_proofs()
        .into_iter()
        .filter(|proof| proof["endpoint"] == endpoint)
        .collect()
}

/// As at a FAPI 2.0 provider: private_key_jwt, DPoP with nonces. Sign-in, the API call, the
/// renewal each prove the one key of the session; a nonce asked for is sent at once, with a
/// fresh proof and (at the token endpoint) a fresh client assertion; no proof is used twice,
/// and one replayed, or the token without its key, is refused.
#[test]
fn a_session_proves_its_key_at_every_call_and_answers_nonces() {
    run(async {
        let provider = TestProvider::start().await;
        let app = app_with_dpop(&provider, &[("OIDC_CLIENT_AUTH", "private_key_jwt")]).await;
        provider.set_behaviour(Behaviour {
            client_jwks: Some(app.client_jwks().await),
            dpop: true,
            dpop_nonce: true,
            ..Behaviour::short_tokens(4)
        });

        let page = app.sign_in(&provider).await;
        assert_eq!(page.location.as_deref(), Some("/profile"), "{}", page.body);
        assert!(app.signed_in().await);
        // The first token request had no nonce: refused, then made again with the nonce, a new
        // proof and a new assertion (the first one's jti is spent).
        assert_eq!(provider.dpop_refusals(), ["no nonce, or an old one"]);
        assert_eq!(provider.token_requests(), 2);
        assert_eq!(provider.assertion_refusals(), Vec::<String>::new());
        let assertions = provider.assertions();
        assert_eq!(assertions.len(), 2);
        assert_ne!(assertions[0]["jti"], assertions[1]["jti"]);
        let token = proofs_at(&provider, "token");
        assert_eq!(token.len(), 1, "{token:#?}");
        assert!(token[0].get("ath").is_none(), "{token:#?}");
        let userinfo = proofs_at(&provider, "userinfo");
        assert_eq!(userinfo.len(), 1, "userinfo was not asked with a proof");

        // The provider's nonce changes: the API call is refused once, and made again at once.
        provider.new_dpop_nonce();
        let page = app.get("/api-demo").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains(provider.identity.email), "{}", page.body);
        assert_eq!(provider.dpop_refusals().len(), 2);
        assert_eq!(provider.refresh_requests(), 0, "renewed instead of retried");

        // And again before the renewal, which goes through with the same key.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        provider.new_dpop_nonce();
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 2, "refused once, then renewed");
        let page = app.get("/api-demo").await;
        assert_eq!(page.status, 200, "{}", page.body);

        let proofs = provider.dpop_proofs();
        assert_eq!(proofs.len(), 5, "{proofs:#?}"); // code, userinfo, API, refresh, API
        let jkt = &proofs[0]["jkt"];
        let jtis: std::collections::HashSet<String> =
            proofs.iter().map(|p| p["jti"].to_string()).collect();
        assert_eq!(jtis.len(), proofs.len(), "a proof was used twice");
        for proof in &proofs {
            assert_eq!(&proof["jkt"], jkt, "another key: {proof:#?}");
        }
        let refusals = provider.dpop_refusals();
        assert_eq!(refusals.len(), 3, "{refusals:?}");

        // What a thief with the last token and proof gets: nothing.
        let last = proofs_at(&provider, "userinfo").pop().unwrap();
        let token = provider
            .secrets()
            .into_iter()
            .find(|t| URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())) == last["ath"])
            .unwrap();
        let (status, _) = provider.userinfo_with(&format!("Bearer {token}"), "").await;
        assert_eq!(status, 401, "a bound token worked without its key");
        let proof = last["proof"].as_str().unwrap();
        let (status, _) = provider
            .userinfo_with(&format!("DPoP {token}"), proof)
            .await;
        assert_eq!(status, 401, "a replayed proof worked");
        assert_eq!(
            provider.dpop_refusals().last().map(String::as_str),
            Some("a jti used before")
        );

        assert_eq!(app.sign_out(false).await.status, 302);
        assert_eq!(provider.revoked_at_least(2).await.len(), 2);
    })
}

/// Where the provider binds the refresh token to the key too (as for public clients), renewals
/// prove the same key: after a restart as well, the key coming back from the store (sealed).
#[test]
fn a_refresh_token_bound_to_the_key_renews_with_it_after_a_restart() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            dpop: true,
            dpop_binds_refresh: true,
            ..Behaviour::short_tokens(4)
        });
        let app = app_with_dpop(&provider, &[]).await;
        app.sign_in(&provider).await;
        let app = app.restart().await;
        tokio::time::sleep(Duration::from_millis(3200)).await;
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 1);
        let refusals = provider.dpop_refusals();
        assert!(refusals.is_empty(), "{refusals:?}");
        let token = proofs_at(&provider, "token");
        assert_eq!(token.len(), 2, "{token:#?}");
        assert_eq!(token[0]["jkt"], token[1]["jkt"]);
        // Renewed tokens are DPoP tokens: userinfo takes them with the key's proof.
        let page = app.get("/api-demo").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(
            proofs_at(&provider, "userinfo").last().unwrap()["jkt"],
            token[0]["jkt"]
        );
    })
}

/// Each session has a key of its own.
#[test]
fn every_session_has_a_key_of_its_own() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            dpop: true,
            ..Behaviour::default()
        });
        let app = app_with_dpop(&provider, &[]).await;
        app.sign_in(&provider).await;
        app.in_another_browser().sign_in(&provider).await;
        let token = proofs_at(&provider, "token");
        assert_eq!(token.len(), 2);
        assert_ne!(token[0]["jkt"], token[1]["jkt"]);
    })
}

/// A provider that ignores DPoP issues Bearer tokens: with `OIDC_DPOP=true` that is no sign-in,
/// and the page says the provider's answer did not pass the app's checks.
#[test]
fn bearer_tokens_are_refused_when_dpop_is_on() {
    run(async {
        let provider = TestProvider::start().await;
        let app = app_with_dpop(&provider, &[]).await;
        let page = app.sign_in(&provider).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/signin?error=token_refused")
        );
        let shown = app.get("/signin?error=token_refused").await;
        assert_eq!(shown.status, 400);
        assert!(shown.body.contains("Try again"), "{}", shown.body);
        assert!(!app.signed_in().await);
    })
}
