//! A small OpenID provider of our own that each test can make misbehave. It is honest by
//! default: real discovery, a real key set, RS256-signed ID tokens, HTTP Basic client
//! authentication and PKCE checks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
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
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    jwt::{at_hash, default_jwks, sign_jwt, sign_typed_jwt, tamper_signature, Signer},
    merge, now, unique_name,
};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const SUBJECT: &str = "alice-subject";

/// Whom the provider knows: the app's registration there, and the one user who signs in.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub client_id: &'static str,
    pub client_secret: &'static str,
    pub subject: &'static str,
    pub name: &'static str,
    pub email: &'static str,
}

impl Identity {
    pub const ALICE: Self = Self {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        subject: SUBJECT,
        name: "Alice Liddell",
        email: "alice@example.com",
    };
    /// At a second provider: another client, another user.
    pub const CAROL: Self = Self {
        client_id: "globex-client",
        client_secret: "globex-secret",
        subject: "carol-subject",
        name: "Carol Globex",
        email: "carol@globex.example",
    };
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
    /// Keep the refresh token across refreshes instead of rotating it (and send none back), as
    /// oidc-provider and Okta do for confidential clients.
    pub refresh_token_kept: bool,
    /// The user entered their credentials this many seconds before the first sign-in (a
    /// provider session from earlier): its ID tokens' `auth_time`.
    pub signed_in_ago: i64,
    /// The `acr` its ID tokens carry, unless a sign-in asks for one (`acr_values`).
    pub acr: Option<String>,
    /// Ignore `prompt=login`, `max_age` and `acr_values`: the old `auth_time` and `acr` stay.
    pub ignores_step_up: bool,
    /// The revocation endpoint waits this long before answering.
    pub revocation_delay: Option<std::time::Duration>,
    /// Overrides of the refreshed ID token's claims (`null` removes one).
    pub refresh_id_token_claims: Map<String, Value>,
    /// The client authenticates with `private_key_jwt`, its assertions signed by these keys
    /// (the app's `/.well-known/jwks.json`); its secret is then refused.
    pub client_jwks: Option<Value>,
    /// The client authenticates with its secret in the request body (`client_secret_post`),
    /// the only way the provider advertises; HTTP Basic is refused.
    pub client_secret_post: bool,
    /// The `aud` a client assertion must name (by default the issuer).
    pub assertion_audience: Option<String>,
    /// Require pushed authorization requests (RFC 9126): a request in the browser's URL is
    /// refused.
    pub require_par: bool,
    /// Offer no pushed authorization request endpoint.
    pub no_par_endpoint: bool,
    /// DPoP (RFC 9449): advertised, and required of the app's client (as oidc-provider's
    /// `dpop_bound_access_tokens`): every token request carries a proof, every access token is
    /// bound to its key, and userinfo takes a bound token only with a proof of that key.
    pub dpop: bool,
    /// Proofs must carry the provider's current nonce ([`TestProvider::new_dpop_nonce`]).
    pub dpop_nonce: bool,
    /// Refresh tokens are bound to the DPoP key too (as for public clients), not only to the
    /// client's authentication.
    pub dpop_binds_refresh: bool,
}

impl Behaviour {
    /// Access tokens that live `seconds`, with rotating refresh tokens: renewals within a test.
    pub fn short_tokens(seconds: i64) -> Self {
        Self {
            refresh_tokens: true,
            expires_in: Some(seconds),
            ..Self::default()
        }
    }
}

/// An access token issued, until it expires.
struct Issued {
    client: String,
    /// Unix seconds.
    expires_at: i64,
    /// The thumbprint of the DPoP key it is bound to, if it is.
    jkt: Option<String>,
}

struct Grant {
    nonce: String,
    code_challenge: String,
    redirect_uri: String,
    auth_time: i64,
    acr: Option<String>,
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
    /// When the user last entered their credentials here (the provider's own session).
    authenticated_at: Option<i64>,
    /// Access tokens issued, the client each was issued to, and when each expires (Unix
    /// seconds): userinfo and introspection take no other.
    access_tokens: HashMap<String, Issued>,
    /// The DPoP key each bound refresh token is bound to.
    refresh_jkt: HashMap<String, String>,
    /// The DPoP proofs taken, in order: their claims, with the `endpoint` and their key's `jkt`.
    dpop_proofs: Vec<Value>,
    /// Why DPoP proofs were refused, in order.
    dpop_refusals: Vec<String>,
    /// The `jti` of every proof seen: each usable once.
    dpop_jtis: std::collections::HashSet<String>,
    /// The nonce proofs must carry now, with `dpop_nonce`.
    dpop_nonce: String,
    introspection_requests: usize,
    /// Tokens revoked (RFC 7009), in order.
    revoked: Vec<String>,
    issued: usize,
    /// Every code and token handed out: what must never show in the app's logs or traces.
    secrets: Vec<String>,
    /// The `traceparent` of each call to the token and userinfo endpoints that had one.
    traceparents: Vec<String>,
    userinfo_requests: usize,
    /// How many userinfo calls still get a 401, whatever their token.
    userinfo_refusals: usize,
    /// The claims of every client assertion taken, in order; their `jti`s, each usable once.
    assertions: Vec<Value>,
    /// Why client assertions were refused, in order.
    assertion_refusals: Vec<String>,
    /// Pushed authorization requests, by their `request_uri`, until used.
    pushed: HashMap<String, HashMap<String, String>>,
    par_requests: usize,
}

pub struct TestProvider {
    pub issuer: String,
    pub identity: Identity,
    state: Arc<Mutex<ProviderState>>,
}

struct Shared {
    issuer: String,
    identity: Identity,
    state: Arc<Mutex<ProviderState>>,
}

impl TestProvider {
    /// A provider that knows Alice and the app as `test-client`.
    pub async fn start() -> Self {
        Self::start_with(Identity::ALICE).await
    }

    /// A provider that is down: nothing listens at its issuer (port 1; a port freed by a test
    /// could be handed to the app itself).
    pub async fn down() -> Self {
        Self {
            issuer: "http://127.0.0.1:1".into(),
            ..Self::start().await
        }
    }

    pub async fn start_with(identity: Identity) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProviderState {
            dpop_nonce: format!("nonce-{}", unique_name()),
            ..ProviderState::default()
        }));
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            identity,
            state: state.clone(),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/keys/current", get(jwks))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/introspect", post(introspect))
            .route("/revoke", post(revoke))
            .route("/par", post(par))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            issuer,
            identity,
            state,
        }
    }

    /// The claims of a valid back-channel logout token from this provider, for its user's
    /// provider session `provider-session-1`.
    pub fn logout_claims(&self) -> Value {
        logout_claims_of(&self.issuer, &self.identity)
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

    pub fn userinfo_requests(&self) -> usize {
        self.state.lock().unwrap().userinfo_requests
    }

    /// The next `calls` userinfo calls are refused with a 401 (`invalid_token`).
    pub fn refuse_userinfo(&self, calls: usize) {
        self.state.lock().unwrap().userinfo_refusals = calls;
    }

    /// The tokens revoked at this provider so far.
    pub fn revoked(&self) -> Vec<String> {
        self.state.lock().unwrap().revoked.clone()
    }

    /// The tokens revoked at this provider once there are `n` (revocation runs in the
    /// background), or after two seconds, however many there are then.
    pub async fn revoked_at_least(&self, n: usize) -> Vec<String> {
        for _ in 0..40 {
            if self.revoked().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.revoked()
    }

    /// How many authorization requests were pushed (RFC 9126).
    pub fn par_requests(&self) -> usize {
        self.state.lock().unwrap().par_requests
    }

    /// The DPoP proofs taken so far: their claims, with the `endpoint` (`token`, `userinfo`),
    /// the thumbprint of their key (`jkt`) and the `proof` itself.
    pub fn dpop_proofs(&self) -> Vec<Value> {
        self.state.lock().unwrap().dpop_proofs.clone()
    }

    /// Why DPoP proofs were refused so far.
    pub fn dpop_refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().dpop_refusals.clone()
    }

    /// Makes a new DPoP nonce the only good one, as a provider does from time to time.
    pub fn new_dpop_nonce(&self) {
        self.state.lock().unwrap().dpop_nonce = format!("nonce-{}", unique_name());
    }

    /// What the provider's userinfo endpoint answers to this request, as any client could send
    /// it: its status and body.
    pub async fn userinfo_with(&self, authorization: &str, proof: &str) -> (u16, String) {
        let answer = reqwest::Client::new()
            .get(format!("{}/userinfo", self.issuer))
            .header("authorization", authorization)
            .header("dpop", proof)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    /// The claims of the client assertions taken so far.
    pub fn assertions(&self) -> Vec<Value> {
        self.state.lock().unwrap().assertions.clone()
    }

    /// Why client assertions were refused so far.
    pub fn assertion_refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().assertion_refusals.clone()
    }

    pub fn introspection_requests(&self) -> usize {
        self.state.lock().unwrap().introspection_requests
    }

    /// An opaque access token for `client`, good for `seconds`, as the client credentials
    /// grant would give one.
    pub fn opaque_access_token(&self, client: &str, seconds: i64) -> String {
        let mut state = self.state.lock().unwrap();
        state.issued += 1;
        let token = format!("at-opaque-{}-{}", state.issued, unique_name());
        let issued = Issued {
            client: client.to_owned(),
            expires_at: now() + seconds,
            jkt: None,
        };
        state.access_tokens.insert(token.clone(), issued);
        token
    }

    /// A JWT access token (RFC 9068) for the app's client about the provider's user, signed as
    /// the provider signs ID tokens, with `changes` made to its claims (`null` removes one).
    pub fn jwt_access_token(&self, changes: Value) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer, "aud": self.identity.client_id, "sub": self.identity.subject,
            "client_id": self.identity.client_id, "iat": now, "exp": now + 300,
            "jti": unique_name(), "scope": "openid email",
        });
        merge(&mut claims, changes.as_object().unwrap());
        let signer = self.state.lock().unwrap().behaviour.signer.clone();
        sign_typed_jwt(&signer, "at+jwt", &claims)
    }

    /// Every code and token this provider handed out.
    pub fn secrets(&self) -> Vec<String> {
        self.state.lock().unwrap().secrets.clone()
    }

    /// The `traceparent` headers the app sent to the token and userinfo endpoints.
    pub fn traceparents(&self) -> Vec<String> {
        self.state.lock().unwrap().traceparents.clone()
    }

    /// What the provider's login and consent pages would do: takes the app's authorization
    /// URL, checks it, and returns the code the provider redirects back with.
    pub fn authorize(&self, authorization_url: &str) -> String {
        self.redirect_back(authorization_url).0
    }

    /// As [`TestProvider::authorize`]: the code, and the `state` the redirect back carries (a
    /// pushed request's own, when the browser's URL only refers to it).
    pub fn redirect_back(&self, authorization_url: &str) -> (String, String) {
        let url = Url::parse(authorization_url).unwrap();
        let mut q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        // A pushed request: the browser carries its reference and the client id only.
        if let Some(request_uri) = q.get("request_uri").cloned() {
            assert_eq!(q.len(), 2, "more than client_id and request_uri: {q:?}");
            let pushed = self.state.lock().unwrap().pushed.remove(&request_uri);
            let pushed = pushed.expect("a request_uri this provider gave, used once");
            assert_eq!(pushed["client_id"], q["client_id"]);
            q = pushed;
        } else if self.state.lock().unwrap().behaviour.require_par {
            panic!("the provider requires pushed authorization requests: {authorization_url}");
        }
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], self.identity.client_id);
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["scope"].split(' ').any(|s| s == "openid"));
        let code = format!("code-{}", q["state"]);
        let mut state = self.state.lock().unwrap();
        let behaviour = state.behaviour.clone();
        // A step-up: credentials asked for again (`prompt=login`, or an older sign-in than
        // `max_age`), and the class of sign-in asked for (`acr_values`), unless ignored.
        let now = now();
        let max_age = q.get("max_age").and_then(|m| m.parse::<i64>().ok());
        let last = *state
            .authenticated_at
            .get_or_insert(now - behaviour.signed_in_ago);
        let again = q
            .get("prompt")
            .is_some_and(|p| p.split(' ').any(|p| p == "login"))
            || max_age.is_some_and(|max_age| now - last > max_age);
        let auth_time = match again && !behaviour.ignores_step_up {
            true => now,
            false => last,
        };
        state.authenticated_at = Some(auth_time);
        let acr = match q.get("acr_values") {
            Some(values) if !behaviour.ignores_step_up => {
                values.split(' ').next().map(str::to_owned)
            }
            _ => behaviour.acr,
        };
        state.secrets.push(code.clone());
        state.grants.insert(
            code.clone(),
            Grant {
                nonce: q["nonce"].clone(),
                code_challenge: q["code_challenge"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
                auth_time,
                acr,
            },
        );
        (code, q["state"].clone())
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
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    });
    let state = p.state.lock().unwrap();
    if !state.behaviour.no_par_endpoint {
        document["pushed_authorization_request_endpoint"] = json!(format!("{i}/par"));
    }
    document["require_pushed_authorization_requests"] = json!(state.behaviour.require_par);
    if state.behaviour.dpop {
        document["dpop_signing_alg_values_supported"] = json!(["ES256"]);
    }
    if state.behaviour.client_secret_post {
        document["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
    }
    if state.behaviour.client_jwks.is_some() {
        document["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
        document["token_endpoint_auth_signing_alg_values_supported"] =
            json!(["ES256", "PS256", "RS256"]);
    }
    merge(&mut document, &state.behaviour.discovery);
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
    note_traceparent(&p, &headers);
    {
        let mut state = p.state.lock().unwrap();
        state.token_requests += 1;
        if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
            state.refresh_requests += 1;
        }
    }
    // The client first, then its proof, as oidc-provider does: a refused proof uses up neither
    // the code nor the refresh token.
    if !client_authenticated(&p, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let jkt = match token_proof(&p, &headers) {
        Ok(jkt) => jkt,
        Err((error, why)) => return dpop_refusal(&p, false, error, why),
    };
    let (grant, behaviour) = {
        let mut state = p.state.lock().unwrap();
        let grant = form.get("code").and_then(|c| state.grants.remove(c));
        (grant, state.behaviour.clone())
    };
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh(&p, &behaviour, form.get("refresh_token"), jkt).await;
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
    let mut claims = id_token_claims(&p, &access_token);
    claims["nonce"] = grant.nonce.into();
    claims["sid"] = "provider-session-1".into();
    claims["auth_time"] = grant.auth_time.into();
    if let Some(acr) = grant.acr {
        claims["acr"] = acr.into();
    }
    merge(&mut claims, &behaviour.id_token_claims);
    let mut id_token = sign_jwt(&behaviour.signer, &claims);
    if behaviour.tamper_signature {
        tamper_signature(&mut id_token);
    }
    keep_tokens(
        &p,
        &access_token,
        &id_token,
        behaviour.expires_in,
        jkt.clone(),
    );
    let mut response = json!({
        "access_token": access_token,
        "token_type": token_type(&jkt),
        "expires_in": behaviour.expires_in.unwrap_or(300),
        "id_token": id_token,
    });
    if behaviour.refresh_tokens {
        response["refresh_token"] = new_refresh_token(&p, &behaviour, &jkt).into();
    }
    merge(&mut response, &behaviour.token_fields);
    Json(response).into_response()
}

/// A valid ID token's claims, for `access_token`: what both grants start from.
fn id_token_claims(p: &Shared, access_token: &str) -> Value {
    let now = now();
    json!({
        "iss": p.issuer,
        "sub": p.identity.subject,
        "aud": p.identity.client_id,
        "exp": now + 300,
        "iat": now,
        "at_hash": at_hash(access_token),
    })
}

/// Notes the tokens of an answer: secrets never to be logged, and an access token good for
/// `expires_in` seconds, bound to the DPoP key `jkt` if there is one.
fn keep_tokens(
    p: &Shared,
    access_token: &str,
    id_token: &str,
    expires_in: Option<i64>,
    jkt: Option<String>,
) {
    let mut state = p.state.lock().unwrap();
    let issued = Issued {
        client: p.identity.client_id.to_owned(),
        expires_at: now() + expires_in.unwrap_or(300),
        jkt,
    };
    state.access_tokens.insert(access_token.into(), issued);
    state.secrets.extend([access_token.into(), id_token.into()]);
}

/// A bound access token is a DPoP one.
fn token_type(jkt: &Option<String>) -> &'static str {
    match jkt {
        Some(_) => "DPoP",
        None => "Bearer",
    }
}

fn new_refresh_token(p: &Shared, behaviour: &Behaviour, jkt: &Option<String>) -> String {
    let mut state = p.state.lock().unwrap();
    state.issued += 1;
    let token = format!("rt-{}-{}", state.issued, unique_name());
    state.refresh_tokens.insert(token.clone());
    if let (true, Some(jkt)) = (behaviour.dpop_binds_refresh, jkt) {
        state.refresh_jkt.insert(token.clone(), jkt.clone());
    }
    state.secrets.push(token.clone());
    token
}

/// The refresh grant: a known refresh token is used up and a new one issued with new tokens
/// (or, with `refresh_token_kept`, it stays good and only the tokens are new).
/// A refresh token bound to a DPoP key works only with a proof of that key.
async fn refresh(
    p: &Shared,
    behaviour: &Behaviour,
    token: Option<&String>,
    jkt: Option<String>,
) -> Response {
    if let Some(delay) = behaviour.refresh_delay {
        tokio::time::sleep(delay).await;
    }
    let known = token.is_some_and(|t| {
        let mut state = p.state.lock().unwrap();
        if state
            .refresh_jkt
            .get(t)
            .is_some_and(|bound| Some(bound) != jkt.as_ref())
        {
            state
                .dpop_refusals
                .push("a refresh token bound to another key".into());
            return false;
        }
        match behaviour.refresh_token_kept {
            true => state.refresh_tokens.contains(t),
            false => state.refresh_tokens.remove(t),
        }
    });
    if !known || behaviour.refresh_refused {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let issued = {
        let mut state = p.state.lock().unwrap();
        state.issued += 1;
        state.issued
    };
    let access_token = format!("at-refreshed-{issued}");
    let mut claims = id_token_claims(p, &access_token);
    merge(&mut claims, &behaviour.refresh_id_token_claims);
    let id_token = sign_jwt(&behaviour.signer, &claims);
    keep_tokens(
        p,
        &access_token,
        &id_token,
        behaviour.expires_in,
        jkt.clone(),
    );
    let mut response = json!({
        "access_token": access_token,
        "token_type": token_type(&jkt),
        "expires_in": behaviour.expires_in.unwrap_or(300),
        "id_token": id_token,
    });
    if !behaviour.refresh_token_kept {
        response["refresh_token"] = new_refresh_token(p, behaviour, &jkt).into();
    }
    Json(response).into_response()
}

/// The claims of a valid back-channel logout token for `sid` (and `sub`): change them to make
/// it invalid.
pub fn logout_claims(issuer: &str) -> Value {
    logout_claims_of(issuer, &Identity::ALICE)
}

fn logout_claims_of(issuer: &str, identity: &Identity) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": identity.subject,
        "aud": identity.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": format!("jti-{}", unique_name()),
        "sid": "provider-session-1",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    })
}

fn note_traceparent(p: &Shared, headers: &HeaderMap) {
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let mut state = p.state.lock().unwrap();
        state.traceparents.push(traceparent.to_owned());
    }
}

/// Whether the request authenticates the app's client: with its secret (`client_secret_basic`,
/// or `client_secret_post` when registered so), or, when the client is registered with keys,
/// with a client assertion (`private_key_jwt`), each of which is checked and noted (a refusal
/// with why).
fn client_authenticated(p: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let (jwks, audience, post) = {
        let state = p.state.lock().unwrap();
        let b = &state.behaviour;
        (
            b.client_jwks.clone(),
            b.assertion_audience.clone(),
            b.client_secret_post,
        )
    };
    if post {
        let id = &p.identity;
        return !headers.contains_key(header::AUTHORIZATION)
            && form.get("client_id").map(String::as_str) == Some(id.client_id)
            && form.get("client_secret").map(String::as_str) == Some(id.client_secret);
    }
    let Some(jwks) = jwks else {
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                p.identity.client_id, p.identity.client_secret
            ))
        );
        return headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(&expected);
    };
    let audience = audience.unwrap_or_else(|| p.issuer.clone());
    let checked = check_assertion(p, &jwks, &audience, headers, form);
    let mut state = p.state.lock().unwrap();
    match checked {
        Ok(claims) => {
            let jti = claims["jti"].clone();
            if state.assertions.iter().any(|seen| seen["jti"] == jti) {
                state.assertion_refusals.push("a jti used before".into());
                return false;
            }
            state.assertions.push(claims);
            true
        }
        Err(why) => {
            state.assertion_refusals.push(why);
            false
        }
    }
}

/// A compact JWS, split: nothing in it is trusted until [`verify`] says so.
struct Jws<'a> {
    /// What the signature covers.
    input: &'a str,
    signature: Vec<u8>,
    header: Value,
    claims: Value,
}

impl<'a> Jws<'a> {
    fn split(jws: &'a str) -> Result<Self, String> {
        let (input, signature) = jws.rsplit_once('.').ok_or("not a JWT")?;
        let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|e| e.to_string());
        let part = |n: usize| -> Result<Value, String> {
            let text = input.split('.').nth(n).ok_or("not a JWT")?;
            serde_json::from_slice(&decode(text)?).map_err(|e| e.to_string())
        };
        Ok(Self {
            input,
            signature: decode(signature)?,
            header: part(0)?,
            claims: part(1)?,
        })
    }
}

/// Checks a JWS signature (of `input`) made by `alg` with the public `key`, a JWK.
fn verify(key: &Value, alg: Option<&str>, input: &str, signature: &[u8]) -> Result<(), String> {
    use ring::signature;
    let b64 = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(key[name].as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let verified = match alg {
        Some("ES256") => {
            let point = [vec![4], b64("x"), b64("y")].concat();
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), signature)
        }
        Some(alg @ ("PS256" | "RS256")) => {
            let key = signature::RsaPublicKeyComponents {
                n: b64("n"),
                e: b64("e"),
            };
            let params = if alg == "PS256" {
                &signature::RSA_PSS_2048_8192_SHA256
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            key.verify(params, input.as_bytes(), signature)
        }
        other => return Err(format!("signed with {other:?}")),
    };
    verified.map_err(|_| "a bad signature".to_owned())
}

/// A client assertion's claims, when it is one the app's client signed for this provider.
fn check_assertion(
    p: &Shared,
    jwks: &Value,
    audience: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Value, String> {
    if headers.contains_key(header::AUTHORIZATION) || form.contains_key("client_secret") {
        return Err("a client secret was sent".into());
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err("no client_assertion_type".into());
    }
    let assertion = form.get("client_assertion").ok_or("no client_assertion")?;
    let Jws {
        input,
        signature,
        header,
        mut claims,
    } = Jws::split(assertion)?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .ok_or("signed with a key the client did not publish")?;
    verify(key, header["alg"].as_str(), input, &signature)?;
    let client = p.identity.client_id;
    if claims["iss"] != client || claims["sub"] != client {
        return Err("iss or sub is not the client".into());
    }
    if form.get("client_id").is_some_and(|id| id != client) {
        return Err("another client_id".into());
    }
    if claims["aud"] != audience {
        return Err(format!("aud is {}, not {audience}", claims["aud"]));
    }
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if exp <= now() || exp > now() + 300 {
        return Err("exp is past, or too far".into());
    }
    if !claims["jti"].is_string() {
        return Err("no jti".into());
    }
    // Noted with its header, for the tests to see the key and algorithm.
    claims["header"] = header;
    Ok(claims)
}

/// The DPoP key a token request proves it holds (its thumbprint), when the provider takes
/// DPoP; or the error and why.
fn token_proof(p: &Shared, headers: &HeaderMap) -> Result<Option<String>, (&'static str, String)> {
    if !p.state.lock().unwrap().behaviour.dpop {
        return Ok(None); // a provider that knows nothing of DPoP ignores the header
    }
    check_proof(p, headers, "POST", "/token", None).map(Some)
}

/// A DPoP refusal, noted: the token endpoint's 400 with the error in its JSON, or a resource's
/// 401 with it in `WWW-Authenticate`; with the current nonce when one is required.
fn dpop_refusal(p: &Shared, resource: bool, error: &str, why: String) -> Response {
    let mut state = p.state.lock().unwrap();
    state.dpop_refusals.push(why);
    let mut response = match resource {
        true => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!("DPoP error=\"{error}\", algs=\"ES256\""),
            )],
        )
            .into_response(),
        false => oauth_error(StatusCode::BAD_REQUEST, error),
    };
    if state.behaviour.dpop_nonce {
        response
            .headers_mut()
            .insert("dpop-nonce", state.dpop_nonce.parse().unwrap());
    }
    response
}

/// Checks the DPoP proof of a `method` request to `path` here (RFC 9449, 4.3): one `DPoP`
/// header, a `dpop+jwt` signed with the public key it carries, the request's method and URL,
/// a recent `iat`, a `jti` never seen, the token's hash (`ath`) when a token is sent, and the
/// current nonce when nonces are required. The key's thumbprint, or the error and why.
fn check_proof(
    p: &Shared,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<String, (&'static str, String)> {
    let invalid = |why: &str| ("invalid_dpop_proof", why.to_owned());
    let mut proofs = headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err(invalid("not one DPoP header"));
    };
    let proof = proof.to_str().map_err(|_| invalid("not text"))?;
    let Jws {
        input,
        signature,
        header,
        mut claims,
    } = Jws::split(proof).map_err(|why| invalid(&why))?;
    let jwk = &header["jwk"];
    if header["typ"] != "dpop+jwt" || jwk["kty"] != "EC" || jwk.get("d").is_some() {
        return Err(invalid("not a dpop+jwt with a public EC key"));
    }
    verify(jwk, header["alg"].as_str(), input, &signature).map_err(|why| invalid(&why))?;
    let mut state = p.state.lock().unwrap();
    if claims["htm"] != method || claims["htu"] != format!("{}{path}", p.issuer) {
        return Err(invalid("htm or htu is not this request's"));
    }
    if claims["iat"]
        .as_i64()
        .is_none_or(|iat| (now() - iat).abs() > 60)
    {
        return Err(invalid("iat is not recent"));
    }
    let jti = claims["jti"].as_str().ok_or(invalid("no jti"))?;
    if !state.dpop_jtis.insert(jti.to_owned()) {
        return Err(invalid("a jti used before"));
    }
    let ath = access_token.map(|token| URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
    if claims.get("ath").and_then(Value::as_str) != ath.as_deref() {
        return Err(invalid("ath is not the token's hash"));
    }
    if state.behaviour.dpop_nonce && claims["nonce"] != state.dpop_nonce.as_str() {
        return Err(("use_dpop_nonce", "no nonce, or an old one".into()));
    }
    let canonical = format!(
        r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
        jwk["crv"], jwk["x"], jwk["y"]
    );
    let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    claims["endpoint"] = json!(path.trim_start_matches('/'));
    claims["proof"] = json!(proof);
    claims["jkt"] = json!(jkt);
    state.dpop_proofs.push(claims);
    Ok(jkt)
}

/// RFC 7662 introspection, for the app's client: an access token it issued and that has not
/// expired is active, with the client it was issued to; anything else is not.
async fn introspect(
    State(p): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    p.state.lock().unwrap().introspection_requests += 1;
    if !client_authenticated(&p, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let state = p.state.lock().unwrap();
    let issued = form
        .get("token")
        .and_then(|token| state.access_tokens.get(token))
        .filter(|issued| now() < issued.expires_at);
    match issued {
        Some(issued) => Json(json!({
            "active": true, "client_id": issued.client, "sub": p.identity.subject,
            "exp": issued.expires_at, "iss": p.issuer, "token_type": token_type(&issued.jkt),
            "scope": "openid email",
        }))
        .into_response(),
        None => Json(json!({ "active": false })).into_response(),
    }
}

/// RFC 9126: a pushed authorization request from the app's client, kept for one use by its
/// `request_uri`.
async fn par(
    State(p): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    p.state.lock().unwrap().par_requests += 1;
    if !client_authenticated(&p, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("client_id").map(String::as_str) != Some(p.identity.client_id) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let request: HashMap<String, String> = form
        .into_iter()
        .filter(|(name, _)| !name.starts_with("client_assertion") && name != "client_secret")
        .collect();
    let request_uri = format!("urn:ietf:params:oauth:request_uri:{}", unique_name());
    p.state
        .lock()
        .unwrap()
        .pushed
        .insert(request_uri.clone(), request);
    (
        StatusCode::CREATED,
        Json(json!({ "request_uri": request_uri, "expires_in": 60 })),
    )
        .into_response()
}

/// RFC 7009 revocation, for the app's client: the token stops working (a refresh token can no
/// longer refresh, an access token no longer opens userinfo or passes introspection).
async fn revoke(
    State(p): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let delay = p.state.lock().unwrap().behaviour.revocation_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if !client_authenticated(&p, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(token) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let mut state = p.state.lock().unwrap();
    state.refresh_tokens.remove(token);
    state.access_tokens.remove(token);
    state.revoked.push(token.clone());
    StatusCode::OK.into_response()
}

async fn userinfo(State(p): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    note_traceparent(&p, &headers);
    {
        let mut state = p.state.lock().unwrap();
        state.userinfo_requests += 1;
        if state.userinfo_refusals > 0 {
            state.userinfo_refusals -= 1;
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
    }
    // `Bearer <token>`, or `DPoP <token>` with a proof of the key the token is bound to.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, token) = authorization.split_once(' ').unwrap_or_default();
    let issued = {
        let state = p.state.lock().unwrap();
        let issued = state.access_tokens.get(token);
        issued.map(|issued| (issued.expires_at, issued.jkt.clone()))
    };
    let Some((_, jkt)) = issued.filter(|(expires_at, _)| now() < *expires_at) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    match (scheme, jkt) {
        ("Bearer", None) => {}
        ("DPoP", Some(jkt)) => match check_proof(&p, &headers, "GET", "/userinfo", Some(token)) {
            Ok(proved) if proved == jkt => {}
            Ok(_) => {
                return dpop_refusal(&p, true, "invalid_token", "a proof of another key".into())
            }
            Err((error, why)) => return dpop_refusal(&p, true, error, why),
        },
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token"),
    }

    let mut claims = json!({
        "sub": p.identity.subject,
        "name": p.identity.name,
        "email": p.identity.email,
        "email_verified": true,
    });
    let behaviour = p.state.lock().unwrap().behaviour.clone();
    merge(&mut claims, &behaviour.userinfo_claims);
    Json(claims).into_response()
}
