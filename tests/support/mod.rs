//! Test harness: the app on a free loopback port, and a small OpenID provider of our own that
//! each test can make misbehave. The provider is honest by default: real discovery, a real key
//! set, RS256-signed ID tokens, HTTP Basic client authentication and PKCE checks.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Form, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use leptos::config::LeptosOptions;
use leptos_oidc::{config::Config, users::Users};
use openidconnect::{
    core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    PrivateSigningKey,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use url::Url;

/// Every test runs on one shared multi-threaded runtime, as the app does in production: with a
/// runtime per test, a server future could end up waiting on a runtime whose test has ended.
pub fn run<F: std::future::Future>(test: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            if let Ok(filter) = std::env::var("TEST_LOG") {
                tracing_subscriber::fmt().with_env_filter(filter).init();
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
        })
        .block_on(test)
}

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const SUBJECT: &str = "alice-subject";

/// The keys the provider holds: two RSA keys and a P-256 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Rsa1,
    Rsa2,
    Ec,
}

/// How the provider signs ID tokens.
#[derive(Clone, Debug)]
pub enum Signer {
    /// A JWS with this `alg`, signed by `key`, naming `kid` in its header (or not).
    Key {
        alg: &'static str,
        key: Key,
        kid: Option<&'static str>,
    },
    /// `alg: none`, no signature.
    Unsigned,
    /// HS256 with this secret (the client secret, say, or a public key).
    Hmac(Vec<u8>),
}

impl Signer {
    pub fn rs256(key: Key, kid: Option<&'static str>) -> Self {
        Signer::Key {
            alg: "RS256",
            key,
            kid,
        }
    }
}

impl Default for Signer {
    fn default() -> Self {
        Signer::rs256(Key::Rsa1, Some("test-key"))
    }
}

/// How the provider should misbehave; the default is a correct provider.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Fields merged over the correct discovery document.
    pub discovery: Map<String, Value>,
    /// The key set the provider publishes (default: RSA key 1, kid `test-key`).
    pub jwks: Option<Value>,
    /// A raw body for the key set endpoint instead (garbage, say).
    pub jwks_body: Option<String>,
    pub signer: Signer,
    /// Flip a bit of the ID token's signature.
    pub tamper_signature: bool,
    /// Claims merged over the correct ID token claims (`Value::Null` removes one).
    pub id_token_claims: Map<String, Value>,
    /// The token endpoint waits this long before answering.
    pub token_delay: Option<std::time::Duration>,
    /// Answer the token request with this status and body instead.
    pub token_response: Option<(u16, String)>,
    /// Fields merged over the correct token response.
    pub token_fields: Map<String, Value>,
    /// Claims merged over the correct userinfo response.
    pub userinfo_claims: Map<String, Value>,
    /// Issue refresh tokens (rotated at each use: an old one is refused, as real providers do).
    pub refresh_tokens: bool,
    /// The access token's lifetime in seconds (300 by default).
    pub expires_in: Option<i64>,
    /// Refreshes take this long.
    pub refresh_delay: Option<std::time::Duration>,
    /// Refuse every refresh (`invalid_grant`): the provider ended the grant.
    pub refresh_refused: bool,
    /// Overrides of the refreshed ID token's claims (`null` removes one).
    pub refresh_id_token_claims: Map<String, Value>,
}

struct Grant {
    nonce: String,
    code_challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct ProviderState {
    grants: HashMap<String, Grant>,
    behaviour: Behaviour,
    token_requests: usize,
    refresh_requests: usize,
    jwks_requests: usize,
    /// Refresh tokens that still work.
    refresh_tokens: std::collections::HashSet<String>,
    issued: usize,
}

pub struct TestProvider {
    pub issuer: String,
    state: Arc<Mutex<ProviderState>>,
}

struct Shared {
    issuer: String,
    state: Arc<Mutex<ProviderState>>,
}

fn rsa_key(key: Key) -> CoreRsaPrivateSigningKey {
    let pem = match key {
        Key::Rsa1 => include_str!("../fixtures/test-signing-key.pem"),
        _ => include_str!("../fixtures/test-signing-key-2.pem"),
    };
    CoreRsaPrivateSigningKey::from_pem(pem, None).unwrap()
}

fn ec_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

/// The public JWK of `key`, with `kid` if given.
pub fn jwk(key: Key, kid: Option<&str>) -> Value {
    let mut jwk = match key {
        Key::Rsa1 | Key::Rsa2 => serde_json::to_value(rsa_key(key).as_verification_key()).unwrap(),
        Key::Ec => {
            let point = ec_key().verifying_key().to_sec1_bytes();
            assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed point");
            json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            })
        }
    };
    let map = jwk.as_object_mut().unwrap();
    map.remove("kid");
    map.insert("use".into(), "sig".into());
    if let Some(kid) = kid {
        map.insert("kid".into(), kid.into());
    }
    jwk
}

/// The default key set: RSA key 1 as `test-key`.
pub fn default_jwks() -> Value {
    json!({ "keys": [jwk(Key::Rsa1, Some("test-key"))] })
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProviderState::default()));
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            state: state.clone(),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/keys/current", get(jwks))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { issuer, state }
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    /// Refresh requests, refused ones included.
    pub fn refresh_requests(&self) -> usize {
        self.state.lock().unwrap().refresh_requests
    }

    pub fn jwks_requests(&self) -> usize {
        self.state.lock().unwrap().jwks_requests
    }

    /// What the provider's login and consent pages would do: takes the app's authorization
    /// URL, checks it, and returns the code the provider redirects back with.
    pub fn authorize(&self, authorization_url: &str) -> String {
        let url = Url::parse(authorization_url).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["scope"].split(' ').any(|s| s == "openid"));
        let code = format!("code-{}", q["state"]);
        self.state.lock().unwrap().grants.insert(
            code.clone(),
            Grant {
                nonce: q["nonce"].clone(),
                code_challenge: q["code_challenge"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
            },
        );
        code
    }
}

async fn discovery(State(p): State<Arc<Shared>>) -> Json<Value> {
    let i = &p.issuer;
    let mut document = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/session/end"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    });
    merge(&mut document, &p.state.lock().unwrap().behaviour.discovery);
    Json(document)
}

async fn jwks(State(p): State<Arc<Shared>>) -> Response {
    let mut state = p.state.lock().unwrap();
    state.jwks_requests += 1;
    let behaviour = &state.behaviour;
    match (&behaviour.jwks_body, &behaviour.jwks) {
        (Some(body), _) => body.clone().into_response(),
        (None, Some(jwks)) => Json(jwks.clone()).into_response(),
        (None, None) => Json(default_jwks()).into_response(),
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn token(
    State(p): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (grant, behaviour) = {
        let mut state = p.state.lock().unwrap();
        state.token_requests += 1;
        if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
            state.refresh_requests += 1;
        }
        let grant = form.get("code").and_then(|c| state.grants.remove(c));
        (grant, state.behaviour.clone())
    };
    let expected_auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected_auth)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh(&p, &behaviour, form.get("refresh_token")).await;
    }
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    if let Some(delay) = behaviour.token_delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, body)) = behaviour.token_response {
        return (StatusCode::from_u16(status).unwrap(), body).into_response();
    }

    let access_token = format!("at-{}", grant.nonce);
    let mut claims = id_token_claims(&p.issuer, &access_token);
    claims["nonce"] = grant.nonce.into();
    claims["sid"] = "provider-session-1".into();
    merge(&mut claims, &behaviour.id_token_claims);
    let mut id_token = sign_jwt(&behaviour.signer, &claims);
    if behaviour.tamper_signature {
        tamper_signature(&mut id_token);
    }
    let mut response = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": behaviour.expires_in.unwrap_or(300),
        "id_token": id_token,
    });
    if behaviour.refresh_tokens {
        response["refresh_token"] = new_refresh_token(&p).into();
    }
    merge(&mut response, &behaviour.token_fields);
    Json(response).into_response()
}

/// A valid ID token's claims, for `access_token`: what both grants start from.
fn id_token_claims(issuer: &str, access_token: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": SUBJECT,
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "at_hash": at_hash(access_token),
    })
}

fn new_refresh_token(p: &Shared) -> String {
    let mut state = p.state.lock().unwrap();
    state.issued += 1;
    let token = format!("rt-{}-{}", state.issued, unique_name());
    state.refresh_tokens.insert(token.clone());
    token
}

/// The refresh grant: a known refresh token is used up and a new one issued with new tokens.
async fn refresh(p: &Shared, behaviour: &Behaviour, token: Option<&String>) -> Response {
    if let Some(delay) = behaviour.refresh_delay {
        tokio::time::sleep(delay).await;
    }
    let known = token.is_some_and(|t| p.state.lock().unwrap().refresh_tokens.remove(t));
    if !known || behaviour.refresh_refused {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let issued = p.state.lock().unwrap().issued;
    let access_token = format!("at-refreshed-{issued}");
    let mut claims = id_token_claims(&p.issuer, &access_token);
    merge(&mut claims, &behaviour.refresh_id_token_claims);
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": behaviour.expires_in.unwrap_or(300),
        "refresh_token": new_refresh_token(p),
        "id_token": sign_jwt(&behaviour.signer, &claims),
    }))
    .into_response()
}

/// The claims of a valid back-channel logout token for `sid` (and `sub`): change them to make
/// it invalid.
pub fn logout_claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": SUBJECT,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": format!("jti-{}", unique_name()),
        "sid": "provider-session-1",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    })
}

async fn userinfo(State(p): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !bearer.is_some_and(|b| b.starts_with("Bearer at-")) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let mut claims = json!({
        "sub": SUBJECT,
        "name": "Alice Liddell",
        "email": "alice@example.com",
        "email_verified": true,
    });
    let behaviour = p.state.lock().unwrap().behaviour.clone();
    merge(&mut claims, &behaviour.userinfo_claims);
    Json(claims).into_response()
}

/// Breaks a JWT's signature: one character changed well inside it (the last one may hold only
/// padding bits).
pub fn tamper_signature(jwt: &mut String) {
    let at = jwt.len() - 20;
    let flipped = if &jwt[at..=at] == "A" { "B" } else { "A" };
    jwt.replace_range(at..=at, flipped);
}

/// Applies `overrides` to a JSON object: a `null` removes the member.
pub fn merge(target: &mut Value, overrides: &Map<String, Value>) {
    let map = target.as_object_mut().unwrap();
    for (k, v) in overrides {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// The `at_hash` of an access token: the left half of its SHA-256 (RS256, ES256 and HS256 all
/// hash with SHA-256).
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// A compact JWS of `claims`, as `signer` makes it.
pub fn sign_jwt(signer: &Signer, claims: &Value) -> String {
    let (alg, kid) = match signer {
        Signer::Key { alg, kid, .. } => (*alg, *kid),
        Signer::Unsigned => ("none", None),
        Signer::Hmac(_) => ("HS256", None),
    };
    let mut header = json!({ "alg": alg, "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match signer {
        Signer::Key { key: Key::Ec, .. } => {
            use p256::ecdsa::signature::Signer as _;
            let signature: p256::ecdsa::Signature = ec_key().sign(input.as_bytes());
            signature.to_bytes().to_vec()
        }
        Signer::Key { key, .. } => rsa_key(*key)
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                input.as_bytes(),
            )
            .unwrap(),
        Signer::Unsigned => Vec::new(),
        Signer::Hmac(secret) => CoreHmacKey::new(secret.clone())
            .sign(&CoreJwsSigningAlgorithm::HmacSha256, input.as_bytes())
            .unwrap(),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Where an app keeps users and sessions. Apps started on the same `Stores` share them, as
/// instances behind a load balancer do.
#[derive(Clone)]
pub struct Stores {
    pub database_url: String,
    pub redis_url: Option<String>,
    _dir: Arc<TempDir>,
}

/// A server the test scripts start (`scripts/test-servers.sh`); tests that need one fail loudly
/// without it rather than skip.
fn test_server(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests with scripts/test.sh, which starts Redis and PostgreSQL")
    })
}

impl Stores {
    /// The embedded default: one SQLite file for users and sessions.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            database_url: format!("sqlite:{}/app.db", dir.path().display()),
            redis_url: None,
            _dir: Arc::new(dir),
        }
    }

    /// A fresh PostgreSQL database of its own, for users and sessions.
    pub async fn postgres() -> Self {
        use sqlx::{Connection, Executor};
        let admin_url = test_server("TEST_POSTGRES_URL");
        let name = format!("leptos_oidc_{}", unique_name());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Self {
            database_url: url.into(),
            ..Self::sqlite()
        }
    }

    /// PostgreSQL for users, Redis for sessions: the multi-instance set-up of the README.
    pub async fn postgres_and_redis() -> Self {
        Self {
            redis_url: Some(test_server("TEST_REDIS_URL")),
            ..Self::postgres().await
        }
    }

    /// SQLite for users, Redis for sessions.
    pub fn sqlite_and_redis() -> Self {
        Self {
            redis_url: Some(test_server("TEST_REDIS_URL")),
            ..Self::sqlite()
        }
    }
}

/// A name no other test (in this run or an earlier one) has used.
fn unique_name() -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{}_{n}", now(), std::process::id())
}

/// The app, in-process, on a free loopback port.
pub struct TestApp {
    pub url: String,
    pub database_url: String,
    pub client: reqwest::Client,
    issuer: String,
    stores: Stores,
    vars: Vec<(&'static str, String)>,
    stop: Option<Arc<tokio::sync::Notify>>,
    server: Option<Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>>,
}

/// The app with its own SQLite database.
pub async fn start_app(issuer: &str) -> TestApp {
    start_app_with(issuer, &Stores::sqlite(), &[]).await
}

/// The app on `stores`, with these settings beside the test's own.
pub async fn start_app_with(
    issuer: &str,
    stores: &Stores,
    vars: &[(&'static str, &str)],
) -> TestApp {
    let vars = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
    serve(
        issuer,
        stores.clone(),
        vars,
        "127.0.0.1:0".parse().unwrap(),
        browser(),
    )
    .await
}

async fn serve(
    issuer: &str,
    stores: Stores,
    extra: Vec<(&'static str, String)>,
    addr: SocketAddr,
    client: reqwest::Client,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut vars: HashMap<&str, String> = [
        ("OIDC_ISSUER", issuer.to_owned()),
        ("OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
        ("OIDC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("DATABASE_URL", stores.database_url.clone()),
        ("OIDC_TIMEOUT_SECONDS", "2".to_owned()),
    ]
    .into();
    if let Some(redis) = &stores.redis_url {
        vars.insert("SESSION_STORE", "redis".into());
        vars.insert("REDIS_URL", redis.clone());
    }
    vars.extend(extra.iter().cloned());
    let config = Config::from_lookup(addr, |name| vars.get(name).cloned()).unwrap();
    let options = LeptosOptions::builder()
        .output_name("leptos_oidc")
        .site_root(stores._dir.path().display().to_string())
        .site_addr(addr)
        .build();
    let router = leptos_oidc::server::app(config, options).await.unwrap();
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
        issuer: issuer.to_owned(),
        stores,
        vars: extra,
        stop: Some(stop),
        server: Some(Arc::new(Mutex::new(Some(server)))),
    }
}

/// A client that behaves as a browser for our purposes: keeps cookies, asks for HTML, and
/// lets the test follow redirects itself.
pub fn browser() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        "text/html,application/xhtml+xml".parse().unwrap(),
    );
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
}

impl TestApp {
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
            issuer: self.issuer.clone(),
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
            &self.issuer,
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
        if let Some(stop) = &self.stop {
            stop.notify_one();
        }
        let server = self.server.as_ref().and_then(|s| s.lock().unwrap().take());
        if let Some(server) = server {
            server.await.unwrap();
        }
        let addr = self.url.trim_start_matches("http://").parse().unwrap();
        serve(
            &self.issuer,
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

    /// The provider's redirect back for the sign-in that `authorize` started.
    pub async fn callback_for(&self, provider: &TestProvider, authorize: &str) -> Page {
        let code = provider.authorize(authorize);
        let state = query_param(authorize, "state");
        self.get(&format!(
            "/authorization-code/callback?code={code}&state={state}"
        ))
        .await
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

    /// The CSRF token from the sign-out form on the profile page.
    pub async fn csrf_token(&self) -> String {
        let body = self.get("/profile").await.body;
        let start = body
            .find("name=\"csrf\" value=\"")
            .expect("a sign-out form")
            + 19;
        body[start..start + body[start..].find('"').unwrap()].to_owned()
    }
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
    let body = response.text().await.unwrap();
    Page {
        status,
        location,
        body,
        set_cookie,
    }
}
