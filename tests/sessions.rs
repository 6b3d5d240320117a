//! Sessions on real stores (SQLite, PostgreSQL, Redis): several instances sharing them,
//! restarts, expiry, signing out everywhere, back-channel logout across instances, and tokens
//! renewed before they expire; and "your sessions", which lists and ends them.
//!
//! Redis and PostgreSQL come from `scripts/test-servers.sh` (`scripts/test.sh` starts them).

mod support;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::future::join_all;
use leptos_oidc::{db, session::Store};
use serde_json::json;
use support::{
    browser_named, csrf_token_in, logout_claims, run, sign_jwt, start_app_with,
    start_app_with_providers, with_session, Behaviour, Identity, Signer, Stores, TestApp,
    TestProvider,
};
use tower_sessions::ExpiredDeletion;

async fn provider(behaviour: Behaviour) -> TestProvider {
    let provider = TestProvider::start().await;
    provider.set_behaviour(behaviour);
    provider
}

async fn sign_out(app: &TestApp, everywhere: bool) {
    let page = app.sign_out(everywhere).await;
    assert_eq!(page.status, 302, "{}", page.body);
}

/// The provider's back-channel logout of Alice's provider session, posted to `app`.
async fn back_channel_logout(app: &TestApp, provider: &TestProvider) {
    let token = sign_jwt(&Signer::default(), &logout_claims(&provider.issuer));
    assert_eq!(app.post_logout_token(&token).await.status(), 200);
}

/// Signs in through instance A, sees the profile through B, signs out on B: A no longer shows it.
async fn instances_share_sessions(stores: Stores) {
    let provider = provider(Behaviour::default()).await;
    let a = start_app_with(&provider.issuer, &stores, &[]).await;
    let b = a.another_instance().await;
    assert_eq!(
        a.sign_in(&provider).await.location.as_deref(),
        Some("/profile")
    );
    assert!(b.signed_in().await, "instance B does not know the session");
    assert!(b.get("/profile").await.body.contains("Alice Liddell"));
    sign_out(&b, false).await;
    a.assert_ended("signed out on instance B").await;
    assert_eq!(a.user_count().await, 1);
}

#[test]
fn two_instances_on_redis_and_postgres_share_sessions() {
    run(async { instances_share_sessions(Stores::postgres_and_redis().await).await })
}

#[test]
fn two_instances_on_postgres_share_sessions() {
    run(async { instances_share_sessions(Stores::postgres().await).await })
}

#[test]
fn two_instances_on_one_sqlite_file_share_sessions() {
    run(instances_share_sessions(Stores::sqlite()))
}

async fn sessions_survive_a_restart(stores: Stores) {
    let provider = provider(Behaviour::default()).await;
    let app = start_app_with(&provider.issuer, &stores, &[]).await;
    app.sign_in(&provider).await;
    assert!(app.signed_in().await);
    let app = app.restart().await;
    assert!(
        app.signed_in().await,
        "the session did not survive a restart"
    );
}

#[test]
fn sessions_survive_a_restart_on_sqlite() {
    run(sessions_survive_a_restart(Stores::sqlite()))
}

#[test]
fn sessions_survive_a_restart_on_redis() {
    run(sessions_survive_a_restart(Stores::sqlite_and_redis()))
}

#[test]
fn sessions_survive_a_restart_on_postgres() {
    run(async { sessions_survive_a_restart(Stores::postgres().await).await })
}

#[test]
fn expired_sessions_are_deleted_from_the_database() {
    run(async {
        for stores in [Stores::sqlite(), Stores::postgres().await] {
            let provider = provider(Behaviour::default()).await;
            let app =
                start_app_with(&provider.issuer, &stores, &[("SESSION_IDLE_SECONDS", "2")]).await;
            app.sign_in(&provider).await;
            let database = db::open(&stores.database_url).await.unwrap();
            let store = Store::in_database(database.clone());
            let count = || async {
                let query = "SELECT COUNT(*) FROM sessions";
                let stored: i64 = match &database {
                    db::Db::Sqlite(sqlite) => {
                        let mut connection = sqlite.connection().await;
                        sqlx::query_scalar(query).fetch_one(&mut *connection).await
                    }
                    db::Db::Postgres(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
                }
                .unwrap();
                stored
            };
            store.delete_expired().await.unwrap();
            assert_eq!(count().await, 1, "the live session was deleted");
            tokio::time::sleep(Duration::from_millis(3100)).await;
            store.delete_expired().await.unwrap();
            assert_eq!(count().await, 0, "the expired session is still stored");
            assert!(!app.signed_in().await);
        }
    })
}

#[test]
fn expired_sessions_are_deleted_from_redis() {
    use tower_sessions_redis_store::fred::prelude::{
        Builder, ClientLike, Config as RedisConfig, KeysInterface,
    };
    run(async {
        let stores = Stores::sqlite_and_redis();
        let provider = provider(Behaviour::default()).await;
        let app = start_app_with(&provider.issuer, &stores, &[("SESSION_IDLE_SECONDS", "2")]).await;
        let id = app.sign_in(&provider).await.session_id();
        let redis = Builder::from_config(
            RedisConfig::from_url(stores.redis_url.as_deref().unwrap()).unwrap(),
        )
        .build()
        .unwrap();
        redis.init().await.unwrap();
        let ttl: i64 = redis.ttl(&id).await.unwrap();
        assert!(
            (1..=2).contains(&ttl),
            "the session's time to live is {ttl}"
        );
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let exists: i64 = redis.exists(&id).await.unwrap();
        assert_eq!(exists, 0, "the expired session is still in Redis");
        assert!(!app.signed_in().await);
    })
}

#[test]
fn sign_out_everywhere_ends_the_users_sessions_in_every_browser_and_instance() {
    run(async {
        let stores = Stores::postgres_and_redis().await;
        let provider = provider(Behaviour::default()).await;
        let a = start_app_with(&provider.issuer, &stores, &[]).await;
        let b = a.another_instance().await.in_another_browser();
        let (x, y, z) = (a.in_another_browser(), b, a.in_another_browser());
        for browser in [&x, &y, &z] {
            browser.sign_in(&provider).await;
            assert!(browser.signed_in().await);
        }
        // A plain sign-out ends one browser's session only.
        sign_out(&x, false).await;
        assert!(!x.signed_in().await);
        assert!(y.signed_in().await && z.signed_in().await);
        // Everywhere: every other browser too, whichever instance it uses.
        sign_out(&y, true).await;
        assert!(!y.signed_in().await);
        z.assert_ended("another browser, after signing out everywhere on B")
            .await;
    })
}

/// A request still running when its session is ended elsewhere must not write the session back.
#[test]
fn a_session_ended_during_a_request_stays_ended() {
    run(async {
        let provider = provider(Behaviour {
            refresh_delay: Some(Duration::from_millis(1500)),
            ..Behaviour::short_tokens(4)
        })
        .await;
        for stores in [Stores::sqlite(), Stores::sqlite_and_redis()] {
            let x = start_app_with(&provider.issuer, &stores, &[]).await;
            let y = x.in_another_browser();
            x.sign_in(&provider).await;
            tokio::time::sleep(UNTIL_DUE).await;
            y.sign_in(&provider).await;
            // X's request renews its tokens (slowly) and saves them at its end; meanwhile Y signs
            // out everywhere.
            let (page, ()) = tokio::join!(x.get("/profile"), async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                sign_out(&y, true).await;
            });
            // The request ends with the renewal it started (200), or, the sign-out having
            // revoked the tokens at the provider meanwhile, with the refresh refused (302).
            assert!(matches!(page.status, 200 | 302), "{}", page.status);
            assert!(!x.signed_in().await, "the ended session was written back");
        }
    })
}

#[test]
fn back_channel_logout_reaches_every_instance() {
    run(async {
        let stores = Stores::postgres_and_redis().await;
        let provider = provider(Behaviour::default()).await;
        let a = start_app_with(&provider.issuer, &stores, &[]).await;
        let b = a.another_instance().await.in_another_browser();
        // Two browsers in the provider session `provider-session-1` (one per instance), and one
        // in another provider session of the same user.
        let (x, y) = (a.in_another_browser(), b);
        x.sign_in(&provider).await;
        y.sign_in(&provider).await;
        provider.set_behaviour(Behaviour {
            id_token_claims: [("sid".to_owned(), json!("provider-session-2"))]
                .into_iter()
                .collect(),
            ..Behaviour::default()
        });
        let w = a.in_another_browser();
        w.sign_in(&provider).await;

        back_channel_logout(&a, &provider).await;
        assert!(!x.signed_in().await, "instance A's session lives on");
        y.assert_ended("instance B's session, after a back-channel logout at A")
            .await;
        assert!(
            w.signed_in().await,
            "another provider session was ended too"
        );
    })
}

/// How a session is ended, on instance A.
#[derive(Clone, Copy, Debug)]
enum Ending {
    SignOut,
    /// Sign out everywhere, from another browser of the same user.
    Everywhere,
    /// The provider's back-channel logout.
    BackChannel,
}

/// Instance B serves a signed-in session's pages from memory (no store read) under load; the
/// session is ended on instance A; B stops serving it within a second. B is asked with the
/// session's cookie as it was (a second tab still open, or a copied cookie), so that it is B
/// that must refuse it, not the browser that forgot it.
async fn an_ended_session_stops_on_every_instance_within_a_second(stores: Stores, how: Ending) {
    let provider = provider(Behaviour::default()).await;
    let a = start_app_with(&provider.issuer, &stores, &[]).await;
    let id = a.sign_in(&provider).await.session_id();
    let b = a
        .another_instance()
        .await
        .seen_by(with_session(&id, "text/html"));
    // B's cache is on once the store has confirmed it (within a tenth of a second).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads = |app: &TestApp| app.sessions.cache().reads();
    let before = reads(&b);
    for view in 0..20 {
        let read = reads(&b);
        assert!(b.signed_in().await);
        assert!(
            reads(&b) - read <= 1,
            "view {view} read the store more than once"
        );
    }
    assert!(
        reads(&b) - before <= 1,
        "{how:?}: 20 views read the store {} times: not served from memory",
        reads(&b) - before
    );

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (b, stop) = (b.seen_by(b.client.clone()), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let status = b.get("/profile").await.status;
                    assert!(status == 200 || status == 302, "/profile answered {status}");
                }
            })
        })
        .collect();
    match how {
        Ending::SignOut => sign_out(&a, false).await,
        Ending::Everywhere => {
            let other = a.in_another_browser();
            other.sign_in(&provider).await;
            sign_out(&other, true).await;
        }
        Ending::BackChannel => back_channel_logout(&a, &provider).await,
    }
    let ended = b.ended_within(Duration::from_secs(2)).await;
    println!("{how:?}: instance B refused the ended session after {ended:?}");
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(
        ended.is_some_and(|after| after <= Duration::from_secs(1)),
        "{how:?}: instance B served the ended session for {ended:?}"
    );
}

#[test]
fn an_ended_session_stops_on_every_instance_within_a_second_on_sqlite() {
    for how in [Ending::SignOut, Ending::Everywhere, Ending::BackChannel] {
        run(an_ended_session_stops_on_every_instance_within_a_second(
            Stores::sqlite(),
            how,
        ));
    }
}

#[test]
fn an_ended_session_stops_on_every_instance_within_a_second_on_postgres() {
    for how in [Ending::SignOut, Ending::Everywhere, Ending::BackChannel] {
        run(async {
            let stores = Stores::postgres().await;
            an_ended_session_stops_on_every_instance_within_a_second(stores, how).await
        });
    }
}

#[test]
fn an_ended_session_stops_on_every_instance_within_a_second_on_redis() {
    for how in [Ending::SignOut, Ending::Everywhere, Ending::BackChannel] {
        run(an_ended_session_stops_on_every_instance_within_a_second(
            Stores::sqlite_and_redis(),
            how,
        ));
    }
}

/// Until a 4-second token is due for renewal (its last quarter).
const UNTIL_DUE: Duration = Duration::from_millis(3200);

#[test]
fn the_access_token_is_renewed_before_it_expires_and_the_profile_says_when() {
    run(renewals_before_expiry(Behaviour::short_tokens(4)));
}

/// Many providers keep the refresh token across refreshes: each renewal must still be a refresh
/// of its own, not the result of the one before (by then expired).
#[test]
fn renewals_work_when_the_provider_keeps_the_refresh_token() {
    run(renewals_before_expiry(Behaviour {
        refresh_token_kept: true,
        ..Behaviour::short_tokens(4)
    }));
}

async fn renewals_before_expiry(behaviour: Behaviour) {
    {
        let provider = provider(behaviour).await;
        let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
        app.sign_in(&provider).await;
        let profile = app.get("/profile").await.body;
        assert!(profile.contains("Session ends"), "{profile}");
        assert!(profile.contains("Access token expires"), "{profile}");
        assert!(profile.contains("renewed before then"), "{profile}");
        assert_eq!(provider.refresh_requests(), 0);

        tokio::time::sleep(UNTIL_DUE).await;
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 1);
        // The new token is fresh: no second refresh yet.
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 1);
        // And the refresh token in hand still works: the next renewal is a refresh of its own,
        // and its tokens are fresh too.
        tokio::time::sleep(UNTIL_DUE).await;
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 2);
        assert!(app.signed_in().await);
        assert_eq!(provider.refresh_requests(), 2);
    }
}

#[test]
fn parallel_requests_on_two_instances_refresh_once() {
    run(async {
        let provider = provider(Behaviour {
            refresh_delay: Some(Duration::from_millis(500)),
            ..Behaviour::short_tokens(4)
        })
        .await;
        let stores = Stores::sqlite_and_redis();
        let a = start_app_with(&provider.issuer, &stores, &[]).await;
        let b = a.another_instance().await;
        a.sign_in(&provider).await;
        tokio::time::sleep(UNTIL_DUE).await;
        let pages = join_all((0..8).map(|i| {
            let instance = if i % 2 == 0 { &a } else { &b };
            instance.get("/profile")
        }))
        .await;
        for page in &pages {
            assert_eq!(page.status, 200, "a parallel request lost the session");
        }
        assert_eq!(provider.refresh_requests(), 1, "more than one refresh");
        // Every request kept the same, rotated refresh token: the next renewal works.
        tokio::time::sleep(UNTIL_DUE).await;
        assert!(b.signed_in().await);
        assert_eq!(provider.refresh_requests(), 2);
    })
}

/// When the provider will not renew the tokens, the session ends and the user is told.
async fn assert_session_ended_with_a_message(behaviour: Behaviour) {
    let provider = provider(behaviour).await;
    let app = start_app_with(&provider.issuer, &Stores::sqlite(), &[]).await;
    app.sign_in(&provider).await;
    tokio::time::sleep(UNTIL_DUE).await;
    let page = app.get("/profile").await;
    assert_eq!(page.status, 302);
    let to = page.location.unwrap();
    assert_eq!(to, "/signin?error=session_ended&return_to=/profile");
    let told = app.get(&to).await;
    assert_eq!(told.status, 401);
    assert!(
        told.body.contains("Your session has ended"),
        "{}",
        told.body
    );
    assert!(told.body.contains("Please sign in again"));
    assert!(!app.signed_in().await);
}

#[test]
fn a_refused_refresh_ends_the_session_with_a_message() {
    run(assert_session_ended_with_a_message(Behaviour {
        refresh_refused: true,
        ..Behaviour::short_tokens(4)
    }))
}

#[test]
fn a_refreshed_id_token_about_another_subject_ends_the_session() {
    run(assert_session_ended_with_a_message(Behaviour {
        refresh_id_token_claims: [("sub".to_owned(), json!("mallory"))].into_iter().collect(),
        ..Behaviour::short_tokens(4)
    }))
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The handles of the sessions a `/sessions` page lists, in its order (this browser's first).
fn listed_handles(page: &str) -> Vec<String> {
    page.match_indices("id=\"session-")
        .map(|(at, found)| {
            let start = at + found.len();
            page[start..start + page[start..].find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The button of `/sessions` pressed for the session `handle`, with the CSRF token `csrf`.
async fn end_session(app: &TestApp, csrf: &str, handle: &str) -> Option<String> {
    let form = [("csrf", csrf), ("session", handle)];
    let page = app.post_form("/sessions/end", &form, Some(&app.url)).await;
    assert_eq!(page.status, 302, "{}", page.body);
    page.location
}

/// "Your sessions": a user signed in with two browsers, each on its own instance, sees both
/// from either (browser, this one marked, no session ids on the page), and ends the other from
/// there: it stops on its instance, its tokens are revoked, and forged or repeated requests end
/// nothing.
async fn your_sessions_are_listed_and_ended_across_instances(stores: Stores) {
    let provider = provider(Behaviour {
        refresh_tokens: true,
        ..Behaviour::default()
    })
    .await;
    let a = start_app_with(&provider.issuer, &stores, &[]).await;
    let b = a.another_instance().await;
    let firefox = a.seen_by(browser_named(FIREFOX));
    let chrome = b.seen_by(browser_named(CHROME));
    let firefox_id = firefox.sign_in(&provider).await.session_id();
    let chrome_id = chrome.sign_in(&provider).await.session_id();

    let page = chrome.get("/sessions").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (chrome_at, firefox_at) = (
        page.body
            .find("Chrome 131 on Windows 10")
            .expect("Chrome listed"),
        page.body
            .find("Firefox 132 on Linux")
            .expect("Firefox listed"),
    );
    assert!(
        chrome_at < firefox_at,
        "this browser's session is not first"
    );
    assert_eq!(page.body.matches("This browser").count(), 1);
    assert_eq!(page.body.matches("End this session").count(), 1);
    for id in [&firefox_id, &chrome_id] {
        assert!(
            !page.body.contains(id.as_str()),
            "a session id reached the page"
        );
    }
    let handles = listed_handles(&page.body);
    assert_eq!(handles.len(), 2, "{handles:?}");
    let (own, other) = (&handles[0], &handles[1]);
    let csrf = csrf_token_in(&page.body);

    // A request that did not come from the page ends nothing, and says so.
    let forged = end_session(&chrome, "forged", other).await;
    assert_eq!(forged.as_deref(), Some("/sessions?error=csrf"));
    let told = chrome.get("/sessions?error=csrf").await;
    assert_eq!(told.status, 403);
    assert!(told.body.contains("no session was ended"), "{}", told.body);
    // This browser's own session is not ended from the list: that is signing out.
    let own_ended = end_session(&chrome, &csrf, own).await;
    assert_eq!(own_ended.as_deref(), Some("/sessions?ended=current"));
    assert!(firefox.signed_in().await && chrome.signed_in().await);

    // Firefox's session, ended from Chrome on instance B, stops on instance A.
    let ended = end_session(&chrome, &csrf, other).await;
    assert_eq!(ended.as_deref(), Some("/sessions?ended=1"));
    firefox
        .assert_ended("a session ended from another browser on instance B")
        .await;
    let page = chrome.get("/sessions?ended=1").await;
    assert!(page.body.contains("The session was ended"), "{}", page.body);
    assert_eq!(listed_handles(&page.body), vec![own.clone()]);
    assert!(chrome.signed_in().await);
    let revoked = provider.revoked_at_least(2).await;
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    // Pressed again (a second tab): it had ended already.
    let again = end_session(&chrome, &csrf, other).await;
    assert_eq!(again.as_deref(), Some("/sessions?ended=already"));
}

#[test]
fn your_sessions_on_sqlite_are_listed_and_ended_across_instances() {
    run(your_sessions_are_listed_and_ended_across_instances(
        Stores::sqlite(),
    ))
}

#[test]
fn your_sessions_in_redis_are_listed_and_ended_across_instances() {
    run(async {
        your_sessions_are_listed_and_ended_across_instances(Stores::postgres_and_redis().await)
            .await
    })
}

/// Programs get the list as JSON with a session, and a 401 without; a form without its fields
/// is refused with the page that says so; a handle of another user's session ends nothing.
#[test]
fn your_sessions_refuse_what_is_not_the_users() {
    run(async {
        let (acme, globex) = (
            TestProvider::start().await,
            TestProvider::start_with(Identity::CAROL).await,
        );
        let app = start_app_with_providers(
            &[("acme", &acme), ("globex", &globex)],
            &Stores::sqlite(),
            &[],
        )
        .await;
        let alice = app.seen_by(browser_named(FIREFOX));
        let carol = app.in_another_browser();
        let alices_id = alice.sign_in_with("acme", &acme).await.session_id();
        carol.sign_in_with("globex", &globex).await;

        let url = format!("{}/api/your_sessions", app.url);
        let anonymous = reqwest::Client::new().post(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let listed = with_session(&alices_id, "application/json")
            .post(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 200);
        let listed: serde_json::Value =
            serde_json::from_str(&listed.text().await.unwrap()).unwrap();
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        assert_eq!(listed[0]["browser"], "Firefox 132 on Linux");
        assert_eq!(listed[0]["provider"], "Acme");
        assert_eq!(listed[0]["current"], true);

        // Carol cannot end Alice's session, though she has its handle.
        let alices_handle = listed[0]["handle"].as_str().unwrap().to_owned();
        let carols_page = carol.get("/sessions").await.body;
        let csrf = csrf_token_in(&carols_page);
        let refused = end_session(&carol, &csrf, &alices_handle).await;
        assert_eq!(refused.as_deref(), Some("/sessions?ended=already"));
        assert!(alice.signed_in().await, "another user's session was ended");

        let malformed = carol
            .post_form(
                "/sessions/end",
                &[("csrf", csrf.as_str())],
                Some(&carol.url),
            )
            .await;
        assert_eq!(
            malformed.location.as_deref(),
            Some("/sessions?error=malformed")
        );
        let told = carol.get("/sessions?error=malformed").await;
        assert_eq!(told.status, 400);
        assert!(told.body.contains("no session was ended"), "{}", told.body);
    })
}

/// Everything the store holds of sessions and renewals, raw, as text (Redis records are
/// MessagePack: their strings are read as they are).
async fn raw_store(stores: &Stores) -> String {
    use tower_sessions_redis_store::fred::{
        prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface},
        types::{ClusterHash, CustomCommand},
    };
    let Some(url) = &stores.redis_url else {
        let database = db::open(&stores.database_url).await.unwrap();
        let sessions = "SELECT data FROM sessions";
        let refreshes = "SELECT COALESCE(result, '') FROM token_refreshes";
        let rows: Vec<String> = match &database {
            db::Db::Sqlite(sqlite) => {
                let mut connection = sqlite.connection().await;
                [
                    sqlx::query_scalar(sessions)
                        .fetch_all(&mut *connection)
                        .await
                        .unwrap(),
                    sqlx::query_scalar(refreshes)
                        .fetch_all(&mut *connection)
                        .await
                        .unwrap(),
                ]
                .concat()
            }
            db::Db::Postgres(pool) => [
                sqlx::query_scalar(sessions).fetch_all(pool).await.unwrap(),
                sqlx::query_scalar(refreshes).fetch_all(pool).await.unwrap(),
            ]
            .concat(),
        };
        return rows.join("\n");
    };
    let redis = Builder::from_config(RedisConfig::from_url(url).unwrap())
        .build()
        .unwrap();
    redis.init().await.unwrap();
    let keys: Vec<String> = redis
        .custom(
            CustomCommand::new("KEYS", ClusterHash::FirstKey, false),
            vec!["*"],
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    for key in keys {
        let kind: String = redis
            .custom(
                CustomCommand::new("TYPE", ClusterHash::FirstKey, false),
                vec![key.as_str()],
            )
            .await
            .unwrap();
        if kind == "string" {
            let value: Vec<u8> = redis.get(&key).await.unwrap();
            raw.extend(value);
            raw.push(b'\n');
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// After a sign-in and a renewal, the store holds the session's tokens (and the renewal's)
/// sealed only: a copy of it gives nobody a token.
async fn tokens_are_sealed_in_the_store(stores: Stores) {
    use tower_sessions::SessionStore;
    let provider = provider(Behaviour::short_tokens(4)).await;
    let app = start_app_with(&provider.issuer, &stores, &[]).await;
    let id = app.sign_in(&provider).await.session_id();
    tokio::time::sleep(UNTIL_DUE).await;
    assert!(app.signed_in().await);
    assert_eq!(provider.refresh_requests(), 1, "no renewal");
    let record = app.sessions.load(&id.parse().unwrap()).await.unwrap();
    let user = leptos_oidc::session::user_of(&record.expect("the session")).unwrap();
    let raw = raw_store(&stores).await;
    assert!(raw.contains("sealed1."), "nothing sealed in: {raw}");
    let refresh_token = user.refresh_token.as_deref().unwrap();
    for token in [&user.id_token, &user.access_token, refresh_token] {
        assert!(
            !raw.contains(token),
            "a token is in the store in clear: {token}"
        );
    }
}

#[test]
fn tokens_are_sealed_in_sqlite() {
    run(tokens_are_sealed_in_the_store(Stores::sqlite()))
}

#[test]
fn tokens_are_sealed_in_postgres() {
    run(async { tokens_are_sealed_in_the_store(Stores::postgres().await).await })
}

#[test]
fn tokens_are_sealed_in_redis() {
    run(tokens_are_sealed_in_the_store(Stores::sqlite_and_redis()))
}

/// `SESSION_KEYS` rotates without signing anyone out: a new key first, the old one after, and
/// sessions sealed with the old one go on; once the old key is dropped they end cleanly (the
/// sign-in page, not an error), and a new sign-in works. Without `SESSION_KEYS`, the development
/// key is kept across restarts in `DATA_DIR`.
#[test]
fn session_keys_rotate_and_a_session_whose_key_is_gone_ends_cleanly() {
    run(async {
        const OLD: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        const NEW: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=";
        for stores in [Stores::sqlite(), Stores::sqlite_and_redis()] {
            let provider = provider(Behaviour::default()).await;
            let app = start_app_with(&provider.issuer, &stores, &[]).await;
            app.sign_in(&provider).await;
            let app = app.restart().await;
            assert!(app.signed_in().await, "the development key was not kept");
            assert!(app.data_dir().join("session.key").exists());

            let app = app.restart_with(&[("SESSION_KEYS", OLD)]).await;
            assert!(!app.signed_in().await, "opened without its key");
            app.sign_in(&provider).await;
            let app = app
                .restart_with(&[("SESSION_KEYS", &format!("{NEW},{OLD}"))])
                .await;
            assert!(app.signed_in().await, "a rotation signed the user out");
            let app = app.restart_with(&[("SESSION_KEYS", NEW)]).await;
            let page = app.get("/profile").await;
            assert_eq!(page.status, 302, "{}", page.body);
            assert!(page.location.unwrap().starts_with("/login"));
            let home = app.get("/").await;
            assert_eq!(home.status, 200);
            app.sign_in(&provider).await;
            assert!(app.signed_in().await);
        }
    })
}
