//! ID token checks: what openidconnect verifies (signature, `iss`, `aud`, `exp`, `iat`, nonce),
//! set up strictly, and what it leaves to us (the algorithm named in the refusal, `at_hash`,
//! `nbf`, `azp`), and whether a step-up that was asked for happened (`auth_time`, `acr`).

use chrono::Utc;
use openidconnect::{
    core::{CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm},
    AccessToken, AccessTokenHash, ClaimsVerificationError, IdTokenVerifier, NonceVerifier,
    SignatureVerificationError,
};
use serde_json::Value;

use super::{
    discovery::alg_names,
    jwk::{Jwk, KeySet},
    jwt, Refusal, StepUp,
};
use crate::config::ProviderConfig;

/// An ID token that passed every check.
pub(super) struct Checked {
    pub claims: CoreIdTokenClaims,
    /// The token as the provider sent it, to keep for `id_token_hint`.
    pub compact: String,
}

/// Checks `id_token`, signed with one of `jwks` by one of `algs`, for the client of `config`,
/// issued with `access_token`.
pub(super) fn check<N: NonceVerifier>(
    id_token: &CoreIdToken,
    jwks: &KeySet,
    algs: &[CoreJwsSigningAlgorithm],
    config: &ProviderConfig,
    nonce: N,
    access_token: &AccessToken,
) -> Result<Checked, Refusal> {
    let compact = id_token.to_string();
    // openidconnect would say only "signature verification failed": name the algorithm.
    let alg = jwt::alg(&compact).unwrap_or_else(|| "none".into());
    let allowed = serde_json::from_value::<CoreJwsSigningAlgorithm>(alg.clone().into())
        .is_ok_and(|alg| algs.contains(&alg));
    if !allowed {
        return Err(Refusal::Invalid(format!(
            "the ID token is signed with {alg}, which is not allowed (allowed: {})",
            alg_names(algs)
        )));
    }

    let verifier = verifier(config, jwks, algs);
    let claims = match id_token.claims(&verifier, nonce) {
        Ok(claims) => claims.clone(),
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => return Err(Refusal::UnknownKey),
        Err(e) => {
            if let ClaimsVerificationError::Expired(detail) = &e {
                tracing::warn!(
                    detail,
                    allowed_skew_seconds = config.clock_skew.as_secs(),
                    "ID token refused for time: check this server's clock"
                );
            }
            return Err(Refusal::Invalid(e.to_string()));
        }
    };
    check_access_token_hash(&claims, id_token, &verifier, access_token)?;
    check_not_before(&compact, config)?;
    // What openidconnect leaves unchecked: `azp`, which when present must name us.
    if let Some(azp) = claims.authorized_party() {
        if azp.as_str() != config.client_id.as_str() {
            return Err(Refusal::Invalid(format!(
                "the ID token is authorized for {}, not this app",
                azp.as_str()
            )));
        }
    }
    Ok(Checked { claims, compact })
}

fn verifier<'a>(
    config: &ProviderConfig,
    jwks: &KeySet,
    algs: &[CoreJwsSigningAlgorithm],
) -> IdTokenVerifier<'a, Jwk> {
    let skew = chrono::Duration::from_std(config.clock_skew).unwrap_or_default();
    IdTokenVerifier::new_confidential_client(
        config.client_id.clone(),
        config.client_secret.clone(),
        config.issuer.clone(),
        jwks.clone(),
    )
    .set_allowed_algs(algs.iter().cloned())
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

/// `at_hash`, when the ID token carries one, must match the access token it came with.
fn check_access_token_hash(
    claims: &CoreIdTokenClaims,
    id_token: &CoreIdToken,
    verifier: &IdTokenVerifier<Jwk>,
    access_token: &AccessToken,
) -> Result<(), Refusal> {
    let Some(expected) = claims.access_token_hash() else {
        return Ok(());
    };
    let refused = |e: &dyn std::fmt::Display| Refusal::Invalid(format!("at_hash: {e}"));
    let alg = id_token.signing_alg().map_err(|e| refused(&e))?;
    let key = id_token.signing_key(verifier).map_err(|e| refused(&e))?;
    let actual = AccessTokenHash::from_token(access_token, alg, key).map_err(|e| refused(&e))?;
    if actual != *expected {
        return Err(Refusal::Invalid(
            "at_hash does not match the access token".into(),
        ));
    }
    Ok(())
}

/// `nbf`, which openidconnect does not read: a token not valid yet (beyond the allowed skew) is
/// refused. Takes the compact form of a token whose signature has been verified.
fn check_not_before(compact: &str, config: &ProviderConfig) -> Result<(), Refusal> {
    let nbf = jwt::claim(compact, "nbf").and_then(|nbf| nbf.as_i64());
    let Some(ahead) = nbf.map(|nbf| nbf - Utc::now().timestamp()) else {
        return Ok(());
    };
    let skew = config.clock_skew.as_secs() as i64;
    if ahead <= skew {
        return Ok(());
    }
    tracing::warn!(
        ahead_seconds = ahead,
        allowed_skew_seconds = skew,
        "ID token refused for time (nbf): check this server's clock"
    );
    Err(Refusal::Invalid(format!(
        "not valid for another {ahead}s (nbf)"
    )))
}

/// Whether the ID token shows the step-up that was asked for (`auth_time` within `max_age`,
/// `acr` among `acr_values`): a provider that ignores the request must not satisfy it. Gives
/// the token's `auth_time` and `acr`. Takes the claims of a verified token.
pub(super) fn check_step_up(
    step_up: &StepUp,
    claims: &Value,
    config: &ProviderConfig,
) -> Result<(Option<i64>, Option<String>), String> {
    let auth_time = claims["auth_time"].as_i64();
    let acr = claims["acr"].as_str().map(str::to_owned);
    if let Some(max_age) = step_up.max_age {
        let Some(at) = auth_time else {
            return Err("no auth_time, though max_age was asked".into());
        };
        let ago = Utc::now().timestamp() - at;
        if ago > max_age as i64 + config.clock_skew.as_secs() as i64 {
            return Err(format!(
                "the user last signed in {ago}s ago, more than the {max_age}s asked"
            ));
        }
    }
    if !step_up.acr_values.is_empty()
        && !acr
            .as_ref()
            .is_some_and(|acr| step_up.acr_values.contains(acr))
    {
        return Err(format!(
            "acr {} is none of {} asked",
            acr.as_deref().unwrap_or("(none)"),
            step_up.acr_values.join(" ")
        ));
    }
    Ok((auth_time, acr))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use openidconnect::{
        core::{CoreHmacKey, CoreRsaPrivateSigningKey},
        ClientId, ClientSecret, IssuerUrl, JsonWebKeyId, Nonce, PrivateSigningKey,
    };
    use serde_json::json;
    use std::time::Duration;

    pub const ISSUER: &str = "https://idp.example";
    pub const CLIENT: &str = "client-1";

    pub fn config() -> ProviderConfig {
        ProviderConfig {
            id: "idp".into(),
            label: "IdP".into(),
            issuer: IssuerUrl::new(ISSUER.into()).unwrap(),
            client_id: ClientId::new(CLIENT.into()),
            client_secret: ClientSecret::new("secret".into()),
            client_auth: Default::default(),
            private_keys: vec![],
            assertion_audience: Default::default(),
            par: Default::default(),
            dpop: false,
            scopes: vec![],
            clock_skew: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            api_audience: CLIENT.into(),
            api_clients: vec![CLIENT.into()],
            require_claims: vec![],
        }
    }

    pub fn key() -> CoreRsaPrivateSigningKey {
        let pem = include_str!("../../tests/fixtures/test-signing-key.pem");
        CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
    }

    pub fn jwks() -> KeySet {
        KeySet::new(vec![key().as_verification_key().into()])
    }

    /// A compact JWS of `claims` with this header, signed by the test key (or HMAC for `HS*`).
    pub fn sign(header: Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match header["alg"].as_str().unwrap() {
            "HS512" => CoreHmacKey::new(b"secret".to_vec())
                .sign(&CoreJwsSigningAlgorithm::HmacSha512, input.as_bytes())
                .unwrap(),
            _ => key()
                .sign(
                    &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                    input.as_bytes(),
                )
                .unwrap(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn claims(changes: Value) -> Value {
        let now = Utc::now().timestamp();
        let mut claims = json!({
            "iss": ISSUER, "sub": "alice", "aud": CLIENT, "iat": now, "exp": now + 300,
            "nonce": "n-1",
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    fn run(header: Value, changes: Value) -> Result<Checked, Refusal> {
        let token: CoreIdToken = sign(header, &claims(changes)).parse().unwrap();
        check(
            &token,
            &jwks(),
            &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            &config(),
            &Nonce::new("n-1".into()),
            &AccessToken::new("at".into()),
        )
    }

    fn refusal(header: Value, changes: Value) -> String {
        match run(header, changes) {
            Err(Refusal::Invalid(why)) => why,
            Err(Refusal::UnknownKey) => "unknown key".into(),
            Ok(_) => panic!("accepted"),
        }
    }

    fn rs256() -> Value {
        json!({ "alg": "RS256", "kid": "k1" })
    }

    #[test]
    fn a_good_token_passes() {
        let checked = run(rs256(), json!({})).unwrap();
        assert_eq!(checked.claims.subject().as_str(), "alice");
        assert_eq!(checked.compact.split('.').count(), 3);
    }

    #[test]
    fn a_refused_algorithm_is_named_with_the_allowed_ones() {
        let why = refusal(json!({ "alg": "HS512" }), json!({}));
        assert_eq!(
            why,
            "the ID token is signed with HS512, which is not allowed (allowed: RS256)"
        );
        let why = refusal(json!({ "alg": "none" }), json!({}));
        assert!(why.contains("signed with none"), "{why}");
    }

    #[test]
    fn an_unknown_key_asks_for_the_keys_again() {
        assert_eq!(
            refusal(json!({ "alg": "RS256", "kid": "rotated" }), json!({})),
            "unknown key"
        );
    }

    #[test]
    fn what_openidconnect_leaves_unchecked_is_checked() {
        let now = Utc::now().timestamp();
        assert!(refusal(rs256(), json!({ "nbf": now + 3600 })).contains("nbf"));
        assert!(
            run(rs256(), json!({ "nbf": now + 30 })).is_ok(),
            "within the skew"
        );
        assert!(refusal(rs256(), json!({ "azp": "another" })).contains("authorized for another"));
        assert!(
            refusal(rs256(), json!({ "at_hash": "AAAAAAAAAAAAAAAAAAAAAA" })).contains("at_hash")
        );
    }

    #[test]
    fn time_is_checked_with_the_allowed_skew() {
        let now = Utc::now().timestamp();
        assert!(run(rs256(), json!({ "iat": now + 30, "exp": now - 30 })).is_ok());
        refusal(rs256(), json!({ "exp": now - 3600, "iat": now - 7200 }));
        assert!(
            refusal(rs256(), json!({ "iat": now + 3600, "exp": now + 7200 })).contains("future")
        );
    }

    #[test]
    fn another_issuer_audience_or_nonce_is_refused() {
        for changes in [
            json!({ "iss": "https://elsewhere.example" }),
            json!({ "aud": "another-client" }),
            json!({ "nonce": "n-2" }),
        ] {
            refusal(rs256(), changes);
        }
    }

    #[test]
    fn a_step_up_is_judged_by_the_tokens_auth_time_and_acr() {
        let now = Utc::now().timestamp();
        let check =
            |step_up: StepUp, changes: Value| check_step_up(&step_up, &claims(changes), &config());
        let recent = StepUp {
            max_age: Some(300),
            acr_values: vec![],
        };
        let strong = StepUp {
            max_age: None,
            acr_values: vec!["mfa".into(), "hwk".into()],
        };
        assert_eq!(
            check(
                recent.clone(),
                json!({ "auth_time": now - 10, "acr": "pwd" })
            ),
            Ok((Some(now - 10), Some("pwd".into())))
        );
        assert!(check(recent.clone(), json!({ "auth_time": now - 600 })).is_err());
        assert!(check(recent, json!({}))
            .unwrap_err()
            .contains("no auth_time"));
        assert!(check(strong.clone(), json!({ "acr": "hwk" })).is_ok());
        assert!(check(strong.clone(), json!({ "acr": "pwd" })).is_err());
        assert!(check(strong, json!({})).is_err());
        assert_eq!(check(StepUp::default(), json!({})), Ok((None, None)));
    }
}
