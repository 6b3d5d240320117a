//! One provider's metadata and signing keys: discovered from its issuer, cached, rediscovered in
//! the background, and its keys fetched again (rate limited) when a token names one we do not
//! know. When a fetch fails, the last good copy stays in use.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use openidconnect::{
    core::{
        CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
        CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
        CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
        CoreSubjectIdentifierType,
    },
    AdditionalProviderMetadata, AuthType, DiscoveryError, EndSessionUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IntrospectionUrl, JsonWebKeySetUrl, LogoutProviderMetadata,
    ProviderMetadata, RedirectUrl, RevocationUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::{
    http::{error_chain, Endpoint, ProviderHttp},
    jwk::{self, KeySet},
    OidcError,
};
use crate::{
    config::{ClientAuthMethod, ProviderConfig},
    metrics::Metrics,
};

/// How often discovery metadata (and with it the keys) is fetched again in the background; the
/// old copy stays in use while that fails, and the next try comes sooner.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(60 * 60);
const DISCOVERY_RETRY: Duration = Duration::from_secs(30);
/// At most one key-set fetch per this interval, whatever `kid`s tokens name: forged ones must
/// not make the app hammer the provider.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);

/// Signature algorithms accepted for ID and logout tokens: asymmetric only. `none` and the HMAC
/// family (which would let anyone holding the client secret, or a key-confusion attack, mint
/// tokens) are never accepted.
pub(super) const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
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

/// The client as discovery configures it: authorization endpoint set, token and userinfo
/// endpoints as the provider advertises them.
pub(super) type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovery fields beyond the core ones: RFC 9207's promise to name the issuer in every
/// authorization response, and RFC 8414's introspection (RFC 7662) and revocation (RFC 7009)
/// endpoints.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(super) struct ExtraMetadata {
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    introspection_endpoint: Option<IntrospectionUrl>,
    revocation_endpoint: Option<RevocationUrl>,
    /// RFC 9126: where authorization requests are pushed, and whether they must be.
    pushed_authorization_request_endpoint: Option<url::Url>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    /// RFC 9449: what DPoP proofs may be signed with; a provider without it says nothing of DPoP.
    dpop_signing_alg_values_supported: Option<Vec<String>>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Discovered = ProviderMetadata<
    LogoutProviderMetadata<ExtraMetadata>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// What discovery gave: the configured client, the keys, and what the flow needs to know.
pub(super) struct Metadata {
    pub client: OidcClient,
    pub jwks: KeySet,
    jwks_uri: JsonWebKeySetUrl,
    /// [`ALLOWED_ALGS`] that the provider says it signs ID tokens with.
    pub signing_algs: Vec<CoreJwsSigningAlgorithm>,
    pub end_session: Option<EndSessionUrl>,
    /// RFC 7662: where to ask about an access token presented to the app's API.
    pub introspection: Option<IntrospectionUrl>,
    /// RFC 7009: where a signed-out session's tokens are revoked.
    pub revocation: Option<RevocationUrl>,
    /// RFC 9207: every authorization response names the issuer; one without is refused.
    pub iss_parameter_supported: bool,
    /// What the provider takes client assertions signed with (none said: anything).
    pub assertion_algs: Vec<String>,
    /// RFC 9126: where authorization requests are pushed, and whether the provider requires it.
    pub par: Option<url::Url>,
    pub par_required: bool,
    /// RFC 9449: what the provider takes DPoP proofs signed with, when it says.
    pub dpop_algs: Option<Vec<String>>,
    fetched_at: Instant,
}

pub(super) struct Discovery {
    config: ProviderConfig,
    redirect_uri: RedirectUrl,
    pub http: ProviderHttp,
    current: RwLock<Option<Arc<Metadata>>>,
    /// Serializes discovery and key fetches, and remembers when keys were last fetched.
    refresh: Mutex<Option<Instant>>,
    /// The origins the browser is sent to for this provider (its issuer's, and once discovered,
    /// its authorization and end-session endpoints'): where the pages' forms may lead.
    browser_origins: std::sync::RwLock<Vec<String>>,
}

impl Discovery {
    pub fn new(config: ProviderConfig, redirect_uri: RedirectUrl, metrics: Arc<Metrics>) -> Self {
        Self {
            http: ProviderHttp::new(config.timeout, &config.id, metrics),
            redirect_uri,
            browser_origins: std::sync::RwLock::new(vec![origin(config.issuer.url())]),
            current: RwLock::new(None),
            refresh: Mutex::new(None),
            config,
        }
    }

    /// The origins the browser is sent to for this provider, as far as known.
    pub fn browser_origins(&self) -> Vec<String> {
        self.browser_origins.read().expect("not poisoned").clone()
    }

    /// The metadata, from the cache when there is one.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        if let Some(m) = self.current.read().await.as_ref() {
            return Ok(m.clone());
        }
        self.rediscover(Instant::now()).await
    }

    /// Keeps the metadata fresh, in the background, for as long as the app runs. The first
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
                        tracing::warn!(provider = %self.config.id, error = %e, "provider discovery failed; retrying soon");
                        DISCOVERY_RETRY
                    }
                };
                tokio::time::sleep(pause).await;
                asked = Instant::now();
            }
        }
    }

    /// Discovers the provider again, unless someone else did since `asked`. When discovery
    /// fails, the last good metadata stays in use.
    async fn rediscover(&self, asked: Instant) -> Result<Arc<Metadata>, OidcError> {
        let _refresh = self.refresh.lock().await;
        let cached = self.current.read().await.clone();
        if let Some(m) = &cached {
            if m.fetched_at >= asked {
                return Ok(m.clone());
            }
        }
        match self.discover().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                let mut origins = vec![origin(self.config.issuer.url())];
                origins.push(origin(fresh.client.auth_uri().url()));
                origins.extend(fresh.end_session.as_ref().map(|e| origin(e.url())));
                origins.dedup();
                *self.browser_origins.write().expect("not poisoned") = origins;
                *self.current.write().await = Some(fresh.clone());
                tracing::info!(provider = %self.config.id, issuer = %self.config.issuer.as_str(), "provider discovered");
                Ok(fresh)
            }
            Err(e) => match cached {
                Some(stale) => {
                    tracing::warn!(provider = %self.config.id, error = %e, "rediscovery failed; keeping the last metadata");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    async fn discover(&self) -> Result<Metadata, OidcError> {
        // Checks that the document's issuer is exactly the configured one, and fetches the keys.
        let metadata = self
            .http
            .bounded(
                Endpoint::Discovery,
                Discovered::discover_async(self.config.issuer.clone(), &self.http.client),
            )
            .await?
            .map_err(|e| match e {
                // The issuer in the document is not the configured one, or the like.
                DiscoveryError::Validation(e) => OidcError::Misconfigured(e),
                e => OidcError::Unavailable(format!("discovery: {}", error_chain(&e))),
            })?;

        // Client authentication as configured; by default as the provider advertises it,
        // client_secret_basic first. With a client assertion, the client id goes in the body,
        // and no secret at all.
        let auth_type = match self.config.client_auth {
            ClientAuthMethod::SecretBasic => AuthType::BasicAuth,
            ClientAuthMethod::SecretPost | ClientAuthMethod::PrivateKeyJwt => AuthType::RequestBody,
            ClientAuthMethod::Auto => match metadata.token_endpoint_auth_methods_supported() {
                Some(methods)
                    if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                        && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
                {
                    AuthType::RequestBody
                }
                _ => AuthType::BasicAuth,
            },
        };
        let client_secret = (self.config.client_auth != ClientAuthMethod::PrivateKeyJwt)
            .then(|| self.config.client_secret.clone());
        let assertion_algs: Vec<String> = metadata
            .token_endpoint_auth_signing_alg_values_supported()
            .into_iter()
            .flatten()
            .filter_map(|alg| serde_json::to_value(alg).ok()?.as_str().map(str::to_owned))
            .collect();
        let advertised = metadata.id_token_signing_alg_values_supported();
        let signing_algs: Vec<_> = ALLOWED_ALGS
            .iter()
            .filter(|alg| advertised.contains(alg))
            .cloned()
            .collect();
        if signing_algs.is_empty() {
            return Err(OidcError::Misconfigured(format!(
                "the provider signs ID tokens only with {}, none of which is allowed (allowed: {})",
                alg_names(advertised),
                alg_names(&ALLOWED_ALGS)
            )));
        }
        let extra = metadata.additional_metadata();
        let end_session = extra.end_session_endpoint.clone();
        let iss_parameter_supported = extra
            .additional_metadata
            .authorization_response_iss_parameter_supported;
        let introspection = extra.additional_metadata.introspection_endpoint.clone();
        let revocation = extra.additional_metadata.revocation_endpoint.clone();
        let par = extra
            .additional_metadata
            .pushed_authorization_request_endpoint
            .clone();
        let par_required = extra
            .additional_metadata
            .require_pushed_authorization_requests;
        let dpop_algs = extra
            .additional_metadata
            .dpop_signing_alg_values_supported
            .clone();
        let jwks = jwk::key_set(metadata.jwks());
        let jwks_uri = metadata.jwks_uri().clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.config.client_id.clone(),
            client_secret,
        )
        .set_redirect_uri(self.redirect_uri.clone())
        .set_auth_type(auth_type);
        Ok(Metadata {
            client,
            jwks,
            jwks_uri,
            signing_algs,
            end_session,
            introspection,
            revocation,
            iss_parameter_supported,
            assertion_algs,
            par,
            par_required,
            dpop_algs,
            fetched_at: Instant::now(),
        })
    }

    /// Fetches the provider's keys again, at most once per [`JWKS_REFETCH_COOLDOWN`]. Returns the
    /// metadata with the new keys, or `None` when nothing new could be had (the old keys stay).
    pub async fn refetch_keys(&self, seen: &Arc<Metadata>) -> Option<Arc<Metadata>> {
        let mut last = self.refresh.lock().await;
        let current = self.current.read().await.clone()?;
        if !Arc::ptr_eq(&current, seen) {
            return Some(current); // another request already fetched new keys
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_COOLDOWN) {
            tracing::warn!(provider = %self.config.id, "unknown signing key; keys were fetched moments ago, not again");
            return None;
        }
        *last = Some(Instant::now());
        self.http.metrics().key_refetch(&self.config.id);
        let fetched = self
            .http
            .bounded(
                Endpoint::Keys,
                KeySet::fetch_async(&current.jwks_uri, &self.http.client),
            )
            .await;
        let jwks = match fetched {
            Ok(Ok(jwks)) => jwks,
            Ok(Err(e)) => {
                tracing::warn!(provider = %self.config.id, error = %error_chain(&e), "key fetch failed; keeping the last keys");
                return None;
            }
            Err(e) => {
                tracing::warn!(provider = %self.config.id, error = %e, "key fetch failed; keeping the last keys");
                return None;
            }
        };
        tracing::info!(provider = %self.config.id, keys = jwks.keys().len(), "signing keys fetched again");
        let fresh = Arc::new(Metadata {
            client: current.client.clone(),
            jwks,
            jwks_uri: current.jwks_uri.clone(),
            signing_algs: current.signing_algs.clone(),
            end_session: current.end_session.clone(),
            introspection: current.introspection.clone(),
            revocation: current.revocation.clone(),
            iss_parameter_supported: current.iss_parameter_supported,
            assertion_algs: current.assertion_algs.clone(),
            par: current.par.clone(),
            par_required: current.par_required,
            dpop_algs: current.dpop_algs.clone(),
            fetched_at: current.fetched_at,
        });
        *self.current.write().await = Some(fresh.clone());
        Some(fresh)
    }
}

/// Algorithms by their JOSE names (`RS256, ES256`), for messages.
pub(super) fn alg_names<'a>(algs: impl IntoIterator<Item = &'a CoreJwsSigningAlgorithm>) -> String {
    algs.into_iter()
        .map(|alg| {
            serde_json::to_value(alg)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{alg:?}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A URL's origin, as a Content-Security-Policy source names it (`https://idp.example`).
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_named_as_jose_names_them() {
        assert_eq!(
            alg_names(&ALLOWED_ALGS),
            "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
        );
    }

    #[test]
    fn the_iss_parameter_promise_is_read_from_discovery() {
        let read = |json: &str| -> bool {
            serde_json::from_str::<ExtraMetadata>(json)
                .unwrap()
                .authorization_response_iss_parameter_supported
        };
        assert!(read(
            r#"{"authorization_response_iss_parameter_supported": true}"#
        ));
        assert!(!read(
            r#"{"authorization_response_iss_parameter_supported": false}"#
        ));
        assert!(!read("{}"));
    }
}
