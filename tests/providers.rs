//! Several providers in one app: two test providers ("acme", knowing Alice, and "globex",
//! knowing Carol and signing with its own key), each signing in its own user; responses mixed
//! up between them refused; back-channel logout from each ending only its sessions; one down or
//! slow while the other signs in.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    jwk, query_param, run, sign_jwt, start_app_with_providers, Behaviour, Identity, Key, Page,
    Signer, Stores, TestApp, TestProvider,
};

/// Globex signs with its own key: a token signed by one provider's key is no good for another.
fn globex_keys() -> Behaviour {
    Behaviour {
        jwks: Some(json!({ "keys": [jwk(Key::Rsa2, Some("globex-key"))] })),
        signer: Signer::rs256(Key::Rsa2, Some("globex-key")),
        ..Behaviour::default()
    }
}

async fn two_providers() -> (TestApp, TestProvider, TestProvider) {
    let acme = TestProvider::start().await;
    let globex = TestProvider::start_with(Identity::CAROL).await;
    globex.set_behaviour(globex_keys());
    let app = start_app_with_providers(
        &[("acme", &acme), ("globex", &globex)],
        &Stores::sqlite(),
        &[],
    )
    .await;
    (app, acme, globex)
}

/// The page's buttons (links styled as buttons, the header's "Sign in" first), in order:
/// (label, href).
fn buttons(page: &Page) -> Vec<(String, String)> {
    page.body
        .split("<a href=\"")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            tag.contains("class=\"button\"").then(|| {
                let href = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
                let text = rest[tag.len() + 1..rest.find("</a>").unwrap()].replace("<!>", "");
                (text, href)
            })
        })
        .collect()
}

async fn assert_refused(app: &TestApp, page: &Page, code: &str, provider: &str) {
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(
        page.location.as_deref(),
        Some(format!("/signin?error={code}&provider={provider}").as_str())
    );
    assert!(!app.signed_in().await, "a session was started");
    assert_eq!(app.user_count().await, 0, "a user record was written");
}

#[test]
fn each_provider_signs_in_its_own_user_and_the_profile_says_which() {
    run(async {
        let (app, acme, globex) = two_providers().await;

        // Without a provider, /login offers the choice, keeping return_to.
        let login = app.get("/login?return_to=/profile").await;
        assert_eq!(login.status, 302);
        assert_eq!(
            login.location.as_deref(),
            Some("/signin?return_to=/profile")
        );
        let choice = app.get("/signin?return_to=/profile").await;
        assert_eq!(choice.status, 200);
        assert_eq!(
            buttons(&choice)[1..],
            [
                (
                    "Sign in with Acme".into(),
                    "/login?provider=acme&return_to=/profile".into()
                ),
                (
                    "Sign in with Globex".into(),
                    "/login?provider=globex&return_to=/profile".into()
                ),
            ]
        );

        // Globex: Carol, and the profile names Globex.
        let authorize = app.start_sign_in("/login?provider=globex").await;
        assert!(authorize.starts_with(&format!("{}/authorize?", globex.issuer)));
        assert_eq!(query_param(&authorize, "client_id"), "globex-client");
        let done = app.callback_for(&globex, &authorize).await;
        assert_eq!(done.location.as_deref(), Some("/profile"));
        let profile = app.get("/profile").await.body.replace("<!>", "");
        assert!(profile.contains("Carol Globex"), "{profile}");
        assert!(profile.contains("<dd>Globex</dd>"), "{profile}");
        assert!(profile.contains(&globex.issuer));

        // Signing out ends the session at Globex, the provider that signed it in.
        let csrf = app.csrf_token().await;
        let out = app
            .post_form("/logout", &[("csrf", &csrf)], Some(&app.url))
            .await;
        let end = out.location.unwrap();
        assert!(
            end.starts_with(&format!("{}/session/end?", globex.issuer)),
            "{end}"
        );
        assert_eq!(query_param(&end, "client_id"), "globex-client");
        assert!(!app.signed_in().await);

        // The last used comes first now, and says so.
        let choice = app.get("/signin").await;
        let listed = buttons(&choice);
        assert_eq!(listed[1].0, "Sign in with Globex", "{listed:?}");
        assert_eq!(listed[2].0, "Sign in with Acme");
        assert!(choice.body.contains("Last used"));
        // Another browser has no last used: the configured order.
        let fresh = app.in_another_browser().get("/signin").await;
        assert_eq!(buttons(&fresh)[1].0, "Sign in with Acme");
        assert!(!fresh.body.contains("Last used"));

        // Acme: Alice, another user.
        assert_eq!(
            app.sign_in_with("acme", &acme).await.location.as_deref(),
            Some("/profile")
        );
        let profile = app.get("/profile").await.body.replace("<!>", "");
        assert!(profile.contains("Alice Liddell") && profile.contains("<dd>Acme</dd>"));
        assert_eq!(app.user_count().await, 2);
    })
}

#[test]
fn an_unknown_provider_gets_a_404_page_listing_the_real_ones() {
    run(async {
        let (app, _acme, _globex) = two_providers().await;
        let login = app.get("/login?provider=okta").await;
        assert_eq!(
            login.location.as_deref(),
            Some("/signin?error=unknown_provider")
        );
        let page = app.get("/signin?error=unknown_provider").await;
        assert_eq!(page.status, 404);
        assert!(page.body.contains("does not sign in with that provider"));
        let labels: Vec<String> = buttons(&page).into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels[1..], ["Sign in with Acme", "Sign in with Globex"]);
    })
}

#[test]
fn a_code_and_state_mixed_up_between_providers_are_refused() {
    run(async {
        let (app, acme, globex) = two_providers().await;
        // Two sign-ins under way in one browser, one at each provider.
        let at_acme = app.start_sign_in("/login?provider=acme").await;
        let at_globex = app.start_sign_in("/login?provider=globex").await;
        let globex_code = globex.authorize(&at_globex);

        // Globex's code with Acme's state: Acme alone is asked, and refuses a code it never
        // issued.
        let page = app
            .get(&format!(
                "/authorization-code/callback?code={globex_code}&state={}",
                query_param(&at_acme, "state")
            ))
            .await;
        assert_refused(&app, &page, "code_refused", "acme").await;
        assert_eq!(globex.token_requests(), 0, "Globex's code was exchanged");
        assert_eq!(acme.token_requests(), 1);

        // Globex's response (it names its issuer, RFC 9207) with Acme's state: refused before
        // any exchange.
        let at_acme = app.start_sign_in("/login?provider=acme").await;
        let acme_code = acme.authorize(&at_acme);
        let page = app
            .get(&format!(
                "/authorization-code/callback?code={acme_code}&state={}&iss={}",
                query_param(&at_acme, "state"),
                urlencode(&globex.issuer)
            ))
            .await;
        assert_refused(&app, &page, "token_refused", "acme").await;
        assert_eq!(acme.token_requests(), 1, "a mixed-up code was exchanged");
    })
}

#[test]
fn a_provider_that_promises_iss_must_send_it() {
    run(async {
        let acme = TestProvider::start().await;
        let globex = TestProvider::start_with(Identity::CAROL).await;
        globex.set_behaviour(Behaviour {
            discovery: [(
                "authorization_response_iss_parameter_supported".to_owned(),
                json!(true),
            )]
            .into_iter()
            .collect(),
            ..globex_keys()
        });
        let app = start_app_with_providers(
            &[("acme", &acme), ("globex", &globex)],
            &Stores::sqlite(),
            &[],
        )
        .await;
        // Without iss: refused, nothing exchanged.
        let page = app.sign_in_with("globex", &globex).await;
        assert_refused(&app, &page, "token_refused", "globex").await;
        assert_eq!(globex.token_requests(), 0);
        // With its own iss: signed in.
        let authorize = app.start_sign_in("/login?provider=globex").await;
        let code = globex.authorize(&authorize);
        let page = app
            .get(&format!(
                "/authorization-code/callback?code={code}&state={}&iss={}",
                query_param(&authorize, "state"),
                urlencode(&globex.issuer)
            ))
            .await;
        assert_eq!(page.location.as_deref(), Some("/profile"));
        assert!(app.signed_in().await);
    })
}

#[test]
fn back_channel_logout_from_each_provider_ends_only_its_sessions() {
    run(async {
        let (app, acme, globex) = two_providers().await;
        // Both providers call their session `provider-session-1`: sessions are told apart by
        // issuer too.
        let x = app.in_another_browser();
        let y = app.in_another_browser();
        x.sign_in_with("acme", &acme).await;
        y.sign_in_with("globex", &globex).await;
        assert!(x.signed_in().await && y.signed_in().await);

        // A token claiming to be Acme's but signed with Globex's key: refused.
        let mut forged = globex.logout_claims();
        forged["iss"] = acme.issuer.clone().into();
        forged["aud"] = support::CLIENT_ID.into();
        let answer = app
            .post_logout_token(&sign_jwt(&globex_keys().signer, &forged))
            .await;
        assert_eq!(answer.status(), 400);
        assert!(x.signed_in().await, "a forged token ended Acme's session");

        // A token from an issuer nobody configured: refused.
        let mut stranger = globex.logout_claims();
        stranger["iss"] = "https://stranger.example".into();
        let answer = app
            .post_logout_token(&sign_jwt(&globex_keys().signer, &stranger))
            .await;
        assert_eq!(answer.status(), 400);

        // Globex's own: its session ends, Acme's lives on.
        let token = sign_jwt(&globex_keys().signer, &globex.logout_claims());
        assert_eq!(app.post_logout_token(&token).await.status(), 200);
        assert!(!y.signed_in().await, "Globex's session lives on");
        assert!(x.signed_in().await, "Acme's session ended too");

        // Acme's own: its session ends.
        let token = sign_jwt(&Signer::default(), &acme.logout_claims());
        assert_eq!(app.post_logout_token(&token).await.status(), 200);
        assert!(!x.signed_in().await);
    })
}

#[test]
fn a_provider_down_or_slow_leaves_the_other_working() {
    run(async {
        let globex = TestProvider::start_with(Identity::CAROL).await;
        globex.set_behaviour(globex_keys());
        let slow = TestProvider::start().await;
        slow.set_behaviour(Behaviour {
            token_delay: Some(Duration::from_secs(60)),
            ..Behaviour::default()
        });
        let down = TestProvider::down().await;
        let app = start_app_with_providers(
            &[("down", &down), ("slow", &slow), ("globex", &globex)],
            &Stores::sqlite(),
            &[],
        )
        .await;

        // The down one still has its button; a click gives the 503 page.
        let labels: Vec<String> = buttons(&app.get("/signin").await)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            labels[1..],
            [
                "Sign in with Down",
                "Sign in with Slow",
                "Sign in with Globex"
            ]
        );
        let login = app.get("/login?provider=down").await;
        let to = login.location.unwrap();
        assert_eq!(to, "/signin?error=provider_unavailable&provider=down");
        let page = app.get(&to).await;
        assert_eq!(page.status, 503);
        assert_eq!(
            buttons(&page)[1],
            ("Try again with Down".into(), "/login?provider=down".into())
        );

        // While a sign-in waits on the slow one, another signs in with Globex at once.
        let waiting = app.in_another_browser();
        let started = Instant::now();
        let (slow_page, globex_page) = tokio::join!(waiting.sign_in_with("slow", &slow), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let page = app.sign_in_with("globex", &globex).await;
            (page, started.elapsed())
        });
        let (globex_page, globex_took) = globex_page;
        assert_eq!(globex_page.location.as_deref(), Some("/profile"));
        assert!(
            globex_took < Duration::from_secs(2),
            "Globex waited {globex_took:?}"
        );
        assert_eq!(
            slow_page.location.as_deref(),
            Some("/signin?error=provider_timeout&provider=slow")
        );
        assert!(app.signed_in().await);
        assert!(!waiting.signed_in().await);
    })
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
