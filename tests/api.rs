//! Calling an API with the signed-in user's access token (the app's `/api-demo`, which asks the
//! provider's userinfo endpoint), and server functions for signed-in users only.

mod support;

use support::{run, start_app_with, Behaviour, Stores, TestApp, TestProvider};

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
