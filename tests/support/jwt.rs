//! Signing for the test provider: its keys (two RSA, one P-256), their public JWKs, and JWS
//! made as a provider makes them, or as an attacker would (unsigned, HMAC, tampered).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{
    core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    PrivateSigningKey,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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

/// Breaks a JWT's signature: one character changed well inside it (the last one may hold only
/// padding bits).
pub fn tamper_signature(jwt: &mut String) {
    let at = jwt.len() - 20;
    let flipped = if &jwt[at..=at] == "A" { "B" } else { "A" };
    jwt.replace_range(at..=at, flipped);
}

/// The `at_hash` of an access token: the left half of its SHA-256 (RS256, ES256 and HS256 all
/// hash with SHA-256).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// A compact JWS of `claims`, as `signer` makes it.
pub fn sign_jwt(signer: &Signer, claims: &Value) -> String {
    sign_typed_jwt(signer, "JWT", claims)
}

/// A compact JWS of `claims` with this `typ` (`at+jwt` for an access token), as `signer` makes
/// it.
pub fn sign_typed_jwt(signer: &Signer, typ: &str, claims: &Value) -> String {
    let (alg, kid) = match signer {
        Signer::Key { alg, kid, .. } => (*alg, *kid),
        Signer::Unsigned => ("none", None),
        Signer::Hmac(_) => ("HS256", None),
    };
    let mut header = json!({ "alg": alg, "typ": typ });
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
