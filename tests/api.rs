//! Calling an API with the signed-in user's access token (the app's `/api-demo`, which asks the
//! provider's userinfo endpoint), server functions for signed-in users only, and the app's own
//! API for services that send an access token (`/api/me`).

mod support;

use serde_json::{json, Value};
use support::{
    run, sign_jwt, start_app_with, start_app_with_providers, Behaviour, Identity, Key, Signer,
    Stores, TestApp, TestProvider, CLIENT_ID, SUBJECT,
};

/// A provider that issues refresh tokens, and the app signed in to it.
async fn signed_in() -> (TestApp, TestProvider) {
    let provider = TestProvider::start().await;
    provider.set_behaviour(Behaviour {
        refresh_tokens: true,
        ..Behaviour::default()
    });
    let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
    app.sign_in(&provider).await;
    (app, provider)
}

#[test]
fn the_api_demo_shows_what_the_provider_answers_to_the_users_token() {
    run(async {
        let (app, provider) = signed_in().await;
        let asked = provider.userinfo_requests();
        let page = app.get("/api-demo").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("email_verified"), "{}", page.body);
        assert!(page.body.contains(provider.identity.email), "{}", page.body);
        assert_eq!(provider.userinfo_requests(), asked + 1);
        assert_eq!(provider.refresh_requests(), 0);
    })
}

/// An access token about to expire is renewed before the call, not after the API refuses it.
#[test]
fn a_token_due_for_renewal_is_renewed_before_the_call() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour::short_tokens(4));
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        app.sign_in(&provider).await;
        let asked = provider.userinfo_requests();
        // In the token's last quarter: due for renewal, not yet expired.
        tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
        let page = app.get("/api-demo").await;
        assert!(page.body.contains("email_verified"), "{}", page.body);
        assert_eq!(provider.refresh_requests(), 1);
        assert_eq!(
            provider.userinfo_requests(),
            asked + 1,
            "the API was asked with an old token"
        );
        // Once its first token has expired, the API is asked with the renewed one.
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let page = app.get("/api-demo").await;
        assert!(page.body.contains("email_verified"), "{}", page.body);
        assert_eq!(provider.refresh_requests(), 1);
    })
}

#[test]
fn a_refused_token_is_renewed_once_and_the_call_made_again() {
    run(async {
        let (app, provider) = signed_in().await;
        let asked = provider.userinfo_requests();
        provider.refuse_userinfo(1);
        let page = app.get("/api-demo").await;
        assert!(page.body.contains("email_verified"), "{}", page.body);
        assert_eq!(provider.refresh_requests(), 1);
        assert_eq!(provider.userinfo_requests(), asked + 2);
        // The renewed token was kept: the next call needs no renewal.
        app.get("/api-demo").await;
        assert_eq!(provider.refresh_requests(), 1);
        assert_eq!(provider.userinfo_requests(), asked + 3);
    })
}

#[test]
fn an_api_that_keeps_refusing_is_asked_twice_and_the_page_says_so() {
    run(async {
        let (app, provider) = signed_in().await;
        let asked = provider.userinfo_requests();
        provider.refuse_userinfo(usize::MAX);
        let page = app.get("/api-demo").await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("The provider did not answer"),
            "{}",
            page.body
        );
        assert!(page.body.contains("401"), "{}", page.body);
        assert_eq!(provider.refresh_requests(), 1, "renewed more than once");
        assert_eq!(
            provider.userinfo_requests(),
            asked + 2,
            "asked more than twice"
        );
        assert!(
            app.signed_in().await,
            "the session survives an API's refusal"
        );
    })
}

/// `require_user`: a server function called without a session answers a program with a 401 it
/// can act on, and sends a plain form post to sign in and back to the page it came from.
#[test]
fn a_server_function_for_signed_in_users_answers_401_or_sends_to_sign_in() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        let url = format!("{}/api/provider_userinfo", app.url);
        let program = reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(program.status(), 401);
        let body: serde_json::Value = serde_json::from_str(&program.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "sign_in_required", "{body}");

        let form = app
            .client
            .post(&url)
            .header("referer", format!("{}/api-demo", app.url))
            .header("origin", &app.url)
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 302);
        assert_eq!(form.headers()["location"], "/login?return_to=/api-demo");

        let page = app.get("/api-demo").await;
        assert_eq!(page.location.as_deref(), Some("/login?return_to=/api-demo"));
    })
}

/// What `/api/me` answers to a service sending `authorization`: status, `WWW-Authenticate`
/// and the JSON body.
async fn api_me(app: &TestApp, authorization: Option<&str>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new().get(format!("{}/api/me", app.url));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    (status, challenge, body)
}

/// The refusal of a token issued to the reports service, which the API does not take.
fn assert_not_taken(body: &Value) {
    let why = body["error_description"].as_str().unwrap();
    assert!(
        why.contains("reports-service, which the API does not take"),
        "{body}"
    );
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

#[test]
fn api_me_answers_a_good_jwt_access_token_with_its_subject_and_claims() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        let token = provider.jwt_access_token(json!({}));
        let (status, _, me) = api_me(&app, bearer(&token).as_deref()).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["subject"], SUBJECT);
        assert_eq!(me["provider"], "default");
        assert_eq!(me["client_id"], CLIENT_ID);
        assert_eq!(me["claims"]["scope"], "openid email");
        assert_eq!(provider.introspection_requests(), 0, "a JWT needs no call");
    })
}

#[test]
fn api_me_refuses_tokens_that_are_not_good_and_says_why() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        let past = support::now() - 600;
        let other_key = {
            provider.set_behaviour(Behaviour {
                signer: Signer::rs256(Key::Rsa2, Some("other-key")),
                ..Behaviour::default()
            });
            let token = provider.jwt_access_token(json!({}));
            provider.set_behaviour(Behaviour::default());
            token
        };
        let id_token = sign_jwt(
            &Signer::default(),
            &json!({ "iss": provider.issuer, "aud": CLIENT_ID, "sub": SUBJECT, "exp": support::now() + 300 }),
        );
        for (token, why) in [
            (provider.jwt_access_token(json!({ "exp": past })), "expired"),
            (
                provider.jwt_access_token(json!({ "aud": "another-api" })),
                "another audience",
            ),
            (other_key, "no key of the provider matches"),
            (
                provider.jwt_access_token(json!({ "iss": "https://elsewhere.example" })),
                "issued by no configured provider",
            ),
            // An ID token is not an access token: it goes to introspection, which knows it not.
            (id_token, "no configured provider knows it"),
            ("made-up".into(), "no configured provider knows it"),
        ] {
            let (status, challenge, body) = api_me(&app, bearer(&token).as_deref()).await;
            assert_eq!(status, 401, "{why}: {body}");
            assert_eq!(body["error"], "invalid_token", "{why}");
            assert!(
                body["error_description"].as_str().unwrap().contains(why),
                "{why}: {body}"
            );
            assert!(
                challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#),
                "{why}: {challenge}"
            );
        }
        // No token: a bare challenge, no error code.
        for authorization in [None, Some("Basic dGVzdDp0ZXN0")] {
            let (status, challenge, body) = api_me(&app, authorization).await;
            assert_eq!((status, challenge.as_str()), (401, "Bearer"), "{body}");
            assert_eq!(body["error"], "token_required");
        }
        let (status, _, body) = api_me(&app, Some("Bearer two words")).await;
        assert_eq!((status, &body["error"]), (401, &json!("invalid_token")));
    })
}

#[test]
fn api_me_asks_the_provider_about_an_opaque_token_and_keeps_its_answer_briefly() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        let token = provider.opaque_access_token(CLIENT_ID, 300);
        for _ in 0..3 {
            let (status, _, me) = api_me(&app, bearer(&token).as_deref()).await;
            assert_eq!(status, 200, "{me}");
            assert_eq!(me["subject"], SUBJECT);
            assert_eq!(me["client_id"], CLIENT_ID);
        }
        assert_eq!(
            provider.introspection_requests(),
            1,
            "asked again within the cache"
        );

        // Never kept past the token's expiry: asked again then, and refused.
        let short = provider.opaque_access_token(CLIENT_ID, 2);
        assert_eq!(api_me(&app, bearer(&short).as_deref()).await.0, 200);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let (status, _, body) = api_me(&app, bearer(&short).as_deref()).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(provider.introspection_requests(), 3);
    })
}

#[test]
fn api_me_takes_opaque_tokens_of_other_clients_only_when_configured() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        let reports = provider.opaque_access_token("reports-service", 300);
        let (status, _, body) = api_me(&app, bearer(&reports).as_deref()).await;
        assert_eq!(status, 401, "{body}");
        assert_not_taken(&body);

        let app = start_app_with(
            &provider.issuer,
            &Stores::sqlite(),
            &[("API_CLIENTS", "reports-service, test-client")],
        )
        .await;
        let (status, _, me) = api_me(&app, bearer(&reports).as_deref()).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["client_id"], "reports-service");
        let own = provider.opaque_access_token(CLIENT_ID, 300);
        assert_eq!(api_me(&app, bearer(&own).as_deref()).await.0, 200);
    })
}

#[test]
fn api_me_takes_jwts_for_the_configured_audience() {
    run(async {
        let provider = TestProvider::start().await;
        let app = start_app_with(
            &provider.issuer,
            &Stores::sqlite(),
            &[("API_AUDIENCE", "https://api.example")],
        )
        .await;
        let for_api = provider.jwt_access_token(json!({ "aud": ["https://api.example", "x"] }));
        assert_eq!(api_me(&app, bearer(&for_api).as_deref()).await.0, 200);
        let for_client = provider.jwt_access_token(json!({}));
        assert_eq!(api_me(&app, bearer(&for_client).as_deref()).await.0, 401);
    })
}

#[test]
fn api_me_answers_503_while_the_provider_cannot_be_asked() {
    run(async {
        let provider = TestProvider::down().await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        let response = reqwest::Client::new()
            .get(format!("{}/api/me", app.url))
            .bearer_auth("opaque-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    })
}

/// With several providers, an opaque token is asked about at each until one knows it; that
/// one's answer decides, whatever the others say.
#[test]
fn api_me_asks_each_provider_until_one_knows_the_token() {
    run(async {
        let acme = TestProvider::start().await;
        let globex = TestProvider::start_with(Identity::CAROL).await;
        let app = start_app_with_providers(
            &[("acme", &acme), ("globex", &globex)],
            &Stores::sqlite(),
            &[],
        )
        .await;
        let carols = globex.opaque_access_token(Identity::CAROL.client_id, 300);
        let (status, _, me) = api_me(&app, bearer(&carols).as_deref()).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(
            (&me["provider"], &me["subject"]),
            (&json!("globex"), &json!("carol-subject"))
        );

        // Acme knows this one, and refuses it: Globex's "not active" does not hide why.
        let reports = acme.opaque_access_token("reports-service", 300);
        let (status, _, body) = api_me(&app, bearer(&reports).as_deref()).await;
        assert_eq!(status, 401);
        assert_not_taken(&body);
    })
}

/// A server function of the team's own, for admins only: `require_user`, then `require_claim`.
#[leptos::server(endpoint = "admins_only")]
async fn admins_only() -> Result<String, leptos::prelude::ServerFnError> {
    let user = leptos_oidc::auth::require_user().await?;
    user.require_claim("groups", "admins")?;
    Ok(format!("hello, {}", user.user.subject))
}

#[test]
fn a_server_function_may_require_a_claim_value() {
    run(async {
        let provider = TestProvider::start().await;
        let with_groups = |groups: Value| Behaviour {
            userinfo_claims: json!({ "groups": groups }).as_object().unwrap().clone(),
            ..Behaviour::default()
        };
        provider.set_behaviour(with_groups(json!(["staff"])));
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        app.sign_in(&provider).await;
        let call = |app: &TestApp| {
            app.client
                .post(format!("{}/api/admins_only", app.url))
                .header("accept", "application/json")
                .send()
        };
        let refused = call(&app).await.unwrap();
        assert_eq!(refused.status(), 403);
        let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "forbidden", "{body}");

        provider.set_behaviour(with_groups(json!(["staff", "admins"])));
        let admin = app.in_another_browser();
        admin.sign_in(&provider).await;
        let allowed = call(&admin).await.unwrap();
        assert_eq!(allowed.status(), 200);
        assert!(allowed.text().await.unwrap().contains(SUBJECT));
    })
}

/// A server function of the team's own that needs a stronger sign-in (`acr`).
#[leptos::server(endpoint = "mfa_only")]
async fn mfa_only() -> Result<String, leptos::prelude::ServerFnError> {
    let user = leptos_oidc::auth::require_user().await?;
    user.require_acr("mfa").await?;
    Ok("done".into())
}

#[test]
fn a_server_function_may_require_a_stronger_sign_in_which_the_provider_must_show() {
    run(async {
        for ignores_step_up in [false, true] {
            let provider = TestProvider::start().await;
            provider.set_behaviour(Behaviour {
                acr: Some("pwd".into()),
                ignores_step_up,
                ..Behaviour::default()
            });
            let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
            app.sign_in(&provider).await;
            let url = format!("{}/api/mfa_only", app.url);
            let program = app.client.post(&url).header("accept", "application/json");
            let refused = program.send().await.unwrap();
            assert_eq!(refused.status(), 401);
            let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
            assert_eq!(body["error"], "step_up_required");

            // A form on a page is sent to the provider for the stronger sign-in, and back.
            let form = app
                .client
                .post(&url)
                .header("accept", "text/html")
                .header("origin", &app.url)
                .header("referer", format!("{}/profile", app.url))
                .send()
                .await
                .unwrap();
            let step_up = form.headers()["location"].to_str().unwrap().to_owned();
            assert_eq!(
                step_up,
                "/login?provider=default&acr_values=mfa&return_to=/profile"
            );
            let authorize = app.start_sign_in(&step_up).await;
            assert_eq!(support::query_param(&authorize, "acr_values"), "mfa");
            let back = app.callback_for(&provider, &authorize).await;
            let answer = app.client.post(&url).header("accept", "application/json");
            let status = answer.send().await.unwrap().status();
            if ignores_step_up {
                assert_eq!(
                    back.location.as_deref(),
                    Some("/signin?error=step_up_failed")
                );
                assert_eq!(
                    status, 401,
                    "a provider that ignored acr_values satisfied it"
                );
            } else {
                assert_eq!(back.location.as_deref(), Some("/profile"));
                assert_eq!(status, 200);
            }
        }
    })
}
