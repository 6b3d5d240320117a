//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0, 2.6): a JWT signed by
//! the provider's keys with an allowed algorithm, for this client, with the logout event, a
//! `jti`, a `sid` or `sub`, and no `nonce`. Single use is the caller's to enforce, with the
//! `jti` and lifetime returned.

use chrono::Utc;
use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::Value;

use super::{jwk::KeySet, jwt, LogoutOrder, Refusal};
use crate::config::ProviderConfig;

const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token without `exp` is taken after its `iat`.
const MAX_AGE: i64 = 120;

/// Checks a logout token of the provider of `config`, whose keys are `jwks` and algorithms
/// `algs`.
pub(super) fn check(
    token: &str,
    jwks: &KeySet,
    algs: &[CoreJwsSigningAlgorithm],
    config: &ProviderConfig,
) -> Result<LogoutOrder, Refusal> {
    let refused = |why: &str| Refusal::Invalid(format!("logout token: {why}"));
    let jws = jwt::Compact::parse(token).ok_or_else(|| refused("not a signed JWT"))?;
    if jws
        .typ()
        .is_some_and(|typ| typ != "logout+jwt" && typ != "jwt")
    {
        return Err(refused("typ is not logout+jwt"));
    }
    jws.verify(jwks, algs, "logout token")?;

    let claims = jws.claims().ok_or_else(|| refused("unreadable claims"))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    if text("iss").as_deref() != Some(config.issuer.as_str()) {
        return Err(refused("another issuer"));
    }
    if !jwt::has_audience(&claims, config.client_id.as_str()) {
        return Err(refused("another audience"));
    }
    let now = Utc::now().timestamp();
    let skew = config.clock_skew.as_secs() as i64;
    let iat = claims["iat"].as_i64().ok_or_else(|| refused("no iat"))?;
    if iat > now + skew {
        return Err(refused("issued in the future"));
    }
    // `exp` is required by the final specification; older providers send none, and their
    // tokens are taken for a short while after `iat`.
    let expires_at = claims["exp"].as_i64().unwrap_or(iat + MAX_AGE);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::id_token::tests::{config, jwks, sign, CLIENT, ISSUER};
    use serde_json::json;

    fn token(header: Value, changes: Value) -> String {
        let now = Utc::now().timestamp();
        let mut claims = json!({
            "iss": ISSUER, "aud": CLIENT, "iat": now, "exp": now + 120, "jti": "j1",
            "sid": "s1", "sub": "alice", "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        sign(header, &claims)
    }

    fn header() -> Value {
        json!({ "alg": "RS256", "kid": "k1", "typ": "logout+jwt" })
    }

    fn run(token: &str) -> Result<LogoutOrder, Refusal> {
        check(
            token,
            &jwks(),
            &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            &config(),
        )
    }

    fn refusal(token: &str) -> String {
        match run(token) {
            Err(Refusal::Invalid(why)) => why,
            Err(Refusal::UnknownKey) => "unknown key".into(),
            Ok(order) => panic!("accepted: {order:?}"),
        }
    }

    #[test]
    fn a_good_token_orders_its_sessions_ended() {
        let order = run(&token(header(), json!({}))).unwrap();
        assert_eq!(order.sid.as_deref(), Some("s1"));
        assert_eq!(order.subject.as_deref(), Some("alice"));
        assert_eq!(order.jti, "j1");
        let sub_only = run(&token(header(), json!({ "sid": null }))).unwrap();
        assert_eq!(
            (sub_only.sid, sub_only.subject.as_deref()),
            (None, Some("alice"))
        );
    }

    #[test]
    fn the_issuer_it_claims_finds_the_provider_to_check_it() {
        assert_eq!(
            jwt::claimed_issuer(&token(header(), json!({}))).as_deref(),
            Some(ISSUER)
        );
        assert_eq!(jwt::claimed_issuer("garbage"), None);
    }

    #[test]
    fn each_flaw_is_named() {
        for (changes, why) in [
            (json!({ "iss": "https://other.example" }), "another issuer"),
            (json!({ "aud": "other-client" }), "another audience"),
            (json!({ "events": null }), "no back-channel logout event"),
            (json!({ "nonce": "n" }), "carries a nonce"),
            (json!({ "jti": null }), "no jti"),
            (
                json!({ "sid": null, "sub": null }),
                "names neither a sid nor a sub",
            ),
            (json!({ "iat": null }), "no iat"),
        ] {
            assert_eq!(
                refusal(&token(header(), changes)),
                format!("logout token: {why}")
            );
        }
        let why = refusal(&token(json!({ "alg": "HS512" }), json!({})));
        assert!(
            why.contains("HS512") && why.contains("allowed: RS256"),
            "{why}"
        );
        let why = refusal(&token(
            json!({ "alg": "RS256", "typ": "at+jwt" }),
            json!({}),
        ));
        assert!(why.contains("typ"), "{why}");
        assert_eq!(
            refusal(&token(json!({ "alg": "RS256", "kid": "new" }), json!({}))),
            "unknown key"
        );
    }
}
