//! DPoP (RFC 9449): the access token bound to a key pair of the session's own, so that a copy of
//! the token is of no use without the key. Every request made with the token (userinfo, the
//! APIs a page calls), and every token request that gets one (the code exchange, refreshes),
//! carries a proof: a JWT signed with the key, naming the request's method and URL (`htm`,
//! `htu`), the token's hash (`ath`), and the server's latest nonce when it gives them.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Mutex};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    reqwest, AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse,
};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    client_auth::{ec_jwk, new_jti, thumbprint, unix_now},
    http::Client,
    jwt::signing_input,
    OidcError,
};

/// The error a server answers when a proof lacks its current nonce (RFC 9449, 8 and 9).
pub(super) const USE_NONCE: &str = "use_dpop_nonce";

/// A session's DPoP key: P-256, signing with ES256. The session keeps it (sealed, like its
/// tokens) as [`DpopKey::generate`] gives it, read back by [`DpopKey::from_stored`].
pub struct DpopKey {
    pair: EcdsaKeyPair,
    /// The public key, as proofs carry it.
    jwk: Value,
    random: SystemRandom,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its thumbprint only: never the key.
        f.debug_tuple("DpopKey").field(&self.thumbprint()).finish()
    }
}

impl DpopKey {
    /// A new key, and what the session keeps of it.
    pub fn generate() -> (Self, String) {
        let random = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
            .expect("a P-256 key can be made");
        let stored = URL_SAFE_NO_PAD.encode(pkcs8.as_ref());
        let key = Self::from_stored(&stored).expect("a key just made reads back");
        (key, stored)
    }

    /// The key a session keeps ([`DpopKey::generate`]).
    pub fn from_stored(stored: &str) -> Result<Self, OidcError> {
        let damaged = || OidcError::TokenRefused("the session's DPoP key is damaged".into());
        let pkcs8 = URL_SAFE_NO_PAD.decode(stored).map_err(|_| damaged())?;
        let random = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &random)
            .map_err(|_| damaged())?;
        Ok(Self {
            jwk: ec_jwk(&pair),
            pair,
            random,
        })
    }

    /// The RFC 7638 thumbprint of the public key: what a bound token's `cnf.jkt` names.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.jwk)
    }

    /// A new proof (new `jti`) for a `method` request to `url` (its query and fragment left
    /// out), made with `access_token` when one is sent, with the server's `nonce` when it gave
    /// one.
    pub fn proof(
        &self,
        method: &Method,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, OidcError> {
        let failed = |why: String| OidcError::Misconfigured(format!("DPoP proof: {why}"));
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        let mut claims = json!({
            "jti": new_jti(&self.random).map_err(failed)?,
            "htm": method.as_str(),
            "htu": htu.as_str(),
            "iat": unix_now(),
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let input = signing_input(&header, &claims);
        let signature = self
            .pair
            .sign(&self.random, input.as_bytes())
            .map_err(|_| failed("signing failed".into()))?;
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// The latest nonce each server gave (`DPoP-Nonce`), by origin: the provider's token endpoint
/// and its userinfo, an API's. Nonces are the server's, not a session's: every session's next
/// proof to that server carries it.
#[derive(Debug, Default)]
pub struct Nonces(Mutex<HashMap<String, String>>);

impl Nonces {
    fn of(&self, url: &Url) -> Option<String> {
        let nonces = self.0.lock().unwrap_or_else(|e| e.into_inner());
        nonces.get(&url.origin().ascii_serialization()).cloned()
    }

    /// Keeps the nonce an answer from `url` gives, and returns it.
    fn note<'h>(&self, url: &Url, headers: &'h HeaderMap) -> Option<&'h str> {
        let nonce = headers.get("dpop-nonce")?.to_str().ok()?;
        let mut nonces = self.0.lock().unwrap_or_else(|e| e.into_inner());
        nonces.insert(url.origin().ascii_serialization(), nonce.to_owned());
        Some(nonce)
    }
}

/// Makes a request to `url` carry a proof of `key`: a token it sends as `Authorization: Bearer`
/// goes as `Authorization: DPoP` instead, its hash in the proof. Returns the nonce the proof
/// carries.
fn attach(
    key: &DpopKey,
    nonces: &Nonces,
    method: &Method,
    url: &Url,
    headers: &mut HeaderMap,
) -> Result<Option<String>, OidcError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let nonce = nonces.of(url);
    let proof = key.proof(method, url, token.as_deref(), nonce.as_deref())?;
    let value = |text: String| {
        HeaderValue::from_str(&text)
            .map_err(|_| OidcError::Misconfigured("a DPoP header that is not one".into()))
    };
    if let Some(token) = token {
        let mut authorization = value(format!("DPoP {token}"))?;
        authorization.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, authorization);
    }
    headers.insert("dpop", value(proof)?);
    Ok(nonce)
}

/// Whether an answer from `url` to a proof that carried the nonce `sent` asks for the request
/// again with another nonce, which it gives: a resource server's 401 with
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"` (a token endpoint's 400 says so in its JSON,
/// which the caller reads). Every nonce given is kept for the next proofs.
fn wants_nonce(
    nonces: &Nonces,
    url: &Url,
    sent: Option<&str>,
    status: StatusCode,
    headers: &HeaderMap,
) -> bool {
    let given = nonces.note(url, headers);
    given.is_some_and(|given| Some(given) != sent)
        && status == StatusCode::UNAUTHORIZED
        && headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(USE_NONCE))
}

/// What [`send`] needs of an answer: its status and headers.
pub trait Answer {
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &HeaderMap;
}

impl Answer for HttpResponse {
    fn status(&self) -> StatusCode {
        HttpResponse::status(self)
    }
    fn headers(&self) -> &HeaderMap {
        HttpResponse::headers(self)
    }
}

impl Answer for reqwest::Response {
    fn status(&self) -> StatusCode {
        reqwest::Response::status(self)
    }
    fn headers(&self) -> &HeaderMap {
        reqwest::Response::headers(self)
    }
}

/// Sends a `method` request to `url` with `headers` by `send`, with a proof of `key` (a token
/// sent as `Authorization: Bearer` goes as `DPoP`, [`attach`]); once more, with a new proof,
/// when a resource server answers for a nonce it gives ([`wants_nonce`]). A proof that cannot
/// be made is told by `unproved`.
pub async fn send<A: Answer, E, F>(
    (key, nonces): (&DpopKey, &Nonces),
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    unproved: impl Fn(OidcError) -> E,
    mut send: impl FnMut(HeaderMap) -> F,
) -> Result<A, E>
where
    F: Future<Output = Result<A, E>>,
{
    let mut retried = false;
    loop {
        let mut proved = headers.clone();
        let sent = attach(key, nonces, method, url, &mut proved).map_err(&unproved)?;
        let answer = send(proved).await?;
        let status = answer.status();
        if retried || !wants_nonce(nonces, url, sent.as_deref(), status, answer.headers()) {
            return Ok(answer);
        }
        retried = true;
    }
}

/// How openidconnect's requests reach the provider: through its client, each with a proof of
/// the session's key when it has one ([`send`]). A token request is retried for a nonce by its
/// caller, which must make a new client assertion too.
pub(super) struct Caller<'a> {
    pub client: &'a Client,
    pub dpop: Option<(&'a DpopKey, &'a Nonces)>,
}

type CallError = HttpClientError<reqwest::Error>;

impl<'c> AsyncHttpClient<'c> for Caller<'_> {
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let Some(dpop) = self.dpop else {
                return self.client.call(request).await;
            };
            let (parts, body) = request.into_parts();
            let url = Url::parse(&parts.uri.to_string())
                .map_err(|e| CallError::Other(format!("not a URL: {e}")))?;
            let unproved = |e: OidcError| CallError::Other(e.to_string());
            send(
                dpop,
                &parts.method,
                &url,
                &parts.headers,
                unproved,
                |headers| {
                    let request = openidconnect::http::Request::builder()
                        .method(parts.method.clone())
                        .uri(parts.uri.clone())
                        .body(body.clone());
                    async move {
                        let mut request = request.map_err(CallError::Http)?;
                        *request.headers_mut() = headers;
                        self.client.call(request).await
                    }
                },
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    /// A proof's header and claims, after checking its signature with the key it carries.
    fn verified(proof: &str) -> (Value, Value) {
        let (input, signature) = proof.rsplit_once('.').unwrap();
        let part = |n: usize| -> Value {
            let text = input.split('.').nth(n).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
        };
        let (header, claims) = (part(0), part(1));
        let b64 = |name: &str| URL_SAFE_NO_PAD.decode(header["jwk"][name].as_str().unwrap());
        let point = [vec![4], b64("x").unwrap(), b64("y").unwrap()].concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .expect("signed with the key it carries");
        (header, claims)
    }

    #[test]
    fn a_proof_names_the_request_and_the_token_and_is_new_each_time() {
        let (key, stored) = DpopKey::generate();
        let url = Url::parse("https://api.example/v1/items?page=2#top").unwrap();
        let proof = key.proof(&Method::GET, &url, Some("at-1"), None).unwrap();
        let (header, claims) = verified(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(
            header["jwk"].get("d").is_none(),
            "the private key stays home"
        );
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://api.example/v1/items");
        // RFC 9449, 4.2: ath is the base64url SHA-256 of the token's ASCII.
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"at-1"));
        assert_eq!(claims["ath"], ath);
        assert!(claims.get("nonce").is_none());
        assert!((claims["iat"].as_u64().unwrap() as i64 - unix_now() as i64).abs() <= 1);
        let again = key.proof(&Method::GET, &url, Some("at-1"), None).unwrap();
        assert_ne!(verified(&again).1["jti"], claims["jti"]);
        // The session's copy is the same key.
        let kept = DpopKey::from_stored(&stored).unwrap();
        assert_eq!(kept.thumbprint(), key.thumbprint());
        assert!(matches!(
            DpopKey::from_stored("not a key"),
            Err(OidcError::TokenRefused(_))
        ));
    }

    #[test]
    fn a_bearer_request_becomes_a_dpop_one_with_the_servers_nonce() {
        let (key, _) = DpopKey::generate();
        let nonces = Nonces::default();
        let url = Url::parse("https://idp.example/userinfo").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer at-1".parse().unwrap());
        let sent = attach(&key, &nonces, &Method::GET, &url, &mut headers).unwrap();
        assert_eq!(sent, None);
        assert_eq!(headers[header::AUTHORIZATION], "DPoP at-1");
        let (_, claims) = verified(headers["dpop"].to_str().unwrap());
        assert!(claims.get("nonce").is_none());

        // The server asks for a nonce: the next proof to it carries it, and only to it.
        let mut answer = HeaderMap::new();
        answer.insert(
            header::WWW_AUTHENTICATE,
            r#"DPoP error="use_dpop_nonce", error_description="nonce required""#
                .parse()
                .unwrap(),
        );
        answer.insert("dpop-nonce", "n-1".parse().unwrap());
        let unauthorized = StatusCode::UNAUTHORIZED;
        assert!(wants_nonce(&nonces, &url, None, unauthorized, &answer));
        let mut headers = HeaderMap::new();
        let sent = attach(&key, &nonces, &Method::POST, &url, &mut headers).unwrap();
        assert_eq!(sent.as_deref(), Some("n-1"));
        // Refused with the nonce it gave: no reason to try again, it would fail the same way.
        assert!(!wants_nonce(
            &nonces,
            &url,
            Some("n-1"),
            unauthorized,
            &answer
        ));
        assert!(headers.get(header::AUTHORIZATION).is_none());
        let (_, claims) = verified(headers["dpop"].to_str().unwrap());
        assert_eq!(claims["nonce"], "n-1");
        assert!(claims.get("ath").is_none());
        let elsewhere = Url::parse("https://api.example/items").unwrap();
        let mut headers = HeaderMap::new();
        attach(&key, &nonces, &Method::GET, &elsewhere, &mut headers).unwrap();
        assert!(verified(headers["dpop"].to_str().unwrap())
            .1
            .get("nonce")
            .is_none());

        // A nonce in a successful answer is kept for next time, without trying again.
        answer.insert("dpop-nonce", "n-2".parse().unwrap());
        assert!(!wants_nonce(
            &nonces,
            &url,
            Some("n-1"),
            StatusCode::OK,
            &answer
        ));
        assert_eq!(nonces.of(&url).as_deref(), Some("n-2"));
    }
}
