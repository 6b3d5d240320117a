//! Reading compact JWTs (header.payload.signature) where openidconnect does not: claims it does
//! not parse (`sid`, `nbf`), and logout tokens, which it does not know.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{core::CoreJwsSigningAlgorithm, JsonWebKey};
use serde_json::Value;

use super::{
    discovery::alg_names,
    jwk::{Jwk, KeySet},
    Refusal,
};

/// A compact JWS, split. Nothing in it is trusted until its signature is verified.
pub(super) struct Compact<'a> {
    pub header: Value,
    pub payload: &'a str,
    /// What the signature covers: the header and payload parts with the dot between them.
    pub signed: &'a [u8],
    pub signature: Vec<u8>,
}

impl<'a> Compact<'a> {
    pub fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(Self {
            header: decode_json(header)?,
            payload,
            signed: &token.as_bytes()[..header.len() + 1 + payload.len()],
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }

    pub fn claims(&self) -> Option<Value> {
        decode_json(self.payload)
    }

    /// Verifies the signature with the key of `jwks` that the header names (or the only one),
    /// by one of `algs`. `what` names the token in the refusal.
    pub fn verify(
        &self,
        jwks: &KeySet,
        algs: &[CoreJwsSigningAlgorithm],
        what: &str,
    ) -> Result<(), Refusal> {
        let refused = |why: &str| Refusal::Invalid(format!("{what}: {why}"));
        let alg = self.header["alg"].as_str().unwrap_or("none");
        let alg = serde_json::from_value::<CoreJwsSigningAlgorithm>(alg.into())
            .ok()
            .filter(|a| algs.contains(a))
            .ok_or_else(|| {
                refused(&format!(
                    "signed with {alg}, which is not allowed (allowed: {})",
                    alg_names(algs)
                ))
            })?;
        let kid = self.header.get("kid").and_then(Value::as_str);
        let keys: Vec<&Jwk> = jwks
            .keys()
            .iter()
            .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
            .collect();
        match keys[..] {
            [key] => key
                .verify_signature(&alg, self.signed, &self.signature)
                .map_err(|_| refused("bad signature")),
            [] if kid.is_some() => Err(Refusal::UnknownKey),
            _ => Err(refused("no kid, and the provider has several keys")),
        }
    }

    /// The `typ` of the header, lowercase and without `application/`, when there is one.
    pub fn typ(&self) -> Option<String> {
        let typ = self.header.get("typ")?.as_str().unwrap_or_default();
        let typ = typ.to_ascii_lowercase();
        Some(typ.strip_prefix("application/").unwrap_or(&typ).to_owned())
    }
}

/// Whether the `aud` claim (one string, or several) names `audience`.
pub(super) fn has_audience(claims: &Value, audience: &str) -> bool {
    match &claims["aud"] {
        Value::String(aud) => aud == audience,
        Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// What a JWT's signature covers: its header and claims as base64url JSON, a dot between.
pub(super) fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A base64url JSON part of a JWT.
fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claims of a compact JWT, unverified: use them only to find who should verify it, or
/// after its signature has been verified.
pub(super) fn claims(jwt: &str) -> Option<Value> {
    decode_json(jwt.split('.').nth(1)?)
}

/// One claim of a compact JWT, as it was sent (see [`claims`]).
pub(super) fn claim(jwt: &str, name: &str) -> Option<Value> {
    claims(jwt)?.get_mut(name).map(Value::take)
}

/// The issuer a compact JWT claims to come from, unverified: which provider's keys to check it
/// with, and nothing more.
pub(super) fn claimed_issuer(jwt: &str) -> Option<String> {
    claims(jwt)?.get("iss")?.as_str().map(str::to_owned)
}

/// The `alg` of a compact JWT's header, unverified.
pub(super) fn alg(jwt: &str) -> Option<String> {
    let header = decode_json(jwt.split('.').next()?)?;
    header.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(value: &str) -> String {
        URL_SAFE_NO_PAD.encode(value)
    }

    #[test]
    fn a_compact_jws_is_split_into_what_its_signature_covers() {
        let token = format!(
            "{}.{}.{}",
            part(r#"{"alg":"RS256"}"#),
            part(r#"{"iss":"https://idp.example","sid":"s1"}"#),
            part("sig")
        );
        let jws = Compact::parse(&token).unwrap();
        assert_eq!(jws.header["alg"], "RS256");
        assert_eq!(jws.signed, token.rsplit_once('.').unwrap().0.as_bytes());
        assert_eq!(jws.signature, b"sig");
        assert_eq!(jws.claims().unwrap()["iss"], "https://idp.example");
        assert_eq!(claim(&token, "sid").unwrap(), "s1");
        assert_eq!(claim(&token, "nbf"), None);
        assert_eq!(alg(&token).as_deref(), Some("RS256"));
    }

    #[test]
    fn anything_else_is_not_a_jws() {
        let header = part(r#"{"alg":"RS256"}"#);
        for token in [
            String::new(),
            "garbage".into(),
            format!("{header}.e30"),
            format!("{header}.e30.c2ln.extra"),
            format!("{header}.e30.not base64!"),
            format!("{}.e30.c2ln", part("not json")),
        ] {
            assert!(Compact::parse(&token).is_none(), "{token}");
        }
    }
}
