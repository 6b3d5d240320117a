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
    jwks_requests: usize,
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
    let at_hash = at_hash(&access_token);
    let now = now();
    let mut claims = json!({
        "iss": p.issuer,
        "sub": SUBJECT,
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": grant.nonce,
        "at_hash": at_hash,
        "sid": "provider-session-1",
    });
    merge(&mut claims, &behaviour.id_token_claims);
    let mut id_token = sign_jwt(&behaviour.signer, &claims);
    if behaviour.tamper_signature {
        // A character well inside the signature: the last one may hold only padding bits.
        let at = id_token.len() - 20;
        let flipped = if &id_token[at..=at] == "A" { "B" } else { "A" };
        id_token.replace_range(at..=at, flipped);
    }
    let mut response = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    });
    merge(&mut response, &behaviour.token_fields);
    Json(response).into_response()
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

fn merge(target: &mut Value, overrides: &Map<String, Value>) {
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

/// The app, in-process, on a free loopback port, with its own database.
pub struct TestApp {
    pub url: String,
    pub database_url: String,
    pub client: reqwest::Client,
    _dir: Arc<TempDir>,
}

pub async fn start_app(issuer: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let database_url = format!("sqlite:{}/app.db", dir.path().display());
    let vars: HashMap<&str, String> = [
        ("OIDC_ISSUER", issuer.to_owned()),
        ("OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
        ("OIDC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("DATABASE_URL", database_url.clone()),
        ("OIDC_TIMEOUT_SECONDS", "2".to_owned()),
    ]
    .into();
    let config = Config::from_lookup(addr, |name| vars.get(name).cloned()).unwrap();
    let options = LeptosOptions::builder()
        .output_name("leptos_oidc")
        .site_root(dir.path().display().to_string())
        .site_addr(addr)
        .build();
    let router = leptos_oidc::server::app(config, options).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestApp {
        url: format!("http://{addr}"),
        database_url,
        client: browser(),
        _dir: Arc::new(dir),
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
        TestApp {
            url: self.url.clone(),
            database_url: self.database_url.clone(),
            client: browser(),
            _dir: self._dir.clone(),
        }
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
        Users::new(
            leptos_oidc::users::open_database(&self.database_url)
                .await
                .unwrap(),
        )
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
