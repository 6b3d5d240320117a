//! Everything OpenID Connect: provider discovery and its signing keys (cached), the authorization
//! request (state, nonce, PKCE S256), the code exchange, ID token validation, userinfo, token
//! refresh, back-channel logout tokens, and the provider's logout URL. It knows nothing of sessions, users or pages.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::Utc;
use openidconnect::{
    core::{
        CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreErrorResponseType,
        CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKey, CoreJsonWebKeySet,
        CoreJwsSigningAlgorithm, CoreTokenResponse, CoreTokenType, CoreUserInfoClaims,
    },
    reqwest, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, CsrfToken,
    DiscoveryError, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, JsonWebKey,
    JsonWebKeySetUrl, LogoutRequest, Nonce, NonceVerifier, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RefreshToken,
    RequestTokenError, Scope, SignatureVerificationError, StandardErrorResponse, TokenResponse,
    UserInfoError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::{auth::SignInFailure, config::Config};

/// The client as discovery configures it: authorization endpoint set, token and userinfo
/// endpoints as the provider advertises them.
pub type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How often discovery metadata (and with it the keys) is fetched again in the background; the
/// old copy stays in use while that fails, and the next try comes sooner.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(60 * 60);
const DISCOVERY_RETRY: Duration = Duration::from_secs(30);
/// At most one key-set fetch per this interval, whatever `kid`s tokens name: forged ones must
/// not make the app hammer the provider.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);

/// Signature algorithms accepted for ID tokens: asymmetric only. `none` and the HMAC family
/// (which would let anyone holding the client secret, or a key-confusion attack, mint tokens)
/// are never accepted.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Why a sign-in failed, for the log (with detail) and the user (as a [`SignInFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider could not be reached or answered nonsense: {0}")]
    Unavailable(String),
    #[error("the provider's metadata does not fit this app's configuration: {0}")]
    Misconfigured(String),
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the provider refused the authorization code: {0}")]
    CodeRefused(String),
    #[error("the provider's tokens were refused: {0}")]
    TokenRefused(String),
}

impl OidcError {
    pub fn failure(&self) -> SignInFailure {
        match self {
            Self::Unavailable(_) => SignInFailure::ProviderUnavailable,
            Self::Misconfigured(_) => SignInFailure::ProviderMisconfigured,
            Self::Timeout(_) => SignInFailure::ProviderTimeout,
            Self::CodeRefused(_) => SignInFailure::CodeRefused,
            Self::TokenRefused(_) => SignInFailure::TokenRefused,
        }
    }
}

/// A sign-in that has been sent to the provider and not yet come back. Kept server side (in the
/// session), never in the browser.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    nonce: String,
    pkce_verifier: String,
    /// A same-origin path to land on after sign-in.
    pub return_to: String,
    /// Unix milliseconds: tabs started within a second still have an order.
    pub started_ms: i64,
}

/// What a completed sign-in proved about the user.
#[derive(Clone, Debug)]
pub struct VerifiedUser {
    pub issuer: String,
    pub subject: String,
    /// ID token and userinfo claims (userinfo wins), without the protocol's own claims.
    pub claims: BTreeMap<String, Value>,
    /// Kept server side for `id_token_hint` at sign-out.
    pub id_token: String,
    /// The provider's session id (`sid`), when it sends one.
    pub session_id: Option<String>,
    pub access_token: String,
    /// Unix seconds, when the provider says.
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
}

/// New tokens from a refresh, validated. What the provider did not renew stays as it was.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refreshed {
    pub access_token: String,
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// What a valid logout token orders: end the sessions of the provider session `sid`, or of the
/// subject, or both.
#[derive(Clone, Debug)]
pub struct LogoutOrder {
    pub sid: Option<String>,
    pub subject: Option<String>,
    pub jti: String,
    /// Unix seconds: until then, the same token must not work twice.
    pub expires_at: i64,
}

const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token without `exp` is taken after its `iat`.
const LOGOUT_TOKEN_MAX_AGE: i64 = 120;

/// An ID token that passed every check, with the provider as it was when it did (its keys may
/// have been fetched again meanwhile).
struct Checked {
    claims: CoreIdTokenClaims,
    /// The token as the provider sent it, to keep for `id_token_hint`.
    compact: String,
    provider: Arc<Provider>,
}

/// What discovery gave: the configured client, the keys, and the logout endpoint.
struct Provider {
    client: OidcClient,
    jwks: CoreJsonWebKeySet,
    jwks_uri: JsonWebKeySetUrl,
    signing_algs: Vec<CoreJwsSigningAlgorithm>,
    end_session: Option<EndSessionUrl>,
    fetched_at: Instant,
}

pub struct Oidc {
    config: Config,
    /// One pooled client for every call to the provider. It never follows redirects (a
    /// redirecting endpoint must not send the app's credentials elsewhere).
    http: reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
    /// Serializes discovery and key fetches, and remembers when keys were last fetched.
    refresh: Mutex<Option<Instant>>,
}

impl Oidc {
    pub fn new(config: Config) -> Self {
        // The time for a whole call is bounded by `bounded`, which tells a slow provider (504)
        // from an unreachable one (503).
        let http = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.provider_timeout)
            .user_agent(concat!("leptos-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with these settings always builds");
        Self {
            config,
            http,
            provider: RwLock::new(None),
            refresh: Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// Starts a sign-in: the provider's authorization URL, and what must be kept to finish it.
    pub async fn begin(&self, return_to: String) -> Result<(Url, PendingSignIn), OidcError> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = provider.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingSignIn {
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
            return_to,
            started_ms: Utc::now().timestamp_millis(),
        };
        Ok((url, pending))
    }

    /// Finishes a sign-in: exchanges the code, validates the ID token, fetches userinfo.
    pub async fn complete(
        &self,
        pending: PendingSignIn,
        code: String,
    ) -> Result<VerifiedUser, OidcError> {
        let provider = self.provider().await?;
        let request = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Unavailable(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier));
        let tokens = self
            .bounded(request.request_async(&self.http))
            .await?
            .map_err(|e| token_error(e, OidcError::CodeRefused))?;
        check_token_type(&tokens)?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::TokenRefused("the token response has no id_token".into()))?;
        let nonce = Nonce::new(pending.nonce);
        let Checked {
            claims,
            compact: id_token,
            provider,
        } = self
            .verified_claims(provider, id_token, &nonce, &tokens)
            .await?;

        let mut all_claims = claim_map(&claims);
        if let Ok(request) = provider.client.user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        ) {
            let userinfo: CoreUserInfoClaims = self
                .bounded(request.request_async(&self.http))
                .await?
                .map_err(|e| match e {
                    UserInfoError::ClaimsVerification(e) => {
                        OidcError::TokenRefused(format!("userinfo: {e}"))
                    }
                    e => OidcError::Unavailable(format!("userinfo: {e}")),
                })?;
            all_claims.extend(claim_map(&userinfo));
        }

        Ok(VerifiedUser {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            // `sid` is not among the claims openidconnect parses: read it from the token itself.
            session_id: signed_claim(&id_token, "sid").and_then(|v| v.as_str().map(str::to_owned)),
            claims: all_claims,
            id_token,
            access_token: tokens.access_token().secret().clone(),
            access_expires_at: expires_at(&tokens),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        })
    }

    /// Renews the access token with the refresh token. A new ID token, when the provider sends
    /// one, is validated like the first (no nonce required) and must name the same subject.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Refreshed, OidcError> {
        let provider = self.provider().await?;
        let refresh_token = RefreshToken::new(refresh_token.to_owned());
        let request = provider
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|e| OidcError::Unavailable(format!("no token endpoint: {e}")))?;
        let tokens = self
            .bounded(request.request_async(&self.http))
            .await?
            .map_err(|e| token_error(e, OidcError::TokenRefused))?;
        check_token_type(&tokens)?;
        let id_token = match tokens.id_token() {
            Some(id_token) => {
                let checked = self
                    .verified_claims(provider, id_token, no_nonce, &tokens)
                    .await?;
                if checked.claims.subject().as_str() != subject {
                    return Err(OidcError::TokenRefused(
                        "the refreshed ID token is about another subject".into(),
                    ));
                }
                Some(checked.compact)
            }
            None => None,
        };
        Ok(Refreshed {
            access_token: tokens.access_token().secret().clone(),
            access_expires_at: expires_at(&tokens),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            id_token,
        })
    }

    /// Validates a back-channel logout token (OpenID Connect Back-Channel Logout 1.0, 2.6): a
    /// JWT signed by the provider's keys with an allowed algorithm, for this client, with the
    /// logout event, a `jti`, a `sid` or `sub`, and no `nonce`. Single use is the caller's to
    /// enforce, with the `jti` and lifetime returned.
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutOrder, OidcError> {
        let refused = |why: &str| OidcError::TokenRefused(format!("logout token: {why}"));
        let mut provider = self.provider().await?;
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(refused("not a signed JWT"));
        };
        // The signed input: the header and payload parts with the dot between them.
        let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
        let header = decode_json(header).ok_or_else(|| refused("unreadable header"))?;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(header["alg"].clone()).map_err(|_| refused("unknown alg"))?;
        if !provider.signing_algs.contains(&alg) {
            return Err(refused("alg not allowed"));
        }
        if let Some(typ) = header.get("typ") {
            let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            if typ != "logout+jwt" && typ != "jwt" {
                return Err(refused("typ is not logout+jwt"));
            }
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| refused("unreadable signature"))?;
        loop {
            let keys: Vec<&CoreJsonWebKey> = provider
                .jwks
                .keys()
                .iter()
                .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
                .collect();
            match keys[..] {
                [key] => {
                    key.verify_signature(&alg, signed, &signature)
                        .map_err(|_| refused("bad signature"))?;
                    break;
                }
                [] if kid.is_some() => match self.refetch_keys(&provider).await {
                    Some(fresh) => provider = fresh,
                    None => return Err(refused("no key of the provider matches its kid")),
                },
                _ => return Err(refused("no kid, and the provider has several keys")),
            }
        }

        let claims = decode_json(payload).ok_or_else(|| refused("unreadable claims"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        if text("iss").as_deref() != Some(self.issuer()) {
            return Err(refused("another issuer"));
        }
        let client_id = self.config.client_id.as_str();
        let for_us = match &claims["aud"] {
            Value::String(aud) => aud == client_id,
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(client_id)),
            _ => false,
        };
        if !for_us {
            return Err(refused("another audience"));
        }
        let now = Utc::now().timestamp();
        let skew = self.config.clock_skew.as_secs() as i64;
        let iat = claims["iat"].as_i64().ok_or_else(|| refused("no iat"))?;
        if iat > now + skew {
            return Err(refused("issued in the future"));
        }
        // `exp` is required by the final specification; older providers send none, and their
        // tokens are taken for a short while after `iat`.
        let expires_at = claims["exp"].as_i64().unwrap_or(iat + LOGOUT_TOKEN_MAX_AGE);
        if expires_at + skew < now {
            return Err(refused("expired"));
        }
        if !claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object() {
            return Err(refused("no back-channel logout event"));
        }
        if claims.get("nonce").is_some() {
            return Err(refused("carries a nonce"));
        }
        let jti = text("jti").ok_or_else(|| refused("no jti"))?;
        let (sid, subject) = (text("sid"), text("sub"));
        if sid.is_none() && subject.is_none() {
            return Err(refused("names neither a sid nor a sub"));
        }
        Ok(LogoutOrder {
            sid,
            subject,
            jti,
            expires_at,
        })
    }

    /// Where to send the browser to end the provider's session too, when the provider has an
    /// `end_session_endpoint`. Uses what discovery already knows; never waits on the provider
    /// more than the usual bound.
    pub async fn end_session_url(&self, id_token: Option<&str>) -> Option<Url> {
        let provider = match self.provider().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "provider logout skipped: discovery failed");
                return None;
            }
        };
        let endpoint = provider.end_session.clone()?;
        let back = PostLogoutRedirectUrl::from_url(self.config.public_origin.clone());
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(self.config.client_id.clone())
            .set_post_logout_redirect_uri(back);
        if let Some(token) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
            request = request.set_id_token_hint(&token);
        }
        Some(request.http_get_url())
    }

    /// Bounds one call to the provider in time, so a slow provider gives a 504 page, not a hang.
    async fn bounded<T>(&self, call: impl Future<Output = T>) -> Result<T, OidcError> {
        tokio::time::timeout(self.config.provider_timeout, call)
            .await
            .map_err(|_| OidcError::Timeout(self.config.provider_timeout))
    }

    /// Keeps discovery metadata fresh, in the background, for as long as the app runs. The first
    /// round runs at start without holding the start up: the app serves its pages while the
    /// provider is down.
    pub fn keep_fresh(self: Arc<Self>) -> impl Future<Output = ()> {
        // The first round counts as asked at start: a sign-in that discovered meanwhile will do.
        let mut asked = Instant::now();
        async move {
            loop {
                let pause = match self.rediscover(asked).await {
                    Ok(_) => DISCOVERY_REFRESH,
                    Err(e) => {
                        tracing::warn!(error = %e, "provider discovery failed; retrying soon");
                        DISCOVERY_RETRY
                    }
                };
                tokio::time::sleep(pause).await;
                asked = Instant::now();
            }
        }
    }

    /// The discovered provider, from the cache when there is one.
    async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        if let Some(p) = self.provider.read().await.as_ref() {
            return Ok(p.clone());
        }
        self.rediscover(Instant::now()).await
    }

    /// Discovers the provider again, unless someone else did since `asked`. When discovery
    /// fails, the last good metadata stays in use.
    async fn rediscover(&self, asked: Instant) -> Result<Arc<Provider>, OidcError> {
        let _refresh = self.refresh.lock().await;
        let cached = self.provider.read().await.clone();
        if let Some(p) = &cached {
            if p.fetched_at >= asked {
                return Ok(p.clone());
            }
        }
        match self.discover().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.provider.write().await = Some(fresh.clone());
                tracing::info!(issuer = %self.config.issuer.as_str(), "provider discovered");
                Ok(fresh)
            }
            Err(e) => match cached {
                Some(stale) => {
                    tracing::warn!(error = %e, "rediscovery failed; keeping the last metadata");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    async fn discover(&self) -> Result<Provider, OidcError> {
        // Checks that the document's issuer is exactly the configured one, and fetches the keys.
        let metadata = self
            .bounded(ProviderMetadataWithLogout::discover_async(
                self.config.issuer.clone(),
                &self.http,
            ))
            .await?
            .map_err(|e| match e {
                // The issuer in the document is not the configured one, or the like.
                DiscoveryError::Validation(e) => OidcError::Misconfigured(e),
                e => OidcError::Unavailable(format!("discovery: {}", error_chain(&e))),
            })?;

        // Client authentication as the provider advertises it, client_secret_basic first.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let advertised = metadata.id_token_signing_alg_values_supported();
        let signing_algs: Vec<_> = ALLOWED_ALGS
            .iter()
            .filter(|alg| advertised.contains(alg))
            .cloned()
            .collect();
        if signing_algs.is_empty() {
            return Err(OidcError::Misconfigured(format!(
                "the provider signs ID tokens only with {advertised:?}, none of which is allowed"
            )));
        }
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let jwks = metadata.jwks().clone();
        let jwks_uri = metadata.jwks_uri().clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.config.client_id.clone(),
            Some(self.config.client_secret.clone()),
        )
        .set_redirect_uri(self.config.redirect_uri.clone())
        .set_auth_type(auth_type);
        Ok(Provider {
            client,
            jwks,
            jwks_uri,
            signing_algs,
            end_session,
            fetched_at: Instant::now(),
        })
    }

    /// Fetches the provider's keys again, at most once per [`JWKS_REFETCH_COOLDOWN`]. Returns the
    /// provider with the new keys, or `None` when nothing new could be had (the old keys stay).
    async fn refetch_keys(&self, seen: &Arc<Provider>) -> Option<Arc<Provider>> {
        let mut last = self.refresh.lock().await;
        let current = self.provider.read().await.clone()?;
        if !Arc::ptr_eq(&current, seen) {
            return Some(current); // another request already fetched new keys
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_COOLDOWN) {
            tracing::warn!("unknown signing key; keys were fetched moments ago, not again");
            return None;
        }
        *last = Some(Instant::now());
        let fetched = self
            .bounded(CoreJsonWebKeySet::fetch_async(
                &current.jwks_uri,
                &self.http,
            ))
            .await;
        match fetched {
            Ok(Ok(jwks)) => {
                tracing::info!(keys = jwks.keys().len(), "signing keys fetched again");
                let fresh = Arc::new(Provider {
                    client: current.client.clone(),
                    jwks,
                    jwks_uri: current.jwks_uri.clone(),
                    signing_algs: current.signing_algs.clone(),
                    end_session: current.end_session.clone(),
                    fetched_at: current.fetched_at,
                });
                *self.provider.write().await = Some(fresh.clone());
                Some(fresh)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %error_chain(&e), "key fetch failed; keeping the last keys");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "key fetch failed; keeping the last keys");
                None
            }
        }
    }

    fn verifier<'a>(&self, provider: &'a Provider) -> CoreIdTokenVerifier<'a> {
        let skew = chrono::Duration::from_std(self.config.clock_skew).unwrap_or_default();
        CoreIdTokenVerifier::new_confidential_client(
            self.config.client_id.clone(),
            self.config.client_secret.clone(),
            self.config.issuer.clone(),
            provider.jwks.clone(),
        )
        .set_allowed_algs(provider.signing_algs.iter().cloned())
        // `exp` is checked against a clock set back by the allowed skew.
        .set_time_fn(move || Utc::now() - skew)
        .set_issue_time_verifier_fn(move |iat| {
            let ahead = iat - Utc::now();
            if ahead > skew {
                Err(format!(
                    "issued {}s in the future; the allowed clock skew is {}s",
                    ahead.num_seconds(),
                    skew.num_seconds()
                ))
            } else {
                Ok(())
            }
        })
    }

    /// Verifies an ID token's signature and claims. A token signed with a key we have not seen
    /// may mean the provider rotated its keys: they are fetched once more (rate limited) and the
    /// token tried again.
    async fn verified_claims<N: NonceVerifier + Copy>(
        &self,
        mut provider: Arc<Provider>,
        id_token: &CoreIdToken,
        nonce: N,
        tokens: &impl OAuth2TokenResponse,
    ) -> Result<Checked, OidcError> {
        let claims = loop {
            let verified = {
                let verifier = self.verifier(&provider);
                id_token.claims(&verifier, nonce).map(|claims| {
                    let at_hash = access_token_hash_matches(claims, id_token, &verifier, tokens);
                    (claims.clone(), at_hash)
                })
            };
            match verified {
                Ok((claims, Ok(()))) => break claims,
                Ok((_, Err(e))) => return Err(e),
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) => match self.refetch_keys(&provider).await {
                    Some(fresh) => provider = fresh,
                    None => {
                        return Err(OidcError::TokenRefused(
                            "no key of the provider matches the ID token's signature".into(),
                        ))
                    }
                },
                Err(e) => return Err(self.claims_error(e)),
            }
        };
        // What openidconnect leaves unchecked: `nbf`, and `azp`, which when present must name us.
        let compact = id_token.to_string();
        self.check_not_before(&compact)?;
        if let Some(azp) = claims.authorized_party() {
            if azp.as_str() != self.config.client_id.as_str() {
                return Err(OidcError::TokenRefused(format!(
                    "the ID token is authorized for {}, not this app",
                    azp.as_str()
                )));
            }
        }
        Ok(Checked {
            claims,
            compact,
            provider,
        })
    }

    /// `nbf`, which openidconnect does not read: a token not valid yet (beyond the allowed
    /// skew) is refused. Takes the compact form of a token whose signature has been verified.
    fn check_not_before(&self, id_token: &str) -> Result<(), OidcError> {
        let nbf = signed_claim(id_token, "nbf").and_then(|nbf| nbf.as_i64());
        let Some(ahead) = nbf.map(|nbf| nbf - Utc::now().timestamp()) else {
            return Ok(());
        };
        let skew = self.config.clock_skew.as_secs() as i64;
        if ahead <= skew {
            return Ok(());
        }
        tracing::warn!(
            ahead_seconds = ahead,
            allowed_skew_seconds = skew,
            "ID token refused for time (nbf): check this server's clock"
        );
        Err(OidcError::TokenRefused(format!(
            "not valid for another {ahead}s (nbf)"
        )))
    }

    fn claims_error(&self, e: ClaimsVerificationError) -> OidcError {
        if let ClaimsVerificationError::Expired(detail) = &e {
            tracing::warn!(
                detail,
                allowed_skew_seconds = self.config.clock_skew.as_secs(),
                "ID token refused for time: check this server's clock"
            );
        }
        OidcError::TokenRefused(e.to_string())
    }
}

/// `at_hash`, when the ID token carries one, must match the access token it came with.
fn access_token_hash_matches(
    claims: &CoreIdTokenClaims,
    id_token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier,
    tokens: &impl OAuth2TokenResponse,
) -> Result<(), OidcError> {
    let Some(expected) = claims.access_token_hash() else {
        return Ok(());
    };
    let refused = |e: &dyn std::fmt::Display| OidcError::TokenRefused(format!("at_hash: {e}"));
    let alg = id_token.signing_alg().map_err(|e| refused(&e))?;
    let key = id_token.signing_key(verifier).map_err(|e| refused(&e))?;
    let actual =
        AccessTokenHash::from_token(tokens.access_token(), alg, key).map_err(|e| refused(&e))?;
    if actual != *expected {
        return Err(OidcError::TokenRefused(
            "at_hash does not match the access token".into(),
        ));
    }
    Ok(())
}

/// A token endpoint's failure: `refused` for the provider's own refusal (`invalid_grant`...).
fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
    refused: fn(String) -> OidcError,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(e) => refused(e.to_string()),
        RequestTokenError::Request(e) => OidcError::Unavailable(error_chain(&e)),
        // A readable response whose ID token is malformed (no `sub`, no `iat`, ...) is a
        // refused token; anything else unreadable is a provider in trouble.
        RequestTokenError::Parse(e, body) if has_id_token(&body) => {
            OidcError::TokenRefused(format!("malformed ID token: {e}"))
        }
        RequestTokenError::Parse(e, _) => {
            OidcError::Unavailable(format!("unreadable token response: {e}"))
        }
        RequestTokenError::Other(e) => OidcError::Unavailable(e),
    }
}

fn check_token_type(tokens: &CoreTokenResponse) -> Result<(), OidcError> {
    if *tokens.token_type() != CoreTokenType::Bearer {
        return Err(OidcError::TokenRefused(format!(
            "token_type is {:?}, not Bearer",
            tokens.token_type()
        )));
    }
    Ok(())
}

/// When the access token expires, in Unix seconds, if the provider said.
fn expires_at(tokens: &CoreTokenResponse) -> Option<i64> {
    tokens
        .expires_in()
        .map(|d| Utc::now().timestamp() + d.as_secs() as i64)
}

/// A refreshed ID token carries no nonce, or the first one: either way there is none to check.
fn no_nonce(_: Option<&Nonce>) -> Result<(), String> {
    Ok(())
}

/// A base64url JSON part of a JWT.
fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A claim of a compact JWT whose signature has been verified, as it was sent.
fn signed_claim(jwt: &str, name: &str) -> Option<Value> {
    let mut claims = decode_json(jwt.split('.').nth(1)?)?;
    claims.get_mut(name).map(Value::take)
}

/// Whether a token response body is a JSON object with an `id_token` string.
fn has_id_token(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("id_token").is_some_and(Value::is_string))
}

/// Claims as a flat name → value map, without those that only serve the protocol.
fn claim_map(claims: &impl Serialize) -> BTreeMap<String, Value> {
    const PROTOCOL: [&str; 9] = [
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "azp",
        "auth_time",
    ];
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| !PROTOCOL.contains(&k.as_str()) && !v.is_null())
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// An error with its causes, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
