//! One provider's flow: the authorization request (state, nonce, PKCE S256), the callback's
//! code exchange with ID token and userinfo, token refresh, back-channel logout tokens, and the
//! provider's logout URL.

use std::{collections::BTreeMap, future::Future, sync::Arc};

use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::Utc;
use openidconnect::{
    core::{
        CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim,
        CoreIdToken, CoreTokenResponse, CoreTokenType,
    },
    AccessToken, AsyncHttpClient, AuthType, AuthenticationContextClass, AuthorizationCode,
    CsrfToken, HttpRequest, LogoutRequest, Nonce, NonceVerifier, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, TokenResponse, UserInfoClaims, UserInfoError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::{
    access_token,
    client_auth::ASSERTION_TYPE,
    discovery::{Discovery, Metadata},
    dpop::{self, Caller, DpopKey, Nonces},
    http::{error_chain, Endpoint},
    id_token::{self, Checked},
    jwt, logout_token, ClientKeys, LogoutOrder, OidcError, PendingSignIn, Refreshed, Refusal,
    StepUp, VerifiedUser, Vouched,
};
use crate::{
    claims::ClaimRule,
    config::{AssertionAudience, ParMode, ProviderConfig},
    metrics::Metrics,
};

pub struct Provider {
    config: ProviderConfig,
    /// Where the provider sends the browser back after signing out there: the app's `/`.
    post_logout: Url,
    discovery: Arc<Discovery>,
    /// With `private_key_jwt`: the keys its client assertions are signed with.
    client_keys: Option<Arc<ClientKeys>>,
    /// The DPoP nonces its servers gave last.
    dpop_nonces: Nonces,
}

impl Provider {
    pub fn new(
        config: ProviderConfig,
        client_keys: Option<Arc<ClientKeys>>,
        redirect_uri: RedirectUrl,
        public_origin: Url,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            discovery: Arc::new(Discovery::new(config.clone(), redirect_uri, metrics)),
            config,
            post_logout: public_origin,
            client_keys,
            dpop_nonces: Nonces::default(),
        }
    }

    /// The DPoP nonces its servers (and the APIs its tokens are for) gave last.
    pub fn dpop_nonces(&self) -> &Nonces {
        &self.dpop_nonces
    }

    /// How openidconnect's requests reach the provider: with proofs of `key`, when there is one.
    fn caller<'a>(&'a self, key: Option<&'a DpopKey>) -> Caller<'a> {
        Caller {
            client: &self.discovery.http.client,
            dpop: key.map(|key| (key, &self.dpop_nonces)),
        }
    }

    /// Asks the token endpoint for tokens by `grant`, authenticated as the client and, with a
    /// DPoP `key`, with a proof of it. When the provider asks for a DPoP nonce, once more with
    /// the nonce, a new proof and a new client assertion (the first one's `jti` is spent). The
    /// provider's own refusal is told by `refused`.
    async fn tokens(
        &self,
        metadata: &Metadata,
        grant: Grant<'_>,
        key: Option<&DpopKey>,
        refused: fn(String) -> OidcError,
    ) -> Result<CoreTokenResponse, OidcError> {
        let no_endpoint = |e| OidcError::Unavailable(format!("no token endpoint: {e}"));
        let caller = self.caller(key);
        let mut retried = false;
        loop {
            let params = self.assertion_params(metadata)?;
            let answer = match grant {
                Grant::Code { code, verifier } => {
                    let mut request = metadata
                        .client
                        .exchange_code(AuthorizationCode::new(code.to_owned()))
                        .map_err(no_endpoint)?
                        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
                    for (name, value) in params {
                        request = request.add_extra_param(name, value);
                    }
                    let call = request.request_async(&caller);
                    self.discovery.http.bounded(Endpoint::Token, call).await?
                }
                Grant::Refresh(token) => {
                    let token = RefreshToken::new(token.to_owned());
                    let mut request = metadata
                        .client
                        .exchange_refresh_token(&token)
                        .map_err(no_endpoint)?;
                    for (name, value) in params {
                        request = request.add_extra_param(name, value);
                    }
                    let call = request.request_async(&caller);
                    self.discovery.http.bounded(Endpoint::Token, call).await?
                }
            };
            match answer {
                Err(RequestTokenError::ServerResponse(e))
                    if key.is_some() && !retried && e.error().as_ref() == dpop::USE_NONCE =>
                {
                    retried = true;
                }
                answer => {
                    let tokens = answer.map_err(|e| token_error(e, refused))?;
                    check_token_type(&tokens, key.is_some())?;
                    return Ok(tokens);
                }
            }
        }
    }

    /// The keys of its client, with `private_key_jwt`.
    pub fn client_keys(&self) -> Option<&ClientKeys> {
        self.client_keys.as_deref()
    }

    /// A new client assertion for a request to the provider (`private_key_jwt`), or `None`
    /// when the client authenticates with its secret.
    fn client_assertion(&self, metadata: &Metadata) -> Result<Option<String>, OidcError> {
        let Some(keys) = &self.client_keys else {
            return Ok(None);
        };
        let audience = match self.config.assertion_audience {
            AssertionAudience::Issuer => self.issuer().to_owned(),
            AssertionAudience::TokenEndpoint => metadata
                .client
                .token_uri()
                .map(|url| url.to_string())
                .ok_or_else(|| {
                    OidcError::Misconfigured("the provider has no token endpoint".into())
                })?,
        };
        keys.assertion(
            self.config.client_id.as_str(),
            &audience,
            &metadata.assertion_algs,
        )
        .map(Some)
        .map_err(OidcError::Misconfigured)
    }

    /// The parameters that authenticate a token, introspection or revocation request with a
    /// new client assertion (`private_key_jwt`); none when the client uses its secret.
    fn assertion_params(
        &self,
        metadata: &Metadata,
    ) -> Result<Vec<(&'static str, String)>, OidcError> {
        Ok(self
            .client_assertion(metadata)?
            .map(|assertion| {
                vec![
                    ("client_assertion_type", ASSERTION_TYPE.to_owned()),
                    ("client_assertion", assertion),
                ]
            })
            .unwrap_or_default())
    }

    /// How a request made by hand authenticates the client.
    fn client_authentication(
        &self,
        metadata: &Metadata,
    ) -> Result<ClientAuthentication, OidcError> {
        Ok(match self.client_assertion(metadata)? {
            Some(assertion) => ClientAuthentication::Assertion(assertion),
            None => ClientAuthentication::Secret(metadata.client.auth_type().clone()),
        })
    }

    /// Where this sign-in's authorization request is pushed first (RFC 9126), if it is: as
    /// `PAR` says, and always when the provider requires it.
    fn par_endpoint<'m>(&self, metadata: &'m Metadata) -> Result<Option<&'m Url>, OidcError> {
        let missing = |why: String| {
            Err(OidcError::Misconfigured(format!(
                "{why}, but the provider's metadata names no pushed_authorization_request_endpoint"
            )))
        };
        match (self.config.par, &metadata.par) {
            (ParMode::Always, None) => missing(format!("{} is always", self.variable("PAR"))),
            (_, None) if metadata.par_required => {
                missing("the provider requires pushed authorization requests".into())
            }
            (ParMode::Always, Some(endpoint)) => Ok(Some(endpoint)),
            (_, Some(endpoint)) if metadata.par_required => Ok(Some(endpoint)),
            _ => Ok(None),
        }
    }

    /// Pushes the authorization request that `url` carries to `endpoint`, authenticated as the
    /// client; the browser then goes to the authorization endpoint with the client id and the
    /// request's reference (`request_uri`) only.
    async fn push(&self, metadata: &Metadata, endpoint: &Url, url: &Url) -> Result<Url, OidcError> {
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let auth = self.client_authentication(metadata)?;
        let request = client_post(endpoint.as_str(), &params, &auth, &self.config);
        let answer = self
            .discovery
            .http
            .bounded(Endpoint::Par, self.discovery.http.client.call(request))
            .await?
            .map_err(|e| {
                OidcError::Unavailable(format!("pushed authorization request: {}", error_chain(&e)))
            })?;
        let status = answer.status();
        let body: Value = serde_json::from_slice(answer.body()).unwrap_or_default();
        if status.is_server_error() {
            return Err(OidcError::Unavailable(format!(
                "the pushed authorization request was answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(OidcError::Misconfigured(format!(
                "the provider refused the pushed authorization request: {} {}",
                body["error"].as_str().unwrap_or("(no error)"),
                body["error_description"].as_str().unwrap_or_default()
            )));
        }
        let request_uri = body["request_uri"].as_str().ok_or_else(|| {
            OidcError::Unavailable(
                "the pushed authorization request's answer has no request_uri".into(),
            )
        })?;
        let mut browser = metadata.client.auth_uri().url().clone();
        browser
            .query_pairs_mut()
            .append_pair("client_id", self.config.client_id.as_str())
            .append_pair("request_uri", request_uri);
        Ok(browser)
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// The origins the browser is sent to for this provider (sign-in and sign-out), as far as
    /// known.
    pub fn browser_origins(&self) -> Vec<String> {
        self.discovery.browser_origins()
    }

    /// The longest one call to this provider may take.
    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeout
    }

    /// Whether its metadata and keys are loaded (asking for them now if they are not).
    pub async fn ready(&self) -> bool {
        self.check().await.is_ok()
    }

    /// Its metadata and keys, loaded (asked for now if they are not): how many signing keys it
    /// publishes, or why they cannot be had.
    pub async fn check(&self) -> Result<usize, OidcError> {
        let metadata = self.discovery.metadata().await?;
        Ok(metadata.jwks.keys().len())
    }

    /// How its client authenticates, checked against the provider's metadata (for `check`):
    /// `None` with the client secret; with `private_key_jwt`, the key that signs and how, or
    /// why the provider will not take its assertions.
    pub async fn check_client_auth(&self) -> Result<Option<String>, OidcError> {
        let Some(keys) = &self.client_keys else {
            return Ok(None);
        };
        let metadata = self.discovery.metadata().await?;
        // The assertion the token endpoint will get, made once: whatever would stop it shows.
        self.client_assertion(&metadata)?;
        let alg = keys
            .algorithm(&metadata.assertion_algs)
            .map_err(OidcError::Misconfigured)?;
        Ok(Some(format!(
            "private_key_jwt: assertions signed with {alg} by key {} of the {} published at /.well-known/jwks.json",
            keys.signing_kid(),
            keys.public_jwks().count()
        )))
    }

    /// Whether its sign-ins are pushed (PAR), checked against the provider's metadata (for
    /// `check`): `Some` when they are, or why they cannot be as configured.
    pub async fn check_par(&self) -> Result<Option<String>, OidcError> {
        let metadata = self.discovery.metadata().await?;
        Ok(self
            .par_endpoint(&metadata)?
            .map(|endpoint| format!("authorization requests are pushed to {endpoint}")))
    }

    /// Whether its access tokens are bound to DPoP keys, checked against the provider's metadata
    /// (for `check`): `Some` when they are, or why the provider will not bind them.
    pub async fn check_dpop(&self) -> Result<Option<String>, OidcError> {
        if !self.config.dpop {
            return Ok(None);
        }
        let metadata = self.discovery.metadata().await?;
        match &metadata.dpop_algs {
            Some(algs) if algs.iter().any(|alg| alg == "ES256") => Ok(Some(
                "access tokens are bound to a P-256 key of each session's (DPoP proofs signed with ES256)".into(),
            )),
            Some(algs) => Err(OidcError::Misconfigured(format!(
                "the provider takes DPoP proofs signed with {} only; the app signs them with ES256",
                algs.join(", ")
            ))),
            None => Err(OidcError::Misconfigured(
                "the provider's metadata says nothing of DPoP (no dpop_signing_alg_values_supported): it would issue Bearer tokens, which the app refuses when DPoP is on".into(),
            )),
        }
    }

    /// The variable its setting `name` is read from (`OIDC_ACME_ISSUER`, say).
    pub fn variable(&self, name: &str) -> String {
        self.config.variable(name)
    }

    /// Keeps the metadata and keys fresh in the background, for as long as the app runs.
    pub fn keep_fresh(&self) -> impl Future<Output = ()> {
        self.discovery.clone().keep_fresh()
    }

    /// The provider's userinfo endpoint, when it has one (and its metadata can be had).
    pub async fn userinfo_url(&self) -> Option<String> {
        let metadata = self.discovery.metadata().await.ok()?;
        let url = metadata.client.user_info_url()?;
        Some(url.as_str().to_owned())
    }

    /// Starts a sign-in: the provider's authorization URL, and what must be kept to finish it.
    /// A step-up asks the provider to sign the user in again (`prompt=login`, `max_age`) or
    /// with a stronger method (`acr_values`).
    pub async fn begin(
        &self,
        return_to: String,
        step_up: StepUp,
    ) -> Result<(Url, PendingSignIn), OidcError> {
        let metadata = self.discovery.metadata().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = metadata.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(max_age) = step_up.max_age {
            request = request
                .set_max_age(std::time::Duration::from_secs(max_age))
                .add_prompt(CoreAuthPrompt::Login);
        }
        for acr in &step_up.acr_values {
            request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let url = match self.par_endpoint(&metadata)? {
            Some(endpoint) => self.push(&metadata, endpoint, &url).await?,
            None => url,
        };
        let pending = PendingSignIn {
            provider: self.config.id.clone(),
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
            return_to,
            step_up,
            started_ms: Utc::now().timestamp_millis(),
        };
        Ok((url, pending))
    }

    /// Finishes a sign-in: checks the response's issuer (RFC 9207), exchanges the code,
    /// validates the ID token, fetches userinfo.
    pub async fn complete(
        &self,
        pending: PendingSignIn,
        code: String,
        iss: Option<String>,
    ) -> Result<VerifiedUser, OidcError> {
        let metadata = self.discovery.metadata().await?;
        // A response naming another issuer is a mix-up attack or a misconfiguration; one that
        // names none, from a provider that promised to, may be another provider's.
        match iss {
            Some(iss) if iss != self.issuer() => {
                return Err(OidcError::TokenRefused(format!(
                    "the authorization response names the issuer {iss}, not {}",
                    self.issuer()
                )))
            }
            None if metadata.iss_parameter_supported => {
                return Err(OidcError::TokenRefused(
                    "the authorization response names no issuer, though the provider promises to (RFC 9207)".into(),
                ))
            }
            _ => {}
        }
        // With DPoP, the session's key is made now: the tokens are bound to it from the start.
        let dpop = self.config.dpop.then(DpopKey::generate);
        let key = dpop.as_ref().map(|(key, _)| key);
        let grant = Grant::Code {
            code: &code,
            verifier: &pending.pkce_verifier,
        };
        let tokens = self
            .tokens(&metadata, grant, key, OidcError::CodeRefused)
            .await?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::TokenRefused("the token response has no id_token".into()))?;
        let nonce = Nonce::new(pending.nonce);
        let step_up = pending.step_up;
        let (Checked { claims, compact }, metadata) = self
            .checked_id_token(metadata, id_token, &nonce, &tokens)
            .await?;

        // The token's own claims, read once: custom ones (`groups`, `roles`) included, which
        // openidconnect drops; the signature is verified by now.
        let payload = jwt::claims(&compact).unwrap_or_else(|| claim_value(&claims));
        let (auth_time, acr) = id_token::check_step_up(&step_up, &payload, &self.config)
            .map_err(OidcError::NotSteppedUp)?;

        let mut all_claims = claim_map(&payload);
        if let Ok(request) = metadata.client.user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        ) {
            let userinfo: UserInfoClaims<OtherClaims, CoreGenderClaim> = self
                .discovery
                .http
                .bounded(Endpoint::Userinfo, request.request_async(&self.caller(key)))
                .await?
                .map_err(|e| match e {
                    UserInfoError::ClaimsVerification(e) => {
                        OidcError::TokenRefused(format!("userinfo: {e}"))
                    }
                    e => OidcError::Unavailable(format!("userinfo: {}", error_chain(&e))),
                })?;
            all_claims.extend(claim_map(&userinfo));
        }

        Ok(VerifiedUser {
            provider: self.config.id.clone(),
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            // `sid` is not among the claims openidconnect parses: read it from the token itself.
            session_id: payload["sid"].as_str().map(str::to_owned),
            claims: all_claims,
            id_token: compact,
            auth_time,
            acr,
            access_token: tokens.access_token().secret().clone(),
            access_expires_at: expires_at(&tokens),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            dpop_key: dpop.map(|(_, stored)| stored),
        })
    }

    /// Renews the access token with the refresh token. A new ID token, when the provider sends
    /// one, is validated like the first (no nonce required) and must name the same subject. A
    /// session with a DPoP key (`dpop_key`) has its new access token bound to the same key.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
        dpop_key: Option<&str>,
    ) -> Result<Refreshed, OidcError> {
        let metadata = self.discovery.metadata().await?;
        let key = dpop_key.map(DpopKey::from_stored).transpose()?;
        let grant = Grant::Refresh(refresh_token);
        let tokens = self
            .tokens(&metadata, grant, key.as_ref(), OidcError::TokenRefused)
            .await?;
        let id_token = match tokens.id_token() {
            Some(id_token) => {
                let (checked, _) = self
                    .checked_id_token(metadata, id_token, no_nonce, &tokens)
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
            issued_at: Utc::now().timestamp(),
            access_token: tokens.access_token().secret().clone(),
            access_expires_at: expires_at(&tokens),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            id_token,
        })
    }

    /// The first of the claim rules this provider's users must satisfy that `claims` do not.
    pub fn unmet_rule(&self, claims: &BTreeMap<String, Value>) -> Option<&ClaimRule> {
        self.config
            .require_claims
            .iter()
            .find(|rule| !rule.holds(claims.get(&rule.claim)))
    }

    /// Checks a JWT access token (RFC 9068) presented to the app's API, with this provider's
    /// keys.
    pub async fn verify_access_token(&self, token: &str) -> Result<Vouched, OidcError> {
        let metadata = self.discovery.metadata().await?;
        let (vouched, _) = self
            .with_current_keys(metadata, "access token", |m| {
                access_token::check_jwt(token, &m.jwks, &self.config)
            })
            .await?;
        Ok(vouched)
    }

    /// Asks the provider about an access token presented to the app's API (RFC 7662), with the
    /// app's client credentials. `None` when it does not know the token as an active one.
    pub async fn introspect(&self, token: &str) -> Result<Option<Vouched>, OidcError> {
        let metadata = self.discovery.metadata().await?;
        let Some(url) = metadata.introspection.clone() else {
            return Err(OidcError::Misconfigured(
                "the provider has no introspection endpoint".into(),
            ));
        };
        let client = metadata.client.clone().set_introspection_url(url);
        let token = AccessToken::new(token.to_owned());
        let mut request = client
            .introspect(&token)
            .set_token_type_hint("access_token");
        for (name, value) in self.assertion_params(&metadata)? {
            request = request.add_extra_param(name, value);
        }
        let answer = self
            .discovery
            .http
            .bounded(
                Endpoint::Introspection,
                request.request_async(&self.discovery.http.client),
            )
            .await?
            .map_err(|e| token_error(e, OidcError::Unavailable))?;
        access_token::check_introspection(&answer, &self.config).map_err(OidcError::TokenRefused)
    }

    /// Revokes a signed-out session's tokens (RFC 7009), the refresh token first (which ends
    /// the grant at most providers), with the app's client credentials. `false` when the
    /// provider has no revocation endpoint.
    pub async fn revoke(
        &self,
        refresh_token: Option<&str>,
        access_token: &str,
    ) -> Result<bool, OidcError> {
        let metadata = self.discovery.metadata().await?;
        let Some(url) = metadata.revocation.clone() else {
            return Ok(false);
        };
        let tokens = refresh_token
            .map(|t| (t, "refresh_token"))
            .into_iter()
            .chain((!access_token.is_empty()).then_some((access_token, "access_token")));
        for (token, hint) in tokens {
            // By hand: openidconnect refuses a revocation endpoint without https, which the
            // bundled provider (on loopback, for development) does not have.
            let params = [("token", token), ("token_type_hint", hint)];
            let auth = self.client_authentication(&metadata)?;
            let request = client_post(url.as_str(), &params, &auth, &self.config);
            let answer = self
                .discovery
                .http
                .bounded(
                    Endpoint::Revocation,
                    self.discovery.http.client.call(request),
                )
                .await?
                .map_err(|e| OidcError::Unavailable(format!("revocation: {}", error_chain(&e))))?;
            if !answer.status().is_success() {
                return Err(OidcError::Unavailable(format!(
                    "revocation answered {}",
                    answer.status()
                )));
            }
        }
        Ok(true)
    }

    /// Validates a back-channel logout token with this provider's keys.
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutOrder, OidcError> {
        let metadata = self.discovery.metadata().await?;
        let (order, _) = self
            .with_current_keys(metadata, "logout token", |m| {
                logout_token::check(token, &m.jwks, &m.signing_algs, &self.config)
            })
            .await?;
        Ok(order)
    }

    /// Where to send the browser to end the provider's session too, when the provider has an
    /// `end_session_endpoint`. Uses what discovery already knows; never waits on the provider
    /// more than the usual bound.
    pub async fn end_session_url(&self, id_token: Option<&str>) -> Option<Url> {
        let metadata = match self.discovery.metadata().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(provider = %self.config.id, error = %e, "provider logout skipped: discovery failed");
                return None;
            }
        };
        let endpoint = metadata.end_session.clone()?;
        let back = PostLogoutRedirectUrl::from_url(self.post_logout.clone());
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(self.config.client_id.clone())
            .set_post_logout_redirect_uri(back);
        if let Some(token) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
            request = request.set_id_token_hint(&token);
        }
        Some(request.http_get_url())
    }

    /// Checks an ID token. Returns the metadata the token passed with.
    async fn checked_id_token<N: NonceVerifier + Copy>(
        &self,
        metadata: Arc<Metadata>,
        id_token: &CoreIdToken,
        nonce: N,
        tokens: &CoreTokenResponse,
    ) -> Result<(Checked, Arc<Metadata>), OidcError> {
        self.with_current_keys(metadata, "ID token", |m| {
            id_token::check(
                id_token,
                &m.jwks,
                &m.signing_algs,
                &self.config,
                nonce,
                tokens.access_token(),
            )
        })
        .await
    }

    /// Runs `check` of a `token` with the provider's keys. A key we have not seen may mean the
    /// provider rotated its keys: they are fetched once more (rate limited) and `check` runs
    /// again.
    async fn with_current_keys<T>(
        &self,
        mut metadata: Arc<Metadata>,
        token: &str,
        check: impl Fn(&Metadata) -> Result<T, Refusal>,
    ) -> Result<(T, Arc<Metadata>), OidcError> {
        loop {
            match check(&metadata) {
                Ok(checked) => return Ok((checked, metadata)),
                Err(Refusal::UnknownKey) => match self.discovery.refetch_keys(&metadata).await {
                    Some(fresh) => metadata = fresh,
                    None => {
                        return Err(OidcError::TokenRefused(format!(
                            "no key of the provider matches the {token}'s signature"
                        )))
                    }
                },
                Err(Refusal::Invalid(why)) => return Err(OidcError::TokenRefused(why)),
            }
        }
    }
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

/// What the token endpoint is asked for tokens by.
#[derive(Clone, Copy)]
enum Grant<'a> {
    /// The authorization code, and the PKCE verifier of its request.
    Code { code: &'a str, verifier: &'a str },
    /// A refresh token.
    Refresh(&'a str),
}

/// The access token must be of the kind asked for: bound to the DPoP key when a proof was sent
/// (a provider that ignores DPoP answers `Bearer`), a Bearer token otherwise.
fn check_token_type(tokens: &CoreTokenResponse, dpop: bool) -> Result<(), OidcError> {
    let token_type = tokens.token_type();
    let (expected, hint) = match dpop {
        true if token_type.as_ref().eq_ignore_ascii_case("dpop") => return Ok(()),
        true => (
            "DPoP",
            " (is DPoP switched on for the client at the provider?)",
        ),
        false if *token_type == CoreTokenType::Bearer => return Ok(()),
        false => ("Bearer", ""),
    };
    Err(OidcError::TokenRefused(format!(
        "token_type is {}, not {expected}{hint}",
        token_type.as_ref()
    )))
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

/// Whether a token response body is a JSON object with an `id_token` string.
fn has_id_token(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("id_token").is_some_and(Value::is_string))
}

/// How a request made by hand (revocation, a pushed authorization request) authenticates the
/// client: as the token endpoint's requests do.
enum ClientAuthentication {
    /// The client secret (RFC 6749, 2.3.1): HTTP Basic of the form-encoded id and secret, or
    /// both in the body.
    Secret(AuthType),
    /// A client assertion (`private_key_jwt`), with the client id, in the body.
    Assertion(String),
}

/// A form POST of `params` to `url`, authenticated as the client. The client id goes in the
/// body once: when `params` have it, or the authentication puts it there.
fn client_post(
    url: &str,
    params: &[(&str, &str)],
    auth: &ClientAuthentication,
    config: &ProviderConfig,
) -> HttpRequest {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let (id, secret) = (config.client_id.as_str(), config.client_secret.secret());
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.iter().filter(|(name, _)| *name != "client_id") {
        body.append_pair(name, value);
    }
    let id_in_params = params.iter().any(|(name, _)| *name == "client_id");
    let mut request = openidconnect::http::Request::builder()
        .method(openidconnect::http::Method::POST)
        .uri(url)
        .header(
            openidconnect::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(openidconnect::http::header::ACCEPT, "application/json");
    match auth {
        ClientAuthentication::Assertion(assertion) => {
            body.append_pair("client_id", id)
                .append_pair("client_assertion_type", ASSERTION_TYPE)
                .append_pair("client_assertion", assertion);
        }
        ClientAuthentication::Secret(AuthType::RequestBody) => {
            body.append_pair("client_id", id)
                .append_pair("client_secret", secret);
        }
        ClientAuthentication::Secret(_) => {
            if id_in_params {
                body.append_pair("client_id", id);
            }
            let basic = STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
            request = request.header(
                openidconnect::http::header::AUTHORIZATION,
                format!("Basic {basic}"),
            );
        }
    }
    request
        .body(body.finish().into_bytes())
        .expect("a request of a valid URL and headers builds")
}

/// The claims beyond the standard ones, which openidconnect would drop (`groups`, `roles`).
#[derive(Debug, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: BTreeMap<String, Value>,
}
impl openidconnect::AdditionalClaims for OtherClaims {}

fn claim_value(claims: &impl Serialize) -> Value {
    serde_json::to_value(claims).unwrap_or_default()
}

/// Claims as a flat name → value map, without those that only serve the protocol.
fn claim_map(claims: &impl Serialize) -> BTreeMap<String, Value> {
    const PROTOCOL: [&str; 11] = [
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "azp",
        "auth_time",
        "sid",
        "jti",
    ];
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| !PROTOCOL.contains(&k.as_str()) && !v.is_null())
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_made_by_hand_authenticates_as_the_token_endpoint_does() {
        let url = "https://idp.example/revoke";
        let mut config = crate::oidc::id_token::tests::config();
        config.client_id = openidconnect::ClientId::new("app:1".into());
        config.client_secret = openidconnect::ClientSecret::new("s&cret".into());
        let revoke = [("token", "rt-1"), ("token_type_hint", "refresh_token")];
        let basic = client_post(
            url,
            &revoke,
            &ClientAuthentication::Secret(AuthType::BasicAuth),
            &config,
        );
        assert_eq!(basic.method(), "POST");
        assert_eq!(basic.uri(), "https://idp.example/revoke");
        // RFC 6749, 2.3.1: the id and secret are form-encoded before Basic.
        let expected = STANDARD.encode("app%3A1:s%26cret");
        assert_eq!(
            basic.headers()["authorization"],
            format!("Basic {expected}")
        );
        assert_eq!(basic.body(), b"token=rt-1&token_type_hint=refresh_token");
        let body = |request: HttpRequest| String::from_utf8(request.body().clone()).unwrap();
        let revoke = [("token", "at 1"), ("token_type_hint", "access_token")];
        let post = client_post(
            url,
            &revoke,
            &ClientAuthentication::Secret(AuthType::RequestBody),
            &config,
        );
        assert!(post.headers().get("authorization").is_none());
        assert_eq!(
            body(post),
            "token=at+1&token_type_hint=access_token&client_id=app%3A1&client_secret=s%26cret"
        );
        // An authorization request's own client_id is sent once, whatever the authentication.
        let pushed = [("response_type", "code"), ("client_id", "app:1")];
        let with_basic = client_post(
            url,
            &pushed,
            &ClientAuthentication::Secret(AuthType::BasicAuth),
            &config,
        );
        assert_eq!(body(with_basic), "response_type=code&client_id=app%3A1");
        let asserted = client_post(
            url,
            &pushed,
            &ClientAuthentication::Assertion("jwt".into()),
            &config,
        );
        assert_eq!(
            body(asserted),
            "response_type=code&client_id=app%3A1&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=jwt"
        );
    }

    #[test]
    fn protocol_claims_are_left_out_of_what_the_profile_shows() {
        let claims = claim_map(&json!({
            "sub": "alice", "name": "Alice", "aud": "c", "nonce": "n", "at_hash": "h",
            "email": null,
        }));
        assert_eq!(claims.keys().collect::<Vec<_>>(), ["name", "sub"]);
    }

    #[test]
    fn a_token_response_with_an_id_token_is_told_from_garbage() {
        assert!(has_id_token(br#"{"id_token": "a.b.c"}"#));
        assert!(!has_id_token(b"<html>surprise</html>"));
        assert!(!has_id_token(br#"{"id_token": 5}"#));
    }
}
