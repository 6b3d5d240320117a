//! `private_key_jwt`: the app proves it is the client with JWTs signed by a key of its own,
//! whose public half it publishes at `/.well-known/jwks.json`. The test provider checks each
//! assertion (signature with the published key, `iss` = `sub` = the client, `aud`, a short
//! `exp`, a `jti` used once) and refuses the client secret.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{run, start_app_with, Behaviour, Stores, TestApp, TestProvider, CLIENT_ID};

/// Every call the app makes to `provider` as its client, each answered only when the client
/// authenticated as the provider takes it (`how`, for the failure messages): the code
/// exchange, a renewal (access tokens of 4 seconds), an introspection, and the two revocations
/// of a sign-out.
async fn every_call(app: &TestApp, provider: &TestProvider, how: &str) {
    let signed_in = app.sign_in(provider).await;
    assert_eq!(signed_in.location.as_deref(), Some("/profile"), "{how}");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert!(app.signed_in().await, "{how}");
    assert_eq!(provider.refresh_requests(), 1, "no renewal: {how}");
    let token = provider.opaque_access_token(CLIENT_ID, 300);
    let me = reqwest::Client::new()
        .get(format!("{}/api/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "introspection failed: {how}");
    assert_eq!(app.sign_out(false).await.status, 302);
    assert_eq!(provider.revoked_at_least(2).await.len(), 2, "{how}");
}

/// Sign-in, renewal, introspection and revocation each carry a new assertion, and no secret.
#[test]
fn every_call_to_the_provider_carries_a_new_client_assertion() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(
            &provider.issuer,
            &Stores::sqlite(),
            &[("OIDC_CLIENT_AUTH", "private_key_jwt")],
        )
        .await;
        // Without a key file, a development key (P-256) made in DATA_DIR.
        let jwks = app.client_jwks().await;
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "a private key was published"
        );
        assert!(app.data_dir().join("client-key-default.pem").exists());
        provider.set_behaviour(Behaviour {
            client_jwks: Some(jwks.clone()),
            ..Behaviour::short_tokens(4)
        });

        every_call(&app, &provider, "private_key_jwt").await;

        let refusals = provider.assertion_refusals();
        assert!(refusals.is_empty(), "{refusals:?}");
        let assertions = provider.assertions();
        // The code, the refresh, the introspection, two revocations.
        assert_eq!(assertions.len(), 5, "{assertions:#?}");
        for assertion in &assertions {
            assert_eq!(assertion["aud"], provider.issuer.as_str());
            assert_eq!(assertion["header"]["kid"], jwks["keys"][0]["kid"]);
            assert_eq!(assertion["header"]["alg"], "ES256");
        }
    })
}

/// Key files (PKCS#1 RSA and SEC1 P-256 here) sign in the order given, all published; the
/// algorithm is one the provider takes; `ASSERTION_AUD=token_endpoint` names the token endpoint.
/// Putting the second key first rotates: it signs, both stay published.
#[test]
fn key_files_sign_in_their_order_and_rotate() {
    run(async {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let (rsa, ec) = (
            format!("{fixtures}/client-key-rsa-pkcs1.pem"),
            format!("{fixtures}/client-key-ec-sec1.pem"),
        );
        let provider = TestProvider::start().await;
        let app = start_app_with(
            &provider.issuer,
            &Stores::sqlite(),
            &[
                ("OIDC_CLIENT_AUTH", "private_key_jwt"),
                ("OIDC_PRIVATE_KEY_FILE", &format!("{rsa}, {ec}")),
                ("OIDC_ASSERTION_AUD", "token_endpoint"),
            ],
        )
        .await;
        let jwks = app.client_jwks().await;
        let kids: Vec<&Value> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| &k["kid"])
            .collect();
        assert_eq!(kids.len(), 2, "{jwks}");
        let only = |algs: Value| Behaviour {
            client_jwks: Some(jwks.clone()),
            assertion_audience: Some(format!("{}/token", provider.issuer)),
            discovery: json!({ "token_endpoint_auth_signing_alg_values_supported": algs })
                .as_object()
                .unwrap()
                .clone(),
            ..Behaviour::default()
        };
        // Restarted to discover what the provider now says.
        provider.set_behaviour(only(json!(["RS256"])));
        let app = app.restart().await;
        assert_eq!(
            app.sign_in(&provider).await.location.as_deref(),
            Some("/profile")
        );
        let rotated = app
            .restart_with(&[("OIDC_PRIVATE_KEY_FILE", &format!("{ec},{rsa}"))])
            .await;
        provider.set_behaviour(only(json!(["ES256", "RS256"])));
        let rotated = rotated.restart().await;
        assert_eq!(
            rotated.client_jwks().await["keys"].as_array().map(Vec::len),
            Some(2)
        );
        let other = rotated.in_another_browser();
        assert_eq!(
            other.sign_in(&provider).await.location.as_deref(),
            Some("/profile")
        );

        let refusals = provider.assertion_refusals();
        assert!(refusals.is_empty(), "{refusals:?}");
        let assertions = provider.assertions();
        assert_eq!(assertions.len(), 2, "{assertions:#?}");
        assert_eq!(&assertions[0]["header"]["kid"], kids[0]);
        assert_eq!(assertions[0]["header"]["alg"], "RS256");
        assert_eq!(&assertions[1]["header"]["kid"], kids[1]);
        assert_eq!(assertions[1]["header"]["alg"], "ES256");
        for assertion in &assertions {
            assert_eq!(
                assertion["aud"],
                format!("{}/token", provider.issuer).as_str()
            );
        }
    })
}

/// `client_secret_post`, chosen (`OIDC_CLIENT_AUTH=client_secret_post`) or followed because the
/// provider takes only that (the default): the secret in the body of every call, never in
/// HTTP Basic, which this provider refuses.
#[test]
fn the_secret_goes_in_the_body_where_the_provider_takes_it_only_there() {
    run(async {
        for vars in [&[("OIDC_CLIENT_AUTH", "client_secret_post")][..], &[]] {
            let provider = TestProvider::start().await;
            provider.set_behaviour(Behaviour {
                client_secret_post: true,
                ..Behaviour::short_tokens(4)
            });
            let app = start_app_with(&provider.issuer, &Stores::sqlite(), vars).await;
            every_call(&app, &provider, &format!("{vars:?}")).await;
        }
    })
}
