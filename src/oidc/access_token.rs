//! Access tokens that other services present to the app's own API (RFC 6750 Bearer), and what
//! makes one good. A JWT access token (RFC 9068): typed `at+jwt`, signed by the provider's keys
//! with an asymmetric algorithm, by its issuer, for the API's audience, unexpired. Any other
//! token is the provider's to vouch for through introspection (RFC 7662): active, issued to a
//! client the API takes, unexpired, and by this issuer when the answer names one. Its answers
//! are kept briefly ([`Introspections`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::Utc;
use openidconnect::{core::CoreTokenIntrospectionResponse, TokenIntrospectionResponse};
use serde_json::{Map, Value};

use super::{discovery::ALLOWED_ALGS, jwk::KeySet, jwt, Refusal, Vouched};
use crate::config::ProviderConfig;

/// Whether `token` is a JWT access token as RFC 9068 types it. Other JWTs (an ID token, a
/// provider's own JWT format) are not taken for one; like opaque tokens, they go to
/// introspection.
pub fn is_jwt(token: &str) -> bool {
    jwt::Compact::parse(token)
        .and_then(|jws| jws.typ())
        .is_some_and(|typ| typ == "at+jwt")
}

/// Checks a JWT access token of the provider of `config`, whose keys are `jwks`.
pub(super) fn check_jwt(
    token: &str,
    jwks: &KeySet,
    config: &ProviderConfig,
) -> Result<Vouched, Refusal> {
    let refused = |why: &str| Refusal::Invalid(format!("access token: {why}"));
    let jws = jwt::Compact::parse(token).ok_or_else(|| refused("not a signed JWT"))?;
    if jws.typ().as_deref() != Some("at+jwt") {
        return Err(refused("typ is not at+jwt"));
    }
    jws.verify(jwks, &ALLOWED_ALGS, "access token")?;
    let claims = jws.claims().ok_or_else(|| refused("unreadable claims"))?;
    if claims["iss"].as_str() != Some(config.issuer.as_str()) {
        return Err(refused("another issuer"));
    }
    if !jwt::has_audience(&claims, &config.api_audience) {
        return Err(refused("another audience"));
    }
    let now = Utc::now().timestamp();
    let skew = config.clock_skew.as_secs() as i64;
    let expires_at = claims["exp"].as_i64().ok_or_else(|| refused("no exp"))?;
    if expires_at + skew <= now {
        return Err(refused("expired"));
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + skew) {
        return Err(refused("not valid yet"));
    }
    let Value::Object(claims) = claims else {
        return Err(refused("claims are not an object"));
    };
    Ok(vouched(config, claims, Some(expires_at)))
}

/// Checks the provider's introspection answer about a token: `None` when the provider does
/// not know it as an active token (another provider may), an error when it does but the token
/// is not for the API.
pub(super) fn check_introspection(
    answer: &CoreTokenIntrospectionResponse,
    config: &ProviderConfig,
) -> Result<Option<Vouched>, String> {
    if !answer.active() {
        return Ok(None);
    }
    let Some(client) = answer.client_id() else {
        return Err("the introspection answer names no client".into());
    };
    if !config.api_clients.iter().any(|c| c == client.as_str()) {
        return Err(format!(
            "issued to client {}, which the API does not take",
            client.as_str()
        ));
    }
    if answer
        .iss()
        .is_some_and(|iss| iss != config.issuer.as_str())
    {
        return Err("the introspection answer names another issuer".into());
    }
    let expires_at = answer.exp().map(|exp| exp.timestamp());
    if expires_at.is_some_and(|exp| exp <= Utc::now().timestamp()) {
        return Err("expired".into());
    }
    let mut claims = match serde_json::to_value(answer) {
        Ok(Value::Object(claims)) => claims,
        _ => Map::new(),
    };
    claims.remove("active");
    Ok(Some(vouched(config, claims, expires_at)))
}

fn vouched(
    config: &ProviderConfig,
    claims: Map<String, Value>,
    expires_at: Option<i64>,
) -> Vouched {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    Vouched {
        provider: config.id.clone(),
        subject: text("sub"),
        client_id: text("client_id"),
        expires_at,
        claims,
    }
}

/// How long an introspection answer is kept (seconds): a token revoked at the provider may
/// still be taken this long. Never past the token's own expiry.
pub const INTROSPECTION_KEPT: i64 = 30;
/// Answers kept at most; beyond, the expired ones go, then any one.
const CAPACITY: usize = 10_000;

/// What a provider said about a token: vouched for, or why not.
pub type Answer = Result<Arc<Vouched>, String>;

/// Introspection answers by the token's SHA-256 (the tokens themselves are not kept), each
/// with the Unix second it is good until.
#[derive(Debug, Default)]
pub struct Introspections {
    answers: Mutex<HashMap<[u8; 32], (Answer, i64)>>,
}

impl Introspections {
    pub fn get(&self, key: &[u8; 32]) -> Option<Answer> {
        let answers = self.answers.lock().expect("not poisoned");
        let (answer, until) = answers.get(key)?;
        (Utc::now().timestamp() < *until).then(|| answer.clone())
    }

    pub fn keep(&self, key: [u8; 32], answer: Answer) {
        let now = Utc::now().timestamp();
        let mut until = now + INTROSPECTION_KEPT;
        if let Ok(Some(expires_at)) = answer.as_ref().map(|v| v.expires_at) {
            until = until.min(expires_at);
        }
        let mut answers = self.answers.lock().expect("not poisoned");
        if answers.len() >= CAPACITY {
            answers.retain(|_, (_, until)| *until > now);
        }
        if answers.len() >= CAPACITY {
            if let Some(any) = answers.keys().next().copied() {
                answers.remove(&any);
            }
        }
        answers.insert(key, (answer, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::id_token::tests::{config, jwks, sign, CLIENT, ISSUER};
    use openidconnect::ClientId;
    use serde_json::json;

    fn token(typ: &str, changes: Value) -> String {
        let now = Utc::now().timestamp();
        let mut claims = json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "alice", "client_id": CLIENT,
            "iat": now, "exp": now + 300, "jti": "j1", "scope": "openid",
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        sign(json!({ "alg": "RS256", "kid": "k1", "typ": typ }), &claims)
    }

    fn check(token: &str) -> Result<Vouched, String> {
        check_jwt(token, &jwks(), &config()).map_err(|e| match e {
            Refusal::Invalid(why) => why,
            Refusal::UnknownKey => "unknown key".into(),
        })
    }

    #[test]
    fn a_good_jwt_access_token_is_vouched_for_with_its_claims() {
        let vouched = check(&token("at+jwt", json!({}))).unwrap();
        assert_eq!(vouched.subject.as_deref(), Some("alice"));
        assert_eq!(vouched.client_id.as_deref(), Some(CLIENT));
        assert_eq!(vouched.claims["scope"], "openid");
        assert!(is_jwt(&token("application/at+jwt", json!({}))));
        assert!(check(&token(
            "application/at+jwt",
            json!({ "aud": [CLIENT, "x"] })
        ))
        .is_ok());
    }

    #[test]
    fn other_jwts_and_opaque_tokens_are_not_taken_for_jwt_access_tokens() {
        for typ in ["JWT", "logout+jwt", ""] {
            assert!(!is_jwt(&token(typ, json!({}))), "{typ}");
            assert!(check(&token(typ, json!({}))).unwrap_err().contains("typ"));
        }
        assert!(!is_jwt("opaque-token"));
    }

    #[test]
    fn each_flaw_of_a_jwt_access_token_is_named() {
        let past = Utc::now().timestamp() - 600;
        let future = Utc::now().timestamp() + 600;
        for (changes, why) in [
            (json!({ "iss": "https://other.example" }), "another issuer"),
            (json!({ "aud": "other-api" }), "another audience"),
            (json!({ "aud": null }), "another audience"),
            (json!({ "exp": past }), "expired"),
            (json!({ "exp": null }), "no exp"),
            (json!({ "nbf": future }), "not valid yet"),
        ] {
            let refused = check(&token("at+jwt", changes.clone())).unwrap_err();
            assert!(refused.ends_with(why), "{changes}: {refused}");
        }
        // One character changed well inside the signature (the last may hold only padding).
        let mut tampered = token("at+jwt", json!({}));
        let at = tampered.len() - 20;
        let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
        tampered.replace_range(at..=at, flipped);
        assert!(check(&tampered).unwrap_err().ends_with("bad signature"));
        let unknown_key = sign(
            json!({ "alg": "RS256", "kid": "k2", "typ": "at+jwt" }),
            &json!({}),
        );
        assert_eq!(check(&unknown_key).unwrap_err(), "unknown key");
    }

    fn answer(fields: Value) -> CoreTokenIntrospectionResponse {
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn an_introspection_answer_vouches_only_when_active_for_a_client_the_api_takes() {
        let exp = Utc::now().timestamp() + 60;
        let good = json!({ "active": true, "client_id": CLIENT, "sub": "alice", "exp": exp, "iss": ISSUER });
        let vouched = check_introspection(&answer(good.clone()), &config())
            .unwrap()
            .unwrap();
        assert_eq!(vouched.subject.as_deref(), Some("alice"));
        assert_eq!(vouched.expires_at, Some(exp));
        assert!(vouched.claims.get("active").is_none());

        let mut other = config();
        other.api_clients = vec!["reports".into()];
        assert!(check_introspection(&answer(good.clone()), &other)
            .unwrap_err()
            .contains("does not take"));
        let mut tokens_of = answer(good);
        tokens_of.set_client_id(Some(ClientId::new("reports".into())));
        assert!(check_introspection(&tokens_of, &other).unwrap().is_some());
        let inactive = answer(json!({ "active": false, "client_id": CLIENT }));
        assert!(check_introspection(&inactive, &config()).unwrap().is_none());

        for (fields, why) in [
            (json!({ "active": true, "sub": "alice" }), "names no client"),
            (
                json!({ "active": true, "client_id": CLIENT, "iss": "https://other.example" }),
                "another issuer",
            ),
            (
                json!({ "active": true, "client_id": CLIENT, "exp": exp - 120 }),
                "expired",
            ),
        ] {
            let refused = check_introspection(&answer(fields.clone()), &config()).unwrap_err();
            assert!(refused.contains(why), "{fields}: {refused}");
        }
    }

    fn vouched(expires_at: Option<i64>) -> Arc<Vouched> {
        Arc::new(Vouched {
            provider: "default".into(),
            subject: Some("alice".into()),
            client_id: None,
            expires_at,
            claims: Default::default(),
        })
    }

    #[test]
    fn answers_are_kept_briefly_and_never_past_the_tokens_expiry() {
        let kept = Introspections::default();
        let now = Utc::now().timestamp();
        kept.keep([1; 32], Ok(vouched(Some(now + 3600))));
        kept.keep([2; 32], Ok(vouched(Some(now))));
        kept.keep([3; 32], Err("not active".into()));
        assert!(kept.get(&[1; 32]).unwrap().is_ok());
        assert!(kept.get(&[2; 32]).is_none(), "kept past its expiry");
        assert_eq!(kept.get(&[3; 32]).unwrap().unwrap_err(), "not active");
        assert!(kept.get(&[4; 32]).is_none());
        let (_, until) = kept.answers.lock().unwrap()[&[1; 32]].clone();
        assert!(until <= now + INTROSPECTION_KEPT + 1);
    }
}
