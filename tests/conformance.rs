//! The OpenID Foundation's relying-party test plans (Basic RP, Config RP, RP-Initiated Logout,
//! Back-Channel Logout), and attacks past them, each against the test provider made to misbehave just so.
//!
//! Each test's doc comment is one line, `id: what the provider does → what the app must do`;
//! `scripts/conformance-table.sh` turns these and the run's results into the README's table.
//! A refusal is checked for its redirect, its page and status, and that nobody is signed in and
//! no user was written.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use support::{
    default_jwks, jwk, logout_claims, merge, query_param, run, sign_jwt, start_app,
    tamper_signature, Behaviour, Key, Page, Signer, TestApp, TestProvider, CLIENT_ID,
    CLIENT_SECRET,
};

async fn setup(behaviour: Behaviour) -> (TestApp, TestProvider) {
    let provider = TestProvider::start().await;
    provider.set_behaviour(behaviour);
    let app = start_app(&provider.issuer).await;
    (app, provider)
}

fn claims(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn with_id_token_claims(pairs: &[(&str, Value)]) -> Behaviour {
    Behaviour {
        id_token_claims: claims(pairs),
        ..Behaviour::default()
    }
}

async fn assert_signed_in(app: &TestApp, page: &Page) {
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/profile"));
    assert!(app.signed_in().await);
    assert_eq!(app.user_count().await, 1);
}

async fn assert_refused(app: &TestApp, page: &Page, code: &str, status: u16) {
    assert_eq!(page.status, 302, "{}", page.body);
    let location = page.location.as_deref().unwrap();
    assert_eq!(location, format!("/signin?error={code}"));
    let shown = app.get(location).await;
    assert_eq!(shown.status, status);
    assert!(shown.body.contains("Try again"));
    assert!(!app.signed_in().await, "a session was started");
    assert_eq!(app.user_count().await, 0, "a user record was written");
}

/// Signs in with the provider as it is, expecting the failure `code` with `status`.
async fn assert_sign_in_refused(behaviour: Behaviour, code: &str, status: u16) {
    let (app, provider) = setup(behaviour).await;
    let page = app.sign_in(&provider).await;
    assert_refused(&app, &page, code, status).await;
}

/// Signs in with the provider as it is, expecting a token refusal.
async fn assert_token_refused(behaviour: Behaviour) {
    assert_sign_in_refused(behaviour, "token_refused", 400).await;
}

/// Signs in with the provider as it is, expecting success.
async fn assert_accepted(behaviour: Behaviour) -> (TestApp, TestProvider) {
    let (app, provider) = setup(behaviour).await;
    let page = app.sign_in(&provider).await;
    assert_signed_in(&app, &page).await;
    (app, provider)
}

fn es256_provider() -> Behaviour {
    Behaviour {
        discovery: claims(&[("id_token_signing_alg_values_supported", json!(["ES256"]))]),
        jwks: Some(json!({ "keys": [jwk(Key::Ec, Some("ec-key"))] })),
        signer: Signer::Key {
            alg: "ES256",
            key: Key::Ec,
            kid: Some("ec-key"),
        },
        ..Behaviour::default()
    }
}

// Basic RP

/// rp-response_type-code: a correct authorization code flow → signed in
#[test]
fn rp_response_type_code() {
    run(async {
        assert_accepted(Behaviour::default()).await;
    })
}

/// rp-scope-userinfo-claims: claims for the requested scopes only from userinfo → signed in, claims shown
#[test]
fn rp_scope_userinfo_claims() {
    run(async {
        let (app, _) = assert_accepted(Behaviour {
            userinfo_claims: claims(&[
                ("locale", json!("en-GB")),
                ("zoneinfo", json!("Europe/London")),
            ]),
            ..Behaviour::default()
        })
        .await;
        let profile = app.get("/profile").await.body;
        assert!(profile.contains("en-GB") && profile.contains("Europe/London"));
    })
}

/// rp-nonce-invalid: an ID token with another nonce → refused, 400
#[test]
fn rp_nonce_invalid() {
    run(async {
        assert_token_refused(with_id_token_claims(&[("nonce", json!("not-the-nonce"))])).await;
    })
}

/// rp-token_endpoint-client_secret_basic: a token endpoint that takes HTTP Basic client authentication only → signed in
#[test]
fn rp_token_endpoint_client_secret_basic() {
    run(async {
        let (_, provider) = assert_accepted(Behaviour::default()).await;
        assert_eq!(provider.token_requests(), 1);
    })
}

/// rp-id_token-aud: an ID token for another audience → refused, 400
#[test]
fn rp_id_token_aud() {
    run(async {
        assert_token_refused(with_id_token_claims(&[("aud", json!("another-client"))])).await;
    })
}

/// rp-id_token-kid-absent-single-jwks: no `kid`, one key in the key set → signed in
#[test]
fn rp_id_token_kid_absent_single_jwks() {
    run(async {
        assert_accepted(Behaviour {
            jwks: Some(json!({ "keys": [jwk(Key::Rsa1, None)] })),
            signer: Signer::rs256(Key::Rsa1, None),
            ..Behaviour::default()
        })
        .await;
    })
}

/// rp-id_token-kid-absent-multiple-jwks: no `kid`, several keys in the key set → refused, 400 (the plan allows refusing)
#[test]
fn rp_id_token_kid_absent_multiple_jwks() {
    run(async {
        assert_token_refused(Behaviour {
            jwks: Some(json!({ "keys": [jwk(Key::Rsa2, None), jwk(Key::Rsa1, None)] })),
            signer: Signer::rs256(Key::Rsa1, None),
            ..Behaviour::default()
        })
        .await;
    })
}

/// rp-id_token-sig-none: an unsigned ID token (`alg: none`) → refused, 400 (by policy: never `none`)
#[test]
fn rp_id_token_sig_none() {
    run(async {
        assert_token_refused(Behaviour {
            signer: Signer::Unsigned,
            ..Behaviour::default()
        })
        .await;
    })
}

/// rp-id_token-issuer-mismatch: an ID token from another issuer → refused, 400
#[test]
fn rp_id_token_issuer_mismatch() {
    run(async {
        assert_token_refused(with_id_token_claims(&[(
            "iss",
            json!("https://elsewhere.example"),
        )]))
        .await;
    })
}

/// rp-id_token-bad-sig-rs256: an RS256 ID token with a broken signature → refused, 400
#[test]
fn rp_id_token_bad_sig_rs256() {
    run(async {
        assert_token_refused(Behaviour {
            tamper_signature: true,
            ..Behaviour::default()
        })
        .await;
    })
}

/// rp-id_token-iat: an ID token without `iat` → refused, 400
#[test]
fn rp_id_token_iat() {
    run(async {
        assert_token_refused(with_id_token_claims(&[("iat", Value::Null)])).await;
    })
}

/// rp-id_token-sig-rs256: an RS256-signed ID token → signed in
#[test]
fn rp_id_token_sig_rs256() {
    run(async {
        assert_accepted(Behaviour::default()).await;
    })
}

/// rp-id_token-sub: an ID token without `sub` → refused, 400
#[test]
fn rp_id_token_sub() {
    run(async {
        assert_token_refused(with_id_token_claims(&[("sub", Value::Null)])).await;
    })
}

/// rp-userinfo-bad-sub-claim: userinfo about another `sub` than the ID token → refused, 400
#[test]
fn rp_userinfo_bad_sub_claim() {
    run(async {
        assert_token_refused(Behaviour {
            userinfo_claims: claims(&[("sub", json!("someone-else"))]),
            ..Behaviour::default()
        })
        .await;
    })
}

/// rp-userinfo-bearer-header: a userinfo endpoint that takes the access token in the Authorization header only → signed in
#[test]
fn rp_userinfo_bearer_header() {
    run(async {
        let (app, _) = assert_accepted(Behaviour::default()).await;
        assert!(app.get("/profile").await.body.contains("alice@example.com"));
    })
}

/// rp-id_token-sig-es256: an ES256-signed ID token → signed in
#[test]
fn rp_id_token_sig_es256() {
    run(async {
        assert_accepted(es256_provider()).await;
    })
}

/// rp-id_token-bad-sig-es256: an ES256 ID token with a broken signature → refused, 400
#[test]
fn rp_id_token_bad_sig_es256() {
    run(async {
        assert_token_refused(Behaviour {
            tamper_signature: true,
            ..es256_provider()
        })
        .await;
    })
}

// Config RP

/// rp-discovery-openid-configuration: endpoints from the discovery document → signed in
#[test]
fn rp_discovery_openid_configuration() {
    run(async {
        let (app, provider) = setup(Behaviour::default()).await;
        let authorize = app.start_sign_in("/login").await;
        assert!(authorize.starts_with(&format!("{}/authorize?", provider.issuer)));
        assert_signed_in(&app, &app.callback_for(&provider, &authorize).await).await;
    })
}

/// rp-discovery-jwks_uri-keys: keys at the `jwks_uri` that discovery names → signed in
#[test]
fn rp_discovery_jwks_uri_keys() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            discovery: claims(&[(
                "jwks_uri",
                json!(format!("{}/keys/current", provider.issuer)),
            )]),
            ..Behaviour::default()
        });
        let app = start_app(&provider.issuer).await;
        assert_signed_in(&app, &app.sign_in(&provider).await).await;
        assert_eq!(provider.jwks_requests(), 1);
    })
}

/// rp-discovery-issuer-not-matching-config: a discovery document naming another issuer → sign-in not started, 503
#[test]
fn rp_discovery_issuer_not_matching_config() {
    run(async {
        let (app, _) = setup(Behaviour {
            discovery: claims(&[("issuer", json!("https://impostor.example"))]),
            ..Behaviour::default()
        })
        .await;
        let page = app.get("/login").await;
        assert_refused(&app, &page, "provider_misconfigured", 503).await;
    })
}

/// rp-key-rotation-op-sign-key: the provider signs with a new key between two sign-ins → signed in both times, no restart
#[test]
fn rp_key_rotation_op_sign_key() {
    run(async {
        let (app, provider) = assert_accepted(Behaviour::default()).await;
        assert_eq!(provider.jwks_requests(), 1);
        provider.set_behaviour(Behaviour {
            jwks: Some(json!({ "keys": [jwk(Key::Rsa2, Some("rotated-key"))] })),
            signer: Signer::rs256(Key::Rsa2, Some("rotated-key")),
            ..Behaviour::default()
        });
        let second = app.in_another_browser();
        assert_signed_in(&second, &second.sign_in(&provider).await).await;
        assert_eq!(provider.jwks_requests(), 2, "keys fetched again once");
    })
}

// RP-Initiated Logout

/// rp-init-logout: sign-out at a provider with an `end_session_endpoint` → sent there with `id_token_hint` and `post_logout_redirect_uri`, local session ended
#[test]
fn rp_init_logout() {
    run(async {
        let (app, provider) = assert_accepted(Behaviour::default()).await;
        let csrf = app.csrf_token().await;
        let page = app
            .post_form("/logout", &[("csrf", &csrf)], Some(&app.url))
            .await;
        let end = page.location.unwrap();
        assert!(end.starts_with(&format!("{}/session/end?", provider.issuer)));
        assert!(query_param(&end, "id_token_hint").split('.').count() == 3);
        assert_eq!(
            query_param(&end, "post_logout_redirect_uri"),
            format!("{}/", app.url)
        );
        assert!(!app.signed_in().await);
    })
}

// Back-Channel Logout

/// Signs in (the provider's session is `provider-session-1`), then posts `token` to the app's
/// back-channel logout endpoint as the provider would. Returns the answer and the app.
async fn back_channel(token: impl FnOnce(&str) -> String) -> (reqwest::Response, TestApp) {
    let (app, provider) = assert_accepted(Behaviour::default()).await;
    let answer = app.post_logout_token(&token(&provider.issuer)).await;
    (answer, app)
}

/// A logout token signed as the provider signs, with these changes to a valid one's claims.
fn logout_token(issuer: &str, changes: &[(&str, Value)]) -> String {
    let mut token = logout_claims(issuer);
    merge(&mut token, &claims(changes));
    sign_jwt(&Signer::default(), &token)
}

/// The app refused the logout token with a 400 and a JSON error, and the session lives on.
async fn assert_logout_refused(answer: reqwest::Response, app: &TestApp) {
    assert_eq!(answer.status(), 400);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        app.signed_in().await,
        "a refused logout token ended the session"
    );
}

/// rp-backchannel-rpinitlogout: a valid logout token for the provider session → 200 with no-store, that session ended
#[test]
fn rp_backchannel_rpinitlogout() {
    run(async {
        let (answer, app) = back_channel(|issuer| logout_token(issuer, &[])).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["cache-control"], "no-store");
        assert!(!app.signed_in().await);
        // The user stays; only the session ended.
        assert_eq!(app.user_count().await, 1);
    })
}

/// rp-backchannel-rpinitlogout-lt-alg-none: an unsigned logout token (`alg: none`) → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_alg_none() {
    run(async {
        let (answer, app) =
            back_channel(|issuer| sign_jwt(&Signer::Unsigned, &logout_claims(issuer))).await;
        assert_logout_refused(answer, &app).await;
    })
}

/// rp-backchannel-rpinitlogout-lt-wrong-alg: a logout token signed HS256 with the client secret → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_wrong_alg() {
    run(async {
        let (answer, app) = back_channel(|issuer| {
            sign_jwt(
                &Signer::Hmac(CLIENT_SECRET.as_bytes().to_vec()),
                &logout_claims(issuer),
            )
        })
        .await;
        assert_logout_refused(answer, &app).await;
    })
}

/// rp-backchannel-rpinitlogout-lt-wrong-aud: a logout token for another client → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_wrong_aud() {
    run(async {
        let (answer, app) =
            back_channel(|issuer| logout_token(issuer, &[("aud", json!("another-client"))])).await;
        assert_logout_refused(answer, &app).await;
    })
}

/// rp-backchannel-rpinitlogout-lt-wrong-iss: a logout token from another issuer → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_wrong_iss() {
    run(async {
        let (answer, app) = back_channel(|issuer| {
            logout_token(issuer, &[("iss", json!("https://another-issuer.example"))])
        })
        .await;
        assert_logout_refused(answer, &app).await;
    })
}

/// rp-backchannel-rpinitlogout-lt-no-event: a logout token without the `events` claim → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_no_event() {
    run(async {
        let (answer, app) =
            back_channel(|issuer| logout_token(issuer, &[("events", Value::Null)])).await;
        assert_logout_refused(answer, &app).await;
    })
}

/// rp-backchannel-rpinitlogout-lt-wrong-event: a logout token whose event is not the back-channel logout one → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_wrong_event() {
    run(async {
        let (answer, app) = back_channel(|issuer| {
            logout_token(
                issuer,
                &[(
                    "events",
                    json!({ "http://schemas.openid.net/event/other": {} }),
                )],
            )
        })
        .await;
        assert_logout_refused(answer, &app).await;
    })
}

/// rp-backchannel-rpinitlogout-lt-with-nonce: a logout token with a `nonce` → refused, 400
#[test]
fn rp_backchannel_rpinitlogout_lt_with_nonce() {
    run(async {
        let (answer, app) =
            back_channel(|issuer| logout_token(issuer, &[("nonce", json!("n-0S6_WzA2Mj"))])).await;
        assert_logout_refused(answer, &app).await;
    })
}

/// x-backchannel-bad-signature: a logout token with a broken signature → refused, 400
#[test]
fn x_backchannel_bad_signature() {
    run(async {
        let (answer, app) = back_channel(|issuer| {
            let mut token = logout_token(issuer, &[]);
            tamper_signature(&mut token);
            token
        })
        .await;
        assert_logout_refused(answer, &app).await;
    })
}

/// x-backchannel-replay: the same logout token twice, the session signed in again between → the second refused, 400
#[test]
fn x_backchannel_replay() {
    run(async {
        let (app, provider) = assert_accepted(Behaviour::default()).await;
        let token = logout_token(&provider.issuer, &[]);
        assert_eq!(app.post_logout_token(&token).await.status(), 200);
        assert!(!app.signed_in().await);
        app.sign_in(&provider).await;
        assert_logout_refused(app.post_logout_token(&token).await, &app).await;
    })
}

/// x-backchannel-expired: a logout token past its `exp` → refused, 400
#[test]
fn x_backchannel_expired() {
    run(async {
        let (answer, app) = back_channel(|issuer| {
            let now = support::now();
            logout_token(
                issuer,
                &[("iat", json!(now - 900)), ("exp", json!(now - 600))],
            )
        })
        .await;
        assert_logout_refused(answer, &app).await;
    })
}

/// x-backchannel-no-sid-no-sub: a logout token naming neither a `sid` nor a `sub` → refused, 400
#[test]
fn x_backchannel_no_sid_no_sub() {
    run(async {
        let (answer, app) = back_channel(|issuer| {
            logout_token(issuer, &[("sid", Value::Null), ("sub", Value::Null)])
        })
        .await;
        assert_logout_refused(answer, &app).await;
    })
}

/// x-backchannel-no-jti: a logout token without `jti` (so its single use cannot be enforced) → refused, 400
#[test]
fn x_backchannel_no_jti() {
    run(async {
        let (answer, app) =
            back_channel(|issuer| logout_token(issuer, &[("jti", Value::Null)])).await;
        assert_logout_refused(answer, &app).await;
    })
}

/// x-backchannel-not-a-token: a post without a logout token, or with garbage → refused, 400
#[test]
fn x_backchannel_not_a_token() {
    run(async {
        let (app, _) = assert_accepted(Behaviour::default()).await;
        let empty = reqwest::Client::new()
            .post(format!("{}/backchannel-logout", app.url))
            .form(&[("something", "else")])
            .send()
            .await
            .unwrap();
        assert_logout_refused(empty, &app).await;
        assert_logout_refused(app.post_logout_token("garbage").await, &app).await;
    })
}

/// x-backchannel-other-sid: a valid logout token for another provider session → 200, this session kept
#[test]
fn x_backchannel_other_sid() {
    run(async {
        let (answer, app) =
            back_channel(|issuer| logout_token(issuer, &[("sid", json!("provider-session-2"))]))
                .await;
        assert_eq!(answer.status(), 200);
        assert!(app.signed_in().await);
    })
}

/// x-backchannel-sub-only: a valid logout token naming only the subject → 200, every session of the user ended
#[test]
fn x_backchannel_sub_only() {
    run(async {
        let (app, provider) = assert_accepted(Behaviour::default()).await;
        let other = app.in_another_browser();
        provider.set_behaviour(with_id_token_claims(&[(
            "sid",
            json!("provider-session-2"),
        )]));
        other.sign_in(&provider).await;
        assert!(other.signed_in().await);
        let token = logout_token(&provider.issuer, &[("sid", Value::Null)]);
        assert_eq!(app.post_logout_token(&token).await.status(), 200);
        assert!(!app.signed_in().await);
        assert!(!other.signed_in().await);
    })
}

// Past the plans

/// x-alg-confusion-hs256-client-secret: an HS256 ID token keyed with the client secret → refused, 400
#[test]
fn x_alg_confusion_hs256_client_secret() {
    run(async {
        assert_token_refused(Behaviour {
            signer: Signer::Hmac(CLIENT_SECRET.as_bytes().to_vec()),
            ..Behaviour::default()
        })
        .await;
    })
}

/// x-alg-confusion-hs256-public-key: an HS256 ID token keyed with the provider's public key → refused, 400
#[test]
fn x_alg_confusion_hs256_public_key() {
    run(async {
        assert_token_refused(Behaviour {
            signer: Signer::Hmac(default_jwks().to_string().into_bytes()),
            ..Behaviour::default()
        })
        .await;
    })
}

/// x-untrusted-extra-audience: an ID token also for an untrusted audience → refused, 400
#[test]
fn x_untrusted_extra_audience() {
    run(async {
        assert_token_refused(with_id_token_claims(&[
            ("aud", json!([CLIENT_ID, "untrusted-client"])),
            ("azp", json!(CLIENT_ID)),
        ]))
        .await;
    })
}

/// x-azp-mismatch: an ID token authorized for another party (`azp`) → refused, 400
#[test]
fn x_azp_mismatch() {
    run(async {
        assert_token_refused(with_id_token_claims(&[("azp", json!("another-client"))])).await;
    })
}

/// x-at-hash-mismatch: an `at_hash` that does not match the access token → refused, 400
#[test]
fn x_at_hash_mismatch() {
    run(async {
        assert_token_refused(with_id_token_claims(&[(
            "at_hash",
            json!("AAAAAAAAAAAAAAAAAAAAAA"),
        )]))
        .await;
    })
}

/// x-token-from-the-future: an ID token issued an hour from now → refused, 400
#[test]
fn x_token_from_the_future() {
    run(async {
        let now = support::now();
        assert_token_refused(with_id_token_claims(&[
            ("iat", json!(now + 3600)),
            ("exp", json!(now + 7200)),
        ]))
        .await;
    })
}

/// x-token-not-yet-valid: an ID token whose `nbf` is an hour from now → refused, 400
#[test]
fn x_token_not_yet_valid() {
    run(async {
        let now = support::now();
        assert_token_refused(with_id_token_claims(&[("nbf", json!(now + 3600))])).await;
    })
}

/// x-discovery-in-background: a provider up when the app starts → discovered before anyone signs in
#[test]
fn x_discovery_in_background() {
    run(async {
        let provider = TestProvider::start().await;
        let _app = start_app(&provider.issuer).await;
        let started = Instant::now();
        while provider.jwks_requests() == 0 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            provider.jwks_requests(),
            1,
            "no discovery without a request"
        );
    })
}

/// x-expired-token: an ID token that expired an hour ago → refused, 400
#[test]
fn x_expired_token() {
    run(async {
        let now = support::now();
        assert_token_refused(with_id_token_claims(&[
            ("iat", json!(now - 7200)),
            ("exp", json!(now - 3600)),
        ]))
        .await;
    })
}

/// x-clock-skew-within-leeway: `iat` 30 s ahead and `exp` 30 s past (60 s skew allowed) → signed in
#[test]
fn x_clock_skew_within_leeway() {
    run(async {
        let now = support::now();
        assert_accepted(with_id_token_claims(&[
            ("iat", json!(now + 30)),
            ("exp", json!(now - 30)),
        ]))
        .await;
    })
}

/// x-missing-id-token: a token response without an ID token → refused, 400
#[test]
fn x_missing_id_token() {
    run(async {
        assert_token_refused(Behaviour {
            token_fields: claims(&[("id_token", Value::Null)]),
            ..Behaviour::default()
        })
        .await;
    })
}

/// x-tampered-state: a callback whose `state` was altered → refused, 400, the code is not exchanged
#[test]
fn x_tampered_state() {
    run(async {
        let (app, provider) = setup(Behaviour::default()).await;
        let authorize = app.start_sign_in("/login").await;
        let code = provider.authorize(&authorize);
        let state = query_param(&authorize, "state");
        let page = app
            .get(&format!(
                "/authorization-code/callback?code={code}&state={state}x"
            ))
            .await;
        assert_refused(&app, &page, "bad_state", 400).await;
        assert_eq!(provider.token_requests(), 0);
    })
}

/// x-replayed-callback: a successful callback sent again, here and from another browser → no second exchange; here the profile, there refused, 400
#[test]
fn x_replayed_callback() {
    run(async {
        let (app, provider) = setup(Behaviour::default()).await;
        let authorize = app.start_sign_in("/login").await;
        let code = provider.authorize(&authorize);
        let callback = format!(
            "/authorization-code/callback?code={code}&state={}",
            query_param(&authorize, "state")
        );
        assert_signed_in(&app, &app.get(&callback).await).await;
        assert_eq!(
            app.get(&callback).await.location.as_deref(),
            Some("/profile")
        );
        let attacker = app.in_another_browser();
        let page = attacker.get(&callback).await;
        assert_eq!(page.location.as_deref(), Some("/signin?error=bad_state"));
        assert!(!attacker.signed_in().await);
        assert_eq!(provider.token_requests(), 1);
    })
}

/// x-mix-up-iss-parameter: a callback whose `iss` parameter names another issuer (RFC 9207) → refused, 400
#[test]
fn x_mix_up_iss_parameter() {
    run(async {
        let (app, provider) = setup(Behaviour::default()).await;
        let authorize = app.start_sign_in("/login").await;
        let code = provider.authorize(&authorize);
        let page = app
            .get(&format!(
                "/authorization-code/callback?code={code}&state={}&iss=https%3A%2F%2Fevil.example",
                query_param(&authorize, "state")
            ))
            .await;
        assert_refused(&app, &page, "token_refused", 400).await;
        assert_eq!(provider.token_requests(), 0);
    })
}

/// x-iss-parameter-promised-but-missing: a provider that promises the `iss` parameter (RFC 9207) and a callback without it → refused, 400, the code is not exchanged
#[test]
fn x_iss_parameter_promised_but_missing() {
    run(async {
        let (app, provider) = setup(Behaviour {
            discovery: claims(&[(
                "authorization_response_iss_parameter_supported",
                json!(true),
            )]),
            ..Behaviour::default()
        })
        .await;
        let page = app.sign_in(&provider).await;
        assert_refused(&app, &page, "token_refused", 400).await;
        assert_eq!(provider.token_requests(), 0);
    })
}

/// x-provider-signs-only-hs512: a provider whose ID tokens are signed only with HS512 → sign-in not started, 503 (the log names HS512 and the allowed algorithms)
#[test]
fn x_provider_signs_only_hs512() {
    run(async {
        let (app, _) = setup(Behaviour {
            discovery: claims(&[("id_token_signing_alg_values_supported", json!(["HS512"]))]),
            ..Behaviour::default()
        })
        .await;
        let page = app.get("/login").await;
        assert_refused(&app, &page, "provider_misconfigured", 503).await;
    })
}

/// x-token-endpoint-500: a token endpoint that answers 500 → refused, 503
#[test]
fn x_token_endpoint_500() {
    run(async {
        let behaviour = Behaviour {
            token_response: Some((500, "Internal Server Error".into())),
            ..Behaviour::default()
        };
        assert_sign_in_refused(behaviour, "provider_unavailable", 503).await;
    })
}

/// x-token-endpoint-garbage: a token endpoint that answers 200 with garbage → refused, 503
#[test]
fn x_token_endpoint_garbage() {
    run(async {
        let behaviour = Behaviour {
            token_response: Some((200, "<html>surprise</html>".into())),
            ..Behaviour::default()
        };
        assert_sign_in_refused(behaviour, "provider_unavailable", 503).await;
    })
}

/// x-token-endpoint-silent: a token endpoint that says nothing for a minute → refused after the 2 s bound of the tests, 504
#[test]
fn x_token_endpoint_silent() {
    run(async {
        let (app, provider) = setup(Behaviour {
            token_delay: Some(Duration::from_secs(60)),
            ..Behaviour::default()
        })
        .await;
        let started = Instant::now();
        let page = app.sign_in(&provider).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_refused(&app, &page, "provider_timeout", 504).await;
    })
}

/// x-jwks-garbage: a key set endpoint that answers garbage → sign-in not started, 503
#[test]
fn x_jwks_garbage() {
    run(async {
        let (app, _) = setup(Behaviour {
            jwks_body: Some("this is not a key set".into()),
            ..Behaviour::default()
        })
        .await;
        let page = app.get("/login").await;
        assert_refused(&app, &page, "provider_unavailable", 503).await;
    })
}

/// x-jwks-garbage-after-rotation: after a good sign-in, forged `kid`s and a key set endpoint answering garbage → refused, 400, the last good keys kept
#[test]
fn x_jwks_garbage_after_rotation() {
    run(async {
        let (app, provider) = assert_accepted(Behaviour::default()).await;
        provider.set_behaviour(Behaviour {
            jwks_body: Some("garbage".into()),
            signer: Signer::rs256(Key::Rsa1, Some("forged-kid")),
            ..Behaviour::default()
        });
        let second = app.in_another_browser();
        let page = second.sign_in(&provider).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/signin?error=token_refused")
        );
        assert!(!second.signed_in().await);
        // The good key set is still in use.
        provider.set_behaviour(Behaviour::default());
        let third = app.in_another_browser();
        assert_eq!(
            third.sign_in(&provider).await.location.as_deref(),
            Some("/profile")
        );
    })
}

/// x-forged-kid-flood: ID tokens naming unknown `kid`s, one after another → refused, 400, keys fetched at most once per cooldown
#[test]
fn x_forged_kid_flood() {
    run(async {
        let (app, provider) = setup(Behaviour {
            signer: Signer::rs256(Key::Rsa1, Some("forged-kid")),
            ..Behaviour::default()
        })
        .await;
        for _ in 0..5 {
            let page = app.sign_in(&provider).await;
            assert_eq!(
                page.location.as_deref(),
                Some("/signin?error=token_refused")
            );
        }
        assert!(!app.signed_in().await);
        assert_eq!(app.user_count().await, 0);
        // One fetch at discovery, one refetch for the first unknown kid, then the cooldown holds.
        assert_eq!(provider.jwks_requests(), 2);
    })
}
