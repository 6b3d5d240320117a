//! The app under test: in-process on a free loopback port, configured with test providers and
//! stores, and driven as a browser drives it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use leptos::config::LeptosOptions;
use leptos_oidc::{config::Config, session::Store, users::Users};
use url::Url;

use super::{
    provider::{TestProvider, CLIENT_ID, CLIENT_SECRET},
    stores::Stores,
};

/// The app, in-process, on a free loopback port.
pub struct TestApp {
    pub url: String,
    pub database_url: String,
    pub client: reqwest::Client,
    /// The app's sessions, as it keeps them: for counting its store reads.
    pub sessions: Store,
    stores: Stores,
    /// Its settings: the providers', and the test's own.
    vars: Vars,
    stop: Option<Arc<tokio::sync::Notify>>,
    server: Option<Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>>,
}

type Vars = Vec<(String, String)>;

/// The app with its own SQLite database, signing in with the provider at `issuer` (which knows
/// it as `test-client`).
pub async fn start_app(issuer: &str) -> TestApp {
    start_app_with(issuer, &Stores::sqlite(), &[]).await
}

/// The app on `stores`, with these settings beside the test's own.
pub async fn start_app_with(
    issuer: &str,
    stores: &Stores,
    vars: &[(&'static str, &str)],
) -> TestApp {
    let provider: Vars = vec![
        ("OIDC_ISSUER".into(), issuer.to_owned()),
        ("OIDC_CLIENT_ID".into(), CLIENT_ID.to_owned()),
        ("OIDC_CLIENT_SECRET".into(), CLIENT_SECRET.to_owned()),
    ];
    start(stores, provider, vars).await
}

/// The app with several providers, each under its id (its label: the id with a capital), on
/// `stores`, with these settings beside.
pub async fn start_app_with_providers(
    providers: &[(&str, &TestProvider)],
    stores: &Stores,
    vars: &[(&'static str, &str)],
) -> TestApp {
    let ids: Vec<&str> = providers.iter().map(|(id, _)| *id).collect();
    let mut all: Vars = vec![("OIDC_PROVIDERS".into(), ids.join(","))];
    for (id, provider) in providers {
        let prefix = format!("OIDC_{}_", id.to_ascii_uppercase().replace('-', "_"));
        let mut label = id.to_string();
        label[..1].make_ascii_uppercase();
        all.extend([
            (format!("{prefix}ISSUER"), provider.issuer.clone()),
            (
                format!("{prefix}CLIENT_ID"),
                provider.identity.client_id.into(),
            ),
            (
                format!("{prefix}CLIENT_SECRET"),
                provider.identity.client_secret.into(),
            ),
            (format!("{prefix}LABEL"), label),
        ]);
    }
    start(stores, all, vars).await
}

/// A new app on `stores` with the providers' settings `vars` and the test's own `extra`, seen by
/// a new browser.
async fn start(stores: &Stores, mut vars: Vars, extra: &[(&'static str, &str)]) -> TestApp {
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    serve(
        stores.clone(),
        vars,
        "127.0.0.1:0".parse().unwrap(),
        browser(),
    )
    .await
}

async fn serve(stores: Stores, vars: Vars, addr: SocketAddr, client: reqwest::Client) -> TestApp {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut all: HashMap<String, String> = [
        ("DATABASE_URL".into(), stores.database_url.clone()),
        ("OIDC_TIMEOUT_SECONDS".into(), "2".to_owned()),
        // The development session key, kept with the test's own files.
        ("DATA_DIR".into(), stores.dir.path().display().to_string()),
    ]
    .into();
    if let Some(redis) = &stores.redis_url {
        all.insert("SESSION_STORE".into(), "redis".into());
        all.insert("REDIS_URL".into(), redis.clone());
    }
    all.extend(vars.iter().cloned());
    let config = Config::from_lookup(addr, |name| all.get(name).cloned()).unwrap();
    let options = LeptosOptions::builder()
        .output_name("leptos_oidc")
        .site_root(stores.dir.path().display().to_string())
        .site_addr(addr)
        .build();
    let state = leptos_oidc::server::start(config, options).await.unwrap();
    let sessions = state.sessions.clone();
    let router = leptos_oidc::server::router(state);
    let stop = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await
                .unwrap()
        }
    });
    TestApp {
        url: format!("http://{addr}"),
        database_url: stores.database_url.clone(),
        client,
        sessions,
        stores,
        vars,
        stop: Some(stop),
        server: Some(Arc::new(Mutex::new(Some(server)))),
    }
}

/// A client that behaves as a browser for our purposes: keeps cookies, asks for HTML, and
/// lets the test follow redirects itself.
pub fn browser() -> reqwest::Client {
    browser_named("")
}

/// A browser that names itself by `user_agent` (none when empty).
pub fn browser_named(user_agent: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        "text/html,application/xhtml+xml".parse().unwrap(),
    );
    if !user_agent.is_empty() {
        headers.insert(reqwest::header::USER_AGENT, user_agent.parse().unwrap());
    }
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        // No answer in this time is a hang: fail with the URL rather than wait forever.
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub set_cookie: Vec<String>,
    pub csp: Option<String>,
}

impl Page {
    /// The session id this answer set as the session cookie.
    pub fn session_id(&self) -> String {
        self.set_cookie
            .iter()
            .find_map(|c| c.strip_prefix("leptos_oidc_session="))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned()
    }
}

/// A client that sends the session cookie `id` with every request, whatever the answers say (a
/// second tab, a copied cookie), asking for `accept`.
pub fn with_session(id: &str, accept: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let cookie = format!("leptos_oidc_session={id}");
    headers.insert(reqwest::header::COOKIE, cookie.parse().unwrap());
    headers.insert(reqwest::header::ACCEPT, accept.parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

impl TestApp {
    /// Where the app keeps the files it makes (`DATA_DIR`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.stores.dir.path()
    }

    /// The same app, seen from another browser (no cookies).
    pub fn in_another_browser(&self) -> TestApp {
        self.seen_by(browser())
    }

    /// The same app, seen by `client` (a browser that has cookies already, say).
    pub fn seen_by(&self, client: reqwest::Client) -> TestApp {
        TestApp {
            url: self.url.clone(),
            database_url: self.database_url.clone(),
            client,
            sessions: self.sessions.clone(),
            stores: self.stores.clone(),
            vars: self.vars.clone(),
            stop: self.stop.clone(),
            server: self.server.clone(),
        }
    }

    /// Another instance of the app on the same stores (as behind a load balancer), seen by the
    /// same browser: cookies are per host, not per port.
    pub async fn another_instance(&self) -> TestApp {
        serve(
            self.stores.clone(),
            self.vars.clone(),
            "127.0.0.1:0".parse().unwrap(),
            self.client.clone(),
        )
        .await
    }

    /// Stops the app (gracefully, as on SIGTERM) and starts it again on the same port and
    /// stores: what a deploy does.
    pub async fn restart(self) -> TestApp {
        self.restart_with(&[]).await
    }

    /// As [`TestApp::restart`], with these settings changed (an empty value unsets one).
    pub async fn restart_with(mut self, changes: &[(&str, &str)]) -> TestApp {
        for (name, value) in changes {
            self.vars.retain(|(n, _)| n != name);
            self.vars.push((name.to_string(), value.to_string()));
        }
        if let Some(stop) = &self.stop {
            stop.notify_one();
        }
        let server = self.server.as_ref().and_then(|s| s.lock().unwrap().take());
        if let Some(server) = server {
            server.await.unwrap();
        }
        let addr = self.url.trim_start_matches("http://").parse().unwrap();
        serve(
            self.stores.clone(),
            self.vars.clone(),
            addr,
            self.client.clone(),
        )
        .await
    }

    pub async fn get(&self, path_or_url: &str) -> Page {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.url)
        };
        let response = self.client.get(&url).send().await;
        page(response.unwrap_or_else(|e| panic!("GET {url}: {e:?}"))).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut request = self.client.post(format!("{}{path}", self.url)).form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        page(request.send().await.unwrap()).await
    }

    /// A provider's back-channel logout: `token` posted as a provider posts it (no cookies).
    pub async fn post_logout_token(&self, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/backchannel-logout", self.url))
            .form(&[("logout_token", token)])
            .send()
            .await
            .unwrap()
    }

    /// `/login`, answered by the provider: the provider's authorization URL.
    pub async fn start_sign_in(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, 302, "{path}: {}", page.body);
        page.location.unwrap()
    }

    /// A whole sign-in through `provider`; returns where the callback sent the browser.
    pub async fn sign_in(&self, provider: &TestProvider) -> Page {
        let authorize = self.start_sign_in("/login").await;
        self.callback_for(provider, &authorize).await
    }

    /// A whole sign-in at the provider with this id, of several.
    pub async fn sign_in_with(&self, id: &str, provider: &TestProvider) -> Page {
        let authorize = self.start_sign_in(&format!("/login?provider={id}")).await;
        self.callback_for(provider, &authorize).await
    }

    /// The provider's redirect back for the sign-in that `authorize` started.
    pub async fn callback_for(&self, provider: &TestProvider, authorize: &str) -> Page {
        let (code, state) = provider.redirect_back(authorize);
        self.get(&format!(
            "/authorization-code/callback?code={code}&state={state}"
        ))
        .await
    }

    /// The client keys the app publishes (`/.well-known/jwks.json`), for a provider that takes
    /// `private_key_jwt`.
    pub async fn client_jwks(&self) -> serde_json::Value {
        let answer = reqwest::get(format!("{}/.well-known/jwks.json", self.url))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        serde_json::from_str(&answer.text().await.unwrap()).unwrap()
    }

    pub async fn user_count(&self) -> i64 {
        Users::new(leptos_oidc::db::open(&self.database_url).await.unwrap())
            .count()
            .await
            .unwrap()
    }

    /// Whether the browser is signed in, as the profile page tells.
    pub async fn signed_in(&self) -> bool {
        let page = self.get("/profile").await;
        match page.status {
            200 => true,
            302 => false,
            other => panic!("/profile answered {other}"),
        }
    }

    /// How long the browser's session, ended elsewhere, went on working here: `None` if it
    /// still works after `bound`.
    pub async fn ended_within(&self, bound: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() <= bound {
            if !self.signed_in().await {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Asserts that the browser's session, ended elsewhere, stops working here within the
    /// bound every instance keeps (a second).
    pub async fn assert_ended(&self, what: &str) {
        let bound = Duration::from_secs(1);
        assert!(
            self.ended_within(bound).await.is_some(),
            "{what}: the session still works at {} after {bound:?}",
            self.url
        );
    }

    /// The CSRF token from the sign-out form on the profile page.
    pub async fn csrf_token(&self) -> String {
        csrf_token_in(&self.get("/profile").await.body)
    }

    /// The profile's sign-out form posted, as the browser posts it (with `everywhere`, its
    /// second button): where the app sends the browser.
    pub async fn sign_out(&self, everywhere: bool) -> Page {
        let csrf = self.csrf_token().await;
        let mut form = vec![("csrf", csrf.as_str())];
        if everywhere {
            form.push(("everywhere", "1"));
        }
        self.post_form("/logout", &form, Some(&self.url)).await
    }
}

/// The CSRF token of the sign-out form on a page.
pub fn csrf_token_in(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .expect("a sign-out form")
        + 19;
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

pub fn query_param(url: &str, name: &str) -> String {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn page(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let csp = response
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    Page {
        status,
        location,
        body,
        set_cookie,
        csp,
    }
}
