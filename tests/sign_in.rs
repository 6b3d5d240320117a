//! The sign-in flow over HTTP, as a browser meets it: the app in-process, the test provider on
//! loopback. Each refusal is checked for its status, its page, and that nobody is signed in and
//! no user was written.

mod support;

use support::{query_param, run, start_app, Behaviour, TestApp, TestProvider};

async fn app_and_provider() -> (TestApp, TestProvider) {
    let provider = TestProvider::start().await;
    let app = start_app(&provider.issuer).await;
    (app, provider)
}

/// Follows the redirect to the failure page and checks what the user sees.
async fn assert_failure_page(
    app: &TestApp,
    redirect: &support::Page,
    code: &str,
    status: u16,
    text: &str,
) {
    assert_eq!(redirect.status, 302, "{}", redirect.body);
    let location = redirect.location.as_deref().unwrap();
    assert_eq!(location, format!("/signin?error={code}"));
    let page = app.get(location).await;
    assert_eq!(page.status, status);
    assert!(
        page.body.contains(text),
        "page lacks {text:?}: {}",
        page.body
    );
    assert!(page.body.contains("Try again"), "no way on: {}", page.body);
    assert!(page.body.contains("href=\"/login\""));
}

async fn assert_nobody_signed_in(app: &TestApp) {
    assert!(!app.signed_in().await, "a session was started");
    assert_eq!(app.user_count().await, 0, "a user record was written");
}

#[test]
fn login_redirects_to_the_provider_with_state_nonce_and_pkce() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let url = app.start_sign_in("/login").await;
        assert!(
            url.starts_with(&format!("{}/authorize?", provider.issuer)),
            "{url}"
        );
        assert_eq!(query_param(&url, "response_type"), "code");
        assert_eq!(query_param(&url, "client_id"), support::CLIENT_ID);
        assert_eq!(
            query_param(&url, "redirect_uri"),
            format!("{}/authorization-code/callback", app.url)
        );
        assert_eq!(query_param(&url, "scope"), "openid email profile");
        assert_eq!(query_param(&url, "code_challenge_method"), "S256");
        for name in ["state", "nonce", "code_challenge"] {
            assert!(
                query_param(&url, name).len() >= 22,
                "{name} too short: {url}"
            );
        }
        // Fresh every time.
        let again = app.start_sign_in("/login").await;
        assert_ne!(query_param(&url, "state"), query_param(&again, "state"));
        assert_ne!(query_param(&url, "nonce"), query_param(&again, "nonce"));
    })
}

#[test]
fn sign_in_redirects_for_any_client_not_only_browsers() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = plain
            .get(format!("{}/login", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 302);
        let location = login.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(&provider.issuer), "{location}");
        let callback = plain
            .get(format!(
                "{}/authorization-code/callback?error=access_denied",
                app.url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(callback.status(), 302);
        assert_eq!(
            callback.headers()["location"],
            "/signin?error=access_denied"
        );
    })
}

/// A sign-in that ends in a browser holding a session id it did not get from this sign-in (one
/// an attacker planted there, say) gets a new session id: whoever knew the old one is not
/// signed in as this user.
#[test]
fn a_sign_in_never_keeps_the_session_id_the_browser_came_with() {
    run(async {
        let (app, provider) = app_and_provider().await;
        // The attacker's own session.
        let attacker = app.in_another_browser();
        let planted = attacker.sign_in(&provider).await.session_id();

        // The victim starts signing in; meanwhile the attacker's cookie is planted.
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let victim = app.seen_by(
            reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        );
        let authorize = victim.start_sign_in("/login").await;
        jar.add_cookie_str(
            &format!("leptos_oidc_session={planted}; Path=/"),
            &app.url.parse().unwrap(),
        );
        let done = victim.callback_for(&provider, &authorize).await;
        assert_eq!(done.location.as_deref(), Some("/profile"));
        assert_ne!(
            done.session_id(),
            planted,
            "the planted session id was kept"
        );
        assert!(
            !attacker.signed_in().await,
            "the planted session id still works"
        );
    })
}

#[test]
fn a_full_sign_in_shows_the_profile_and_sign_out_ends_it_at_the_provider_too() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let before_cookie = app.get("/login").await.set_cookie.join(";");

        let done = app.sign_in(&provider).await;
        assert_eq!(done.status, 302, "{}", done.body);
        assert_eq!(done.location.as_deref(), Some("/profile"));
        // A new session id at sign-in (session fixation).
        let session_cookie = done.set_cookie.join(";");
        assert!(
            session_cookie.contains("leptos_oidc_session="),
            "{session_cookie}"
        );
        assert_ne!(before_cookie, session_cookie);
        assert!(session_cookie.contains("HttpOnly"));
        assert!(session_cookie.contains("SameSite=Lax"));
        assert!(
            !session_cookie.contains("Secure"),
            "http must work on localhost"
        );

        let profile = app.get("/profile").await;
        assert_eq!(profile.status, 200);
        assert!(profile.body.contains("Alice Liddell"));
        assert!(profile.body.contains("alice@example.com"));
        assert!(profile.body.contains(support::SUBJECT));
        assert!(
            !profile.body.contains("at-"),
            "the access token reached the page"
        );
        assert!(!profile.body.contains("eyJ"), "a token reached the page");
        assert_eq!(app.user_count().await, 1);

        // Pages arrive whole, for browsers without JavaScript too: no placeholder to swap later.
        let home = app.get("/").await.body.replace("<!>", ""); // hydration markers
        assert!(home.contains("Welcome back, Alice Liddell."), "{home}");
        assert!(!home.contains("Loading"), "{home}");

        // Signing in again updates the same user.
        app.get("/login").await; // already signed in: straight back
        let csrf = app.csrf_token().await;
        let out = app
            .post_form("/logout", &[("csrf", &csrf)], Some(&app.url))
            .await;
        assert_eq!(out.status, 302);
        let end = out.location.unwrap();
        assert!(
            end.starts_with(&format!("{}/session/end?", provider.issuer)),
            "{end}"
        );
        assert_eq!(
            query_param(&end, "post_logout_redirect_uri"),
            format!("{}/", app.url)
        );
        assert_eq!(query_param(&end, "client_id"), support::CLIENT_ID);
        assert!(query_param(&end, "id_token_hint").starts_with("eyJ"));
        assert!(!app.signed_in().await);

        app.sign_in(&provider).await;
        assert!(app.signed_in().await);
        assert_eq!(app.user_count().await, 1);
    })
}

#[test]
fn a_callback_without_a_code_is_refused() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        let authorize = app.start_sign_in("/login").await;
        let state = query_param(&authorize, "state");
        let page = app
            .get(&format!("/authorization-code/callback?state={state}"))
            .await;
        assert_failure_page(&app, &page, "missing_code", 400, "without a sign-in code").await;
        assert_nobody_signed_in(&app).await;
    })
}

#[test]
fn a_callback_with_a_state_we_did_not_issue_is_refused() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let authorize = app.start_sign_in("/login").await;
        let code = provider.authorize(&authorize);
        let page = app
            .get(&format!(
                "/authorization-code/callback?code={code}&state=forged-state"
            ))
            .await;
        assert_failure_page(&app, &page, "bad_state", 400, "This sign-in has expired").await;
        assert_eq!(
            provider.token_requests(),
            0,
            "the code was exchanged anyway"
        );
        assert_nobody_signed_in(&app).await;
    })
}

#[test]
fn a_callback_in_a_browser_that_started_no_sign_in_is_refused() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let authorize = app.start_sign_in("/login").await;
        let code = provider.authorize(&authorize);
        let state = query_param(&authorize, "state");
        let other_browser = app.in_another_browser();
        let page = other_browser
            .get(&format!(
                "/authorization-code/callback?code={code}&state={state}"
            ))
            .await;
        assert_failure_page(
            &other_browser,
            &page,
            "bad_state",
            400,
            "in another browser",
        )
        .await;
        assert_nobody_signed_in(&other_browser).await;
    })
}

#[test]
fn cancelling_at_the_provider_shows_access_denied() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        let authorize = app.start_sign_in("/login").await;
        let state = query_param(&authorize, "state");
        let page = app
        .get(&format!(
            "/authorization-code/callback?error=access_denied&error_description=End-User+aborted&state={state}"
        ))
        .await;
        assert_failure_page(
            &app,
            &page,
            "access_denied",
            403,
            "You cancelled the sign-in",
        )
        .await;
        assert_nobody_signed_in(&app).await;
        // The state is used up: the same answer cannot be replayed with a code.
        let replay = app
            .get(&format!(
                "/authorization-code/callback?code=x&state={state}"
            ))
            .await;
        assert_eq!(replay.location.as_deref(), Some("/signin?error=bad_state"));
    })
}

#[test]
fn other_provider_errors_are_reported_without_echoing_the_provider() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        let page = app
        .get("/authorization-code/callback?error=invalid_scope&error_description=%3Cscript%3Ealert(1)%3C/script%3E")
        .await;
        assert_failure_page(&app, &page, "provider_error", 400, "could not sign you in").await;
        let shown = app.get("/signin?error=provider_error").await;
        assert!(!shown.body.contains("<script>alert"));
        assert_nobody_signed_in(&app).await;
    })
}

#[test]
fn a_code_the_provider_refuses_is_reported() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let authorize = app.start_sign_in("/login").await;
        let state = query_param(&authorize, "state");
        // A code the provider never issued.
        let page = app
            .get(&format!(
                "/authorization-code/callback?code=made-up&state={state}"
            ))
            .await;
        assert_failure_page(
            &app,
            &page,
            "code_refused",
            400,
            "did not accept the sign-in code",
        )
        .await;
        assert_eq!(provider.token_requests(), 1);
        assert_nobody_signed_in(&app).await;
    })
}

#[test]
fn a_provider_that_is_down_gives_503_and_public_pages_still_work() {
    run(async {
        // Nothing listens on port 1 (a port freed by a test could be handed to the app itself).
        let app = start_app("http://127.0.0.1:1").await;

        let home = app.get("/").await;
        assert_eq!(home.status, 200);
        assert!(home.body.contains("Sign in with OpenID Connect"));

        let login = app.get("/login").await;
        assert_eq!(
            login.location.as_deref(),
            Some("/signin?error=provider_unavailable")
        );
        let page = app.get("/signin?error=provider_unavailable").await;
        assert_eq!(page.status, 503);
        assert!(page.body.contains("could not be reached"));
        assert_nobody_signed_in(&app).await;
    })
}

#[test]
fn replaying_a_callback_after_success_lands_on_the_profile() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let authorize = app.start_sign_in("/login").await;
        let code = provider.authorize(&authorize);
        let state = query_param(&authorize, "state");
        let callback = format!("/authorization-code/callback?code={code}&state={state}");
        assert_eq!(
            app.get(&callback).await.location.as_deref(),
            Some("/profile")
        );
        let replay = app.get(&callback).await;
        assert_eq!(replay.location.as_deref(), Some("/profile"));
        assert_eq!(
            provider.token_requests(),
            1,
            "a used state led to another exchange"
        );
    })
}

#[test]
fn two_tabs_signing_in_at_once_both_succeed() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let first = app.start_sign_in("/login?return_to=/logout").await;
        let second = app.start_sign_in("/login").await;
        // The second tab finishes first...
        assert_eq!(
            app.callback_for(&provider, &second)
                .await
                .location
                .as_deref(),
            Some("/profile")
        );
        // ...and the first one still completes, to its own return_to.
        assert_eq!(
            app.callback_for(&provider, &first)
                .await
                .location
                .as_deref(),
            Some("/logout")
        );
        assert!(app.signed_in().await);
    })
}

#[test]
fn pending_sign_ins_are_bounded_per_browser_oldest_first() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let mut started = Vec::new();
        for _ in 0..=leptos_oidc::session::MAX_PENDING {
            started.push(app.start_sign_in("/login").await);
        }
        // The oldest gave way to the newest...
        let oldest = app.callback_for(&provider, &started[0]).await;
        assert_eq!(oldest.location.as_deref(), Some("/signin?error=bad_state"));
        // ...and the others are still good.
        let newest = app.callback_for(&provider, started.last().unwrap()).await;
        assert_eq!(newest.location.as_deref(), Some("/profile"));
        assert!(app.signed_in().await);
    })
}

#[test]
fn the_profile_page_sends_visitors_to_sign_in_and_back() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let page = app.get("/profile").await;
        assert_eq!(page.status, 302);
        assert_eq!(page.location.as_deref(), Some("/login?return_to=/profile"));
        let authorize = app.start_sign_in("/login?return_to=/profile").await;
        assert_eq!(
            app.callback_for(&provider, &authorize)
                .await
                .location
                .as_deref(),
            Some("/profile")
        );
    })
}

#[test]
fn return_to_never_leaves_the_site() {
    run(async {
        let (app, provider) = app_and_provider().await;
        for bad in [
            "//evil.example",
            "/%5Cevil.example",
            "https://evil.example",
            "javascript:alert(1)",
        ] {
            let authorize = app
                .start_sign_in(&format!("/login?return_to={}", urlencode(bad)))
                .await;
            let done = app.callback_for(&provider, &authorize).await;
            assert_eq!(done.location.as_deref(), Some("/profile"), "{bad}");
            let csrf = app.csrf_token().await;
            app.post_form("/logout", &[("csrf", &csrf)], None).await;
        }
    })
}

#[test]
fn sign_out_needs_a_post_with_the_sessions_token_from_this_site() {
    run(async {
        let (app, provider) = app_and_provider().await;
        app.sign_in(&provider).await;

        // A GET shows a confirmation and signs nobody out.
        let confirm = app.get("/logout").await;
        assert_eq!(confirm.status, 200);
        assert!(confirm.body.contains("Sign out?"));
        assert!(app.signed_in().await);

        // A wrong token, or a right one from another site, is refused with a 403 page.
        let forged = app.post_form("/logout", &[("csrf", "guess")], None).await;
        assert_eq!(forged.location.as_deref(), Some("/logout?error=csrf"));
        let refused = app.get("/logout?error=csrf").await;
        assert_eq!(refused.status, 403);
        assert!(refused.body.contains("still signed in"));
        assert!(app.signed_in().await);

        let csrf = app.csrf_token().await;
        let cross_site = app
            .post_form("/logout", &[("csrf", &csrf)], Some("http://evil.example"))
            .await;
        assert_eq!(cross_site.location.as_deref(), Some("/logout?error=csrf"));
        assert!(app.signed_in().await);

        let out = app
            .post_form("/logout", &[("csrf", &csrf)], Some(&app.url))
            .await;
        assert_eq!(out.status, 302);
        assert!(!app.signed_in().await);
    })
}

#[test]
fn unknown_pages_are_404_and_unknown_failures_400() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        let missing = app.get("/no/such/page").await;
        assert_eq!(missing.status, 404);
        assert!(missing.body.contains("Page not found"));
        let odd = app.get("/signin?error=%3Cb%3Ebogus").await;
        assert_eq!(odd.status, 400);
        assert!(!odd.body.contains("<b>bogus"));
    })
}

/// What programs that do not ask for HTML send as `Accept`: nothing, anything, JSON.
const PROGRAMS_ACCEPT: [Option<&str>; 3] = [None, Some("*/*"), Some("application/json")];

/// `GET url` as such a program does: no cookies, redirects not followed.
async fn as_program(url: &str, accept: Option<&str>) -> reqwest::Response {
    let program = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = program.get(url);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

/// A protected page sends a browser without a session to sign in (and back, with the page's
/// query), and answers anyone else with a 401 they can act on: never a 200 with a `Location`.
#[test]
fn a_protected_page_redirects_browsers_and_answers_programs_401() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        let page = app.get("/profile?tab=claims").await;
        assert_eq!(page.status, 302);
        assert_eq!(
            page.location.as_deref(),
            Some("/login?return_to=/profile%3Ftab%3Dclaims")
        );
        for accept in PROGRAMS_ACCEPT {
            let response = as_program(&format!("{}/profile", app.url), accept).await;
            assert_eq!(response.status(), 401, "{accept:?}");
            assert!(!response.headers().contains_key("location"));
            let body: serde_json::Value =
                serde_json::from_str(&response.text().await.unwrap()).unwrap();
            assert_eq!(body["error"], "sign_in_required", "{body}");
        }
    })
}

/// A program (fetch, curl) that lands on a failure page gets its JSON form, with the same status.
#[test]
fn callers_that_do_not_ask_for_html_get_failures_as_json() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        for (path, status, code) in [
            ("/no/such/page", 404, "not_found"),
            ("/signin?error=code_refused", 400, "code_refused"),
            ("/signin?error=%3Cb%3Ebogus", 400, "bad_request"),
            ("/logout?error=csrf", 403, "csrf"),
        ] {
            for accept in PROGRAMS_ACCEPT {
                let response = as_program(&format!("{}{path}", app.url), accept).await;
                assert_eq!(response.status().as_u16(), status, "{path}");
                assert_eq!(response.headers()["content-type"], "application/json");
                assert!(!response.headers().contains_key("x-failure-code"));
                let body: serde_json::Value =
                    serde_json::from_str(&response.text().await.unwrap()).unwrap();
                assert_eq!(body["error"], code, "{path}: {body}");
                assert!(!body["error_description"].as_str().unwrap().is_empty());
            }
            // A browser gets the page, without the header that named the failure.
            let response = app
                .client
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
            assert!(!response.headers().contains_key("x-failure-code"));
            assert!(response
                .text()
                .await
                .unwrap()
                .starts_with("<!DOCTYPE html>"));
        }
    })
}

#[test]
fn a_token_response_that_is_not_bearer_is_refused() {
    run(async {
        let (app, provider) = app_and_provider().await;
        provider.set_behaviour(Behaviour {
            token_fields: [("token_type".to_owned(), "mac".into())]
                .into_iter()
                .collect(),
            ..Behaviour::default()
        });
        let page = app.sign_in(&provider).await;
        assert_failure_page(&app, &page, "token_refused", 400, "security checks").await;
        assert_nobody_signed_in(&app).await;
    })
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Starting sign-ins leaves nothing on the server, however many anonymous visitors start one,
/// and a browser holds at most `MAX_PENDING` of them.
#[test]
fn anonymous_sign_ins_leave_no_state_behind() {
    use std::sync::Arc;
    run(async {
        let (app, _provider) = app_and_provider().await;
        for _ in 0..300 {
            let page = app.in_another_browser().get("/login").await;
            assert_eq!(page.status, 302);
            assert!(
                !page
                    .set_cookie
                    .iter()
                    .any(|c| c.starts_with("leptos_oidc_session=")),
                "a session was started for an anonymous visitor"
            );
        }
        let database = leptos_oidc::db::open(&app.database_url).await.unwrap();
        let leptos_oidc::db::Db::Sqlite(sqlite) = database else {
            unreachable!("the test app runs on SQLite")
        };
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&mut *sqlite.connection().await)
            .await
            .unwrap();
        assert_eq!(stored, 0, "anonymous sign-ins left sessions in the store");

        // One browser starting sign-in after sign-in keeps the newest few only.
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let browser = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let one = app.seen_by(browser);
        for _ in 0..50 {
            assert_eq!(one.get("/login").await.status, 302);
        }
        let url = app.url.parse().unwrap();
        let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &url).unwrap();
        let held = cookies
            .to_str()
            .unwrap()
            .matches("leptos_oidc_signin_")
            .count();
        assert_eq!(held, leptos_oidc::session::MAX_PENDING);
        assert!(cookies.len() < 4096, "{} bytes of cookies", cookies.len());
    })
}

/// Public pages are rendered once for anonymous visitors; a signed-in visitor never gets that
/// copy, and an anonymous one never gets a signed-in page.
#[test]
fn anonymous_pages_are_shared_and_signed_in_pages_are_not() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let first = app.in_another_browser().get("/").await;
        assert_eq!(first.status, 200);
        assert!(first.body.contains("Sign in"));
        // The same page, but for its nonce: each answer has its own.
        let same_page = |page: &support::Page| page.body.replace(&page_nonce(page), "");
        assert_eq!(
            same_page(&app.in_another_browser().get("/").await),
            same_page(&first)
        );

        app.sign_in(&provider).await;
        let signed_in = app.get("/").await.body.replace("<!>", ""); // hydration markers
        assert!(
            signed_in.contains("Welcome back, Alice Liddell"),
            "{signed_in}"
        );
        let anonymous = app.in_another_browser().get("/").await;
        assert_eq!(same_page(&anonymous), same_page(&first));
        assert!(!anonymous.body.contains("Alice"));
        // The copy keeps the page's headers, the security ones included.
        let response = reqwest::get(format!("{}/", app.url)).await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        // Served over plain http here: no HSTS (see the https test).
        assert!(response
            .headers()
            .get("strict-transport-security")
            .is_none());
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    })
}

/// Repeated, nested or missing parameters on any endpoint get a 4xx page that says so (or a
/// JSON 400 for callers that are not browsers), never a 500 and never a silent redirect.
#[test]
fn malformed_or_repeated_parameters_get_a_4xx_never_a_500() {
    run(async {
        let (app, provider) = app_and_provider().await;
        app.sign_in(&provider).await;
        for path in [
            "/login?return_to=/a&return_to=/b",
            "/login?provider=a&provider=b",
            "/login?return_to[x]=1",
            "/authorization-code/callback?code=1&code=2&state=x",
            "/authorization-code/callback?error=a&error=b",
            "/authorization-code/callback?state=x&state=y&code=1",
        ] {
            let page = app.get(path).await;
            assert_eq!(page.status, 303, "{path}");
            assert_eq!(
                page.location.as_deref(),
                Some("/signin?error=bad_request"),
                "{path}"
            );
            let shown = app.get("/signin?error=bad_request").await;
            assert_eq!(shown.status, 400);
            assert!(shown.body.contains("repeated or unreadable parts"));

            let api = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
            assert_eq!(api.status(), 400, "{path}");
            let body: serde_json::Value = serde_json::from_str(&api.text().await.unwrap()).unwrap();
            assert_eq!(body["error"], "invalid_request", "{path}");
        }
        // Pages with odd queries still answer with a page.
        for path in [
            "/signin?error=a&error=b",
            "/logout?error=csrf&error=x",
            "/signin?return_to=%ZZ",
        ] {
            let page = app.get(path).await;
            assert!((200..500).contains(&page.status), "{path}: {}", page.status);
        }
        // A sign-out post without its token, or with two: nothing is done, and the page says so.
        for form in [&[("everywhere", "1")][..], &[("csrf", "a"), ("csrf", "b")]] {
            let page = app.post_form("/logout", form, Some(&app.url)).await;
            assert_eq!(
                page.location.as_deref(),
                Some("/logout?error=malformed"),
                "{form:?}"
            );
            let shown = app.get("/logout?error=malformed").await;
            assert_eq!(shown.status, 400);
            assert!(shown.body.contains("nothing was done"));
            assert!(app.signed_in().await);
        }
        let back = reqwest::Client::new()
            .post(format!("{}/backchannel-logout", app.url))
            .form(&[("logout_token", "a"), ("logout_token", "b")])
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 400);
        assert!(app.signed_in().await);
    })
}

#[test]
fn a_provider_that_needs_the_user_or_was_refused_consent_says_so() {
    run(async {
        let (app, _provider) = app_and_provider().await;
        for (error, code, status, text) in [
            (
                "consent_required",
                "access_denied",
                403,
                "You cancelled the sign-in",
            ),
            ("login_required", "login_required", 401, "on its own pages"),
            (
                "interaction_required",
                "login_required",
                401,
                "on its own pages",
            ),
        ] {
            let authorize = app.start_sign_in("/login").await;
            let state = query_param(&authorize, "state");
            let page = app
                .get(&format!(
                    "/authorization-code/callback?error={error}&state={state}"
                ))
                .await;
            assert_failure_page(&app, &page, code, status, text).await;
        }
        assert_nobody_signed_in(&app).await;
    })
}

#[test]
fn the_sign_in_page_tells_a_signed_in_visitor_so() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let anonymous = app.get("/signin").await.body;
        assert!(anonymous.contains("href=\"/login\""), "{anonymous}");
        app.sign_in(&provider).await;
        let page = app.get("/signin").await;
        assert_eq!(page.status, 200);
        let body = page.body.replace("<!>", "");
        assert!(
            body.contains("You are signed in as Alice Liddell."),
            "{body}"
        );
        assert!(body.contains("href=\"/profile\""));
        assert!(!body.contains("class=\"providers\""), "{body}");
    })
}

/// A provider's required claim value (`OIDC_REQUIRE_CLAIM`): an account without it is refused
/// with a 403 page naming the rule, signed in nowhere here, and offered a sign-out at the
/// provider (with the refused ID token as its hint) to come back with another account.
#[test]
fn an_account_without_a_required_claim_value_is_refused_and_offered_a_sign_out_there() {
    run(async {
        let provider = TestProvider::start().await;
        let groups = |groups: serde_json::Value| Behaviour {
            userinfo_claims: serde_json::json!({ "groups": groups })
                .as_object()
                .unwrap()
                .clone(),
            ..Behaviour::default()
        };
        provider.set_behaviour(groups(serde_json::json!(["staff"])));
        let app = support::start_app_with(
            &provider.issuer,
            &support::Stores::sqlite(),
            &[("OIDC_REQUIRE_CLAIM", "groups:admins")],
        )
        .await;
        let refused = app.sign_in(&provider).await;
        assert_eq!(refused.status, 302, "{}", refused.body);
        let location = refused.location.unwrap();
        assert_eq!(location, "/signin?error=not_allowed&rule=groups%3Aadmins");
        let page = app.get(&location).await;
        assert_eq!(page.status, 403);
        for text in [
            "This account may not use this app",
            "<code>groups:admins</code>",
            "Sign out at your provider",
        ] {
            assert!(
                page.body.contains(text),
                "page lacks {text:?}: {}",
                page.body
            );
        }
        assert!(!app.signed_in().await, "a session was started");
        assert_eq!(app.user_count().await, 0, "a user record was written");

        // Signing out goes to the provider, with the refused sign-in's ID token; once.
        let forged = app
            .post_form("/logout", &[("csrf", "")], Some("https://evil.example"))
            .await;
        assert_eq!(forged.location.as_deref(), Some("/"), "a cross-site post");
        let out = app
            .post_form("/logout", &[("csrf", "")], Some(&app.url))
            .await;
        let end = out.location.unwrap();
        assert!(
            end.starts_with(&format!("{}/session/end?", provider.issuer)),
            "{end}"
        );
        assert!(query_param(&end, "id_token_hint").starts_with("eyJ"));
        let again = app
            .post_form("/logout", &[("csrf", "")], Some(&app.url))
            .await;
        assert_eq!(again.location.as_deref(), Some("/"));

        // An account with the value signs in.
        provider.set_behaviour(groups(serde_json::json!(["staff", "admins"])));
        let page = app.sign_in(&provider).await;
        assert_eq!(page.location.as_deref(), Some("/profile"), "{}", page.body);
        assert_eq!(app.user_count().await, 1);

        // The value may come in the ID token too (a claim openidconnect itself would drop).
        app.sign_out(false).await;
        provider.set_behaviour(Behaviour {
            id_token_claims: serde_json::json!({ "groups": ["admins"] })
                .as_object()
                .unwrap()
                .clone(),
            ..Behaviour::default()
        });
        let page = app.sign_in(&provider).await;
        assert_eq!(page.location.as_deref(), Some("/profile"), "{}", page.body);
        let profile = app.get("/profile").await.body;
        assert!(profile.contains("<code>groups</code>"), "{profile}");
    })
}

/// "Sign out everywhere" is for the user alone: one whose sign-in at the provider is older than
/// `STEP_UP_MAX_AGE_SECONDS` confirms it is them there first (`prompt=login`, `max_age`), and
/// comes back to confirm here. Nothing ends before.
#[test]
fn sign_out_everywhere_has_the_provider_confirm_the_user_first_when_their_sign_in_is_old() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            signed_in_ago: 600,
            ..Behaviour::default()
        });
        let app = start_app(&provider.issuer).await;
        app.sign_in(&provider).await;
        let other = app.in_another_browser();
        other.sign_in(&provider).await;

        let step_up = app.sign_out(true).await;
        assert_eq!(
            step_up.location.as_deref(),
            Some("/login?provider=default&max_age=300&return_to=/logout%3Fconfirm%3Deverywhere")
        );
        assert!(
            app.signed_in().await && other.signed_in().await,
            "ended before the step-up"
        );
        let authorize = app.start_sign_in(&step_up.location.unwrap()).await;
        assert_eq!(query_param(&authorize, "prompt"), "login");
        assert_eq!(query_param(&authorize, "max_age"), "300");
        let back = app.callback_for(&provider, &authorize).await;
        assert_eq!(back.location.as_deref(), Some("/logout?confirm=everywhere"));
        let confirm = app.get("/logout?confirm=everywhere").await;
        assert!(
            confirm.body.contains("Sign out everywhere?"),
            "{}",
            confirm.body
        );
        assert!(confirm.body.contains("You confirmed it is you"));

        let out = app.sign_out(true).await;
        let end = out.location.unwrap();
        assert!(
            end.starts_with(&format!("{}/session/end?", provider.issuer)),
            "{end}"
        );
        assert!(!app.signed_in().await);
        assert!(
            !other.signed_in().await,
            "the other browser's session lives on"
        );
    })
}

/// A provider that ignores the step-up (the old `auth_time` comes back) does not satisfy it:
/// the user is told, stays signed in, and nothing ends.
#[test]
fn a_provider_that_ignores_the_step_up_does_not_satisfy_it() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            signed_in_ago: 600,
            ignores_step_up: true,
            ..Behaviour::default()
        });
        let app = start_app(&provider.issuer).await;
        app.sign_in(&provider).await;
        let other = app.in_another_browser();
        other.sign_in(&provider).await;

        let step_up = app.sign_out(true).await;
        let authorize = app.start_sign_in(&step_up.location.unwrap()).await;
        let back = app.callback_for(&provider, &authorize).await;
        assert_eq!(
            back.location.as_deref(),
            Some("/signin?error=step_up_failed")
        );
        let page = app.get("/signin?error=step_up_failed").await;
        assert_eq!(page.status, 401);
        assert!(
            page.body.contains("did not confirm that it was you"),
            "{}",
            page.body
        );
        assert!(
            app.signed_in().await,
            "the step-up's failure signed the user out"
        );
        assert!(other.signed_in().await);
        // Still not done: the next try asks again.
        let again = app.sign_out(true).await;
        assert!(again.location.unwrap().starts_with("/login?"));
        assert!(other.signed_in().await);
    })
}

/// Signing out revokes the session's tokens at the provider (RFC 7009): the refresh token,
/// then the access token.
#[test]
fn sign_out_revokes_the_sessions_tokens_at_the_provider() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            refresh_tokens: true,
            ..Behaviour::default()
        });
        let app = start_app(&provider.issuer).await;
        app.sign_in(&provider).await;
        app.sign_out(false).await;
        let revoked = provider.revoked_at_least(2).await;
        assert_eq!(revoked.len(), 2, "{revoked:?}");
        assert!(
            revoked[0].starts_with("rt-") && revoked[1].starts_with("at-"),
            "{revoked:?}"
        );
    })
}

/// "Sign out everywhere" revokes the tokens of every session it ends, on each kind of store.
#[test]
fn sign_out_everywhere_revokes_the_tokens_of_every_session() {
    run(async {
        for stores in [
            support::Stores::sqlite(),
            support::Stores::sqlite_and_redis(),
        ] {
            let provider = TestProvider::start().await;
            provider.set_behaviour(Behaviour {
                refresh_tokens: true,
                ..Behaviour::default()
            });
            let app = support::start_app_with(&provider.issuer, &stores, &[]).await;
            app.sign_in(&provider).await;
            let other = app.in_another_browser();
            other.sign_in(&provider).await;
            let out = app.sign_out(true).await;
            assert!(out.location.unwrap().contains("/session/end?"));
            let revoked = provider.revoked_at_least(4).await;
            assert_eq!(revoked.len(), 4, "{revoked:?}");
            assert_eq!(revoked.iter().filter(|t| t.starts_with("rt-")).count(), 2);
        }
    })
}

/// A provider slow to revoke holds up no sign-out.
#[test]
fn a_slow_revocation_does_not_hold_up_the_sign_out() {
    run(async {
        let provider = TestProvider::start().await;
        provider.set_behaviour(Behaviour {
            refresh_tokens: true,
            revocation_delay: Some(std::time::Duration::from_secs(5)),
            ..Behaviour::default()
        });
        let app = start_app(&provider.issuer).await;
        app.sign_in(&provider).await;
        let csrf = app.csrf_token().await;
        let started = std::time::Instant::now();
        let out = app
            .post_form("/logout", &[("csrf", &csrf)], Some(&app.url))
            .await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(out.location.unwrap().contains("/session/end?"));
        assert!(!app.signed_in().await);
    })
}

/// An app whose public origin is https, behind a TLS-terminating proxy (played here over http).
async fn app_served_over_https() -> (TestApp, TestProvider) {
    let provider = TestProvider::start().await;
    let app = support::start_app_with(
        &provider.issuer,
        &support::Stores::sqlite(),
        &[(
            "OIDC_REDIRECT_URI",
            "https://app.example/authorization-code/callback",
        )],
    )
    .await;
    (app, provider)
}

/// An app whose public origin is https (behind a TLS-terminating proxy) tells browsers to keep
/// to https: `Strict-Transport-Security` on every answer, a year, this host only.
#[test]
fn an_app_served_over_https_sends_strict_transport_security() {
    run(async {
        let (app, _provider) = app_served_over_https().await;
        for path in ["/", "/signin", "/nowhere", "/healthz", "/api/me"] {
            let response = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
            assert_eq!(
                response.headers()["strict-transport-security"],
                "max-age=31536000",
                "{path}"
            );
        }
    })
}

/// Over https the app's cookies take the `__Host-` prefix (Secure, `Path=/`, no `Domain`), so
/// that no other host of the domain and no plain-http answer can set or shadow them; a cookie
/// of the plain name is not taken for one. (Played by hand: an http client keeps no Secure
/// cookie.)
#[test]
fn an_app_served_over_https_names_its_cookies_with_the_host_prefix() {
    run(async {
        let (app, provider) = app_served_over_https().await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let get = |path: String, cookie: String| {
            let request = client
                .get(format!("{}{path}", app.url))
                .header("accept", "text/html")
                .header("cookie", cookie);
            async move { request.send().await.unwrap() }
        };
        // The cookie the answer set whose name starts so, checked for the prefix's terms; as the
        // browser sends it back.
        let cookie = |answer: &reqwest::Response, name: &str| -> String {
            let set = answer
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .find(|c| c.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} cookie"));
            assert!(
                set.contains("; Secure") && set.contains("; Path=/"),
                "{set}"
            );
            assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
            set.split(';').next().unwrap().to_owned()
        };

        let login = get("/login".into(), String::new()).await;
        assert_eq!(login.status(), 302);
        let pending = cookie(&login, "__Host-leptos_oidc_signin_");
        let authorize = login.headers()["location"].to_str().unwrap().to_owned();
        let code = provider.authorize(&authorize);
        let state = query_param(&authorize, "state");
        let callback = format!("/authorization-code/callback?code={code}&state={state}");
        let back = get(callback, pending).await;
        assert_eq!(back.headers()["location"], "/profile");
        let session = cookie(&back, "__Host-leptos_oidc_session=");
        cookie(&back, "__Host-leptos_oidc_last_provider=");

        let profile = get("/profile".into(), session.clone()).await;
        assert_eq!(profile.status(), 200);
        assert!(profile.text().await.unwrap().contains("Alice Liddell"));
        let id = session.split_once('=').unwrap().1;
        let plain = get("/profile".into(), format!("leptos_oidc_session={id}")).await;
        assert_eq!(plain.status(), 302, "a cookie without the prefix was taken");
    })
}

/// The nonce of a page's Content-Security-Policy, after checking that the page's scripts carry
/// it and no other.
fn page_nonce(page: &support::Page) -> String {
    let policy = page.csp.as_deref().expect("a Content-Security-Policy");
    assert!(!policy.contains("'unsafe-inline'"), "{policy}");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce")
        .to_owned();
    assert!(nonce.len() >= 22, "a short nonce: {nonce}");
    let scripts = page.body.matches("<script").count();
    assert!(scripts >= 1, "no scripts: {}", page.body);
    assert_eq!(
        page.body.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "a script without the page's nonce: {}",
        page.body
    );
    nonce
}

/// Every page carries a Content-Security-Policy whose nonce is on its scripts and new for each
/// answer, pages served from memory included; forms may lead only to the app and the provider.
#[test]
fn every_page_has_a_content_security_policy_with_a_nonce_of_its_own() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let mut seen = std::collections::HashSet::new();
        for path in [
            "/",
            "/",
            "/signin",
            "/signin?error=access_denied",
            "/nowhere",
        ] {
            let page = app.get(path).await;
            assert!(
                seen.insert(page_nonce(&page)),
                "{path}: a nonce seen before"
            );
        }
        app.sign_in(&provider).await;
        for path in ["/profile", "/profile", "/profile", "/sessions", "/logout"] {
            let page = app.get(path).await;
            assert_eq!(page.status, 200, "{path}");
            assert!(
                seen.insert(page_nonce(&page)),
                "{path}: a nonce seen before"
            );
            let policy = page.csp.unwrap();
            let provider_origin = provider.issuer.trim_end_matches('/');
            assert!(
                policy.contains(&format!("form-action 'self' {provider_origin};")),
                "{policy}"
            );
            for directive in [
                "frame-ancestors 'none'",
                "base-uri 'none'",
                "object-src 'none'",
            ] {
                assert!(policy.contains(directive), "{policy}");
            }
        }
    })
}

/// Pushed authorization requests (RFC 9126): with `PAR=auto` (the default) only when the
/// provider requires them, with `PAR=always` whenever it offers them; the browser then carries
/// the client id and the request's reference only. `PAR=always` at a provider without the
/// endpoint is a misconfiguration the sign-in page names.
#[test]
fn authorization_requests_are_pushed_when_the_provider_requires_it_or_par_says_always() {
    run(async {
        let (app, provider) = app_and_provider().await;
        let url = app.start_sign_in("/login").await;
        assert!(!query_param(&url, "code_challenge").is_empty(), "{url}");
        assert_eq!(provider.par_requests(), 0);

        provider.set_behaviour(Behaviour {
            require_par: true,
            ..Behaviour::default()
        });
        // Restarted to discover what the provider now says.
        let app = app.restart().await;
        let url = app.start_sign_in("/login").await;
        assert!(!query_param(&url, "request_uri").is_empty(), "{url}");
        assert!(query_param(&url, "code_challenge").is_empty(), "{url}");
        assert_eq!(
            app.callback_for(&provider, &url).await.location.as_deref(),
            Some("/profile")
        );
        assert_eq!(provider.par_requests(), 1);

        provider.set_behaviour(Behaviour::default());
        let app = app.restart_with(&[("OIDC_PAR", "always")]).await;
        let other = app.in_another_browser();
        assert_eq!(
            other.sign_in(&provider).await.location.as_deref(),
            Some("/profile")
        );
        assert_eq!(provider.par_requests(), 2);

        provider.set_behaviour(Behaviour {
            no_par_endpoint: true,
            ..Behaviour::default()
        });
        let app = app.restart().await;
        let refused = app.in_another_browser().get("/login").await;
        assert_eq!(
            refused.location.as_deref(),
            Some("/signin?error=provider_misconfigured")
        );
    })
}
