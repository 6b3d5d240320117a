//! How the app proves at the provider's token, introspection and revocation endpoints that it
//! is the client: with its client secret (HTTP Basic, or in the body), or with a JWT signed by a
//! key of its own (`private_key_jwt`: RFC 7523 and OpenID Connect Core 9), whose public half the
//! app publishes at `/.well-known/jwks.json` for providers registered with its `jwks_uri`.

use std::{path::Path, time::SystemTime};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use ring::{
    rand::{SecureRandom, SystemRandom},
    signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair},
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::jwt::signing_input;
use crate::config::development_file;

/// The assertion type of RFC 7523, 2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is good for: one request's worth, with clock skew.
const ASSERTION_SECONDS: u64 = 60;

/// The client's signing keys: the first signs, all are published (so that a new one can be
/// published before it signs, and an old one kept while providers cache it).
pub struct ClientKeys {
    keys: Vec<ClientKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key ids only: never a key.
        let ids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("ClientKeys").field("kids", &ids).finish()
    }
}

struct ClientKey {
    signer: Signer,
    /// RFC 7638 thumbprint of the public key.
    kid: String,
    /// The public key as a JWK, with its `kid`, `use` and `alg`.
    public: Value,
}

enum Signer {
    /// P-256: ES256.
    Ec(EcdsaKeyPair),
    /// RSA: PS256 when the provider takes it, else RS256.
    Rsa(RsaKeyPair),
}

impl ClientKeys {
    /// The keys in these PEM texts (PKCS#8 RSA or P-256; PKCS#1 RSA and SEC1 P-256 too), the
    /// first to sign with.
    pub fn from_pems(pems: &[String]) -> Result<Self, String> {
        let keys = pems
            .iter()
            .enumerate()
            .map(|(n, pem)| key_from_pem(pem).map_err(|e| format!("key {}: {e}", n + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no key".into());
        }
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// The development key of a provider's client: made once (P-256) and kept in `path`
    /// (readable by its owner only); read from there afterwards.
    pub fn development(path: &Path) -> Result<Self, String> {
        let make = || {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("a P-256 key can be made");
            to_pem("PRIVATE KEY", pkcs8.as_ref())
        };
        let (pem, made) = development_file(path, make).map_err(|e| e.to_string())?;
        if made {
            tracing::warn!(path = %path.display(), "a development key was made for private_key_jwt: register the app's /.well-known/jwks.json at the provider, and set PRIVATE_KEY_FILE in production");
        }
        Self::from_pems(&[pem])
    }

    /// The public keys, as JWKs.
    pub fn public_jwks(&self) -> impl Iterator<Item = &Value> {
        self.keys.iter().map(|k| &k.public)
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// What the signing key signs with, of `advertised` (the provider's
    /// `token_endpoint_auth_signing_alg_values_supported`; all of ours when it says nothing).
    pub fn algorithm(&self, advertised: &[String]) -> Result<&'static str, String> {
        let takes = |alg: &str| advertised.is_empty() || advertised.iter().any(|a| a == alg);
        match &self.keys[0].signer {
            Signer::Ec(_) if takes("ES256") => Ok("ES256"),
            Signer::Rsa(_) if takes("PS256") => Ok("PS256"),
            Signer::Rsa(_) if takes("RS256") => Ok("RS256"),
            _ => Err(format!(
                "the provider takes client assertions signed with {} only, which the client's key cannot make",
                advertised.join(", ")
            )),
        }
    }

    /// A new client assertion (a new `jti` each time): `iss` = `sub` = `client_id`, `aud` as
    /// given, signed with the first key by an algorithm in `advertised` ([`Self::algorithm`]).
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        advertised: &[String],
    ) -> Result<String, String> {
        let key = &self.keys[0];
        let alg = self.algorithm(advertised)?;
        let now = unix_now();
        let header = json!({ "alg": alg, "kid": key.kid, "typ": "JWT" });
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": audience,
            "jti": new_jti(&self.random)?, "iat": now, "exp": now + ASSERTION_SECONDS,
        });
        let input = signing_input(&header, &claims);
        let signature = match (&key.signer, alg) {
            (Signer::Ec(pair), _) => pair
                .sign(&self.random, input.as_bytes())
                .map_err(|_| "signing failed".to_owned())?
                .as_ref()
                .to_vec(),
            (Signer::Rsa(pair), alg) => {
                let padding: &dyn signature::RsaEncoding = if alg == "PS256" {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &self.random, input.as_bytes(), &mut signature)
                    .map_err(|_| "signing failed".to_owned())?;
                signature
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

fn key_from_pem(pem: &str) -> Result<ClientKey, String> {
    let (label, der) = from_pem(pem).ok_or("not a PEM file")?;
    let signer = match label.as_str() {
        "PRIVATE KEY" => EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map(Signer::Ec)
        .or_else(|_| RsaKeyPair::from_pkcs8(&der).map(Signer::Rsa))
        .map_err(|_| "a PKCS#8 key that is neither P-256 nor RSA (2048 bits or more)".to_owned())?,
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
            .map(Signer::Rsa)
            .map_err(|_| "an RSA key ring cannot use (2048 bits or more are needed)".to_owned())?,
        "EC PRIVATE KEY" => EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &sec1_to_pkcs8(&der),
            &SystemRandom::new(),
        )
        .map(Signer::Ec)
        .map_err(|_| "an EC key that is not P-256 (or lacks its public key)".to_owned())?,
        other => return Err(format!("a PEM \"{other}\", not a private key")),
    };
    let public = match &signer {
        Signer::Ec(pair) => ec_jwk(pair),
        Signer::Rsa(pair) => {
            let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
            json!({
                "e": URL_SAFE_NO_PAD.encode(public.e),
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(public.n),
            })
        }
    };
    let kid = thumbprint(&public);
    let mut published = public;
    published["kid"] = json!(kid);
    published["use"] = json!("sig");
    published["alg"] = json!(match signer {
        Signer::Ec(_) => "ES256",
        Signer::Rsa(_) => "PS256",
    });
    Ok(ClientKey {
        signer,
        kid,
        public: published,
    })
}

/// The public half of a P-256 key pair, as a JWK.
pub(super) fn ec_jwk(pair: &EcdsaKeyPair) -> Value {
    // The uncompressed point: 0x04, then x and y.
    let point = pair.public_key().as_ref();
    json!({
        "crv": "P-256", "kty": "EC",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

/// A new JWT id: 16 random bytes, base64url.
pub(super) fn new_jti(random: &SystemRandom) -> Result<String, String> {
    let mut jti = [0u8; 16];
    random
        .fill(&mut jti)
        .map_err(|_| "no random numbers".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(jti))
}

/// Now, in Unix seconds.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 7638: the SHA-256 of the key's required members, in lexicographic order, no spaces.
pub(super) fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["e", "kty", "n"],
    };
    let canonical = members
        .iter()
        .map(|m| format!("\"{m}\":{}", jwk[*m]))
        .collect::<Vec<_>>()
        .join(",");
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{canonical}}}")))
}

/// A PEM text's label and its bytes.
fn from_pem(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[body_start..end].split_whitespace().collect();
    Some((label, STANDARD.decode(body).ok()?))
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A SEC1 P-256 private key (`EC PRIVATE KEY`) wrapped as PKCS#8 (RFC 5208), which ring reads:
/// a version, the algorithm (id-ecPublicKey, prime256v1), and the SEC1 key as an octet string.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    const ALGORITHM: [u8; 21] = [
        0x30, 0x13, // SEQUENCE
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
    ];
    let mut inner = vec![0x02, 0x01, 0x00]; // INTEGER 0
    inner.extend(ALGORITHM);
    inner.extend(der_header(0x04, sec1.len()));
    inner.extend(sec1);
    let mut pkcs8 = der_header(0x30, inner.len());
    pkcs8.extend(inner);
    pkcs8
}

/// A DER tag and length.
fn der_header(tag: u8, len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![tag, len as u8],
        0x80..=0xff => vec![tag, 0x81, len as u8],
        _ => vec![tag, 0x82, (len >> 8) as u8, len as u8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PKCS1: &str = include_str!("../../tests/fixtures/client-key-rsa-pkcs1.pem");
    const RSA_PKCS8: &str = include_str!("../../tests/fixtures/client-key-rsa-pkcs8.pem");
    const EC_SEC1: &str = include_str!("../../tests/fixtures/client-key-ec-sec1.pem");
    const EC_PKCS8: &str = include_str!("../../tests/fixtures/client-key-ec-pkcs8.pem");

    /// The assertion's header and claims, after checking its signature with the published key.
    fn verified(assertion: &str, jwk: &Value) -> (Value, Value) {
        let (input, signature) = assertion.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let part = |n: usize| -> Value {
            serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(input.split('.').nth(n).unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let (header, claims) = (part(0), part(1));
        let b64 = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let checked = match header["alg"].as_str().unwrap() {
            "ES256" => {
                let point = [vec![4], b64("x"), b64("y")].concat();
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &signature)
            }
            alg => {
                let key = signature::RsaPublicKeyComponents {
                    n: b64("n"),
                    e: b64("e"),
                };
                let params = if alg == "PS256" {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                key.verify(params, input.as_bytes(), &signature)
            }
        };
        assert!(
            checked.is_ok(),
            "the signature does not verify with the published key"
        );
        assert_eq!(header["kid"], jwk["kid"]);
        (header, claims)
    }

    #[test]
    fn every_key_form_reads_and_signs_assertions_its_published_key_verifies() {
        for (pem, alg) in [
            (RSA_PKCS1, "PS256"),
            (RSA_PKCS8, "PS256"),
            (EC_SEC1, "ES256"),
            (EC_PKCS8, "ES256"),
        ] {
            let keys = ClientKeys::from_pems(&[pem.to_owned()]).unwrap();
            let jwk = keys.public_jwks().next().unwrap().clone();
            let one = keys
                .assertion("client-1", "https://idp.example", &[])
                .unwrap();
            let two = keys
                .assertion("client-1", "https://idp.example", &[])
                .unwrap();
            let (header, claims) = verified(&one, &jwk);
            assert_eq!(header["alg"], alg);
            assert_eq!(claims["iss"], "client-1");
            assert_eq!(claims["sub"], "client-1");
            assert_eq!(claims["aud"], "https://idp.example");
            assert_eq!(
                claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
                60
            );
            assert_ne!(
                claims["jti"],
                verified(&two, &jwk).1["jti"],
                "a jti used twice"
            );
        }
        // The same key in its two forms is one key.
        let kid = |pem: &str| {
            ClientKeys::from_pems(&[pem.to_owned()]).unwrap().keys[0]
                .kid
                .clone()
        };
        assert_eq!(kid(RSA_PKCS1), kid(RSA_PKCS8));
        assert_eq!(kid(EC_SEC1), kid(EC_PKCS8));
    }

    #[test]
    fn the_algorithm_is_one_the_provider_takes() {
        let rsa = ClientKeys::from_pems(&[RSA_PKCS1.to_owned()]).unwrap();
        let jwk = rsa.public_jwks().next().unwrap().clone();
        let rs256 = rsa.assertion("c", "a", &["RS256".into()]).unwrap();
        assert_eq!(verified(&rs256, &jwk).0["alg"], "RS256");
        let ec = ClientKeys::from_pems(&[EC_PKCS8.to_owned()]).unwrap();
        let refused = ec.assertion("c", "a", &["PS256".into()]).unwrap_err();
        assert!(refused.contains("PS256"), "{refused}");
    }

    #[test]
    fn key_ids_are_rfc_7638_thumbprints() {
        // RFC 7638, 3.1: the example key and its thumbprint.
        let jwk = json!({
            "kty": "RSA", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn what_is_not_a_private_key_is_refused_with_why() {
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        for (pem, why) in [("garbage", "not a PEM"), (public, "not a private key")] {
            let e = ClientKeys::from_pems(&[pem.to_owned()]).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_development_key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-key-acme.pem");
        let first = ClientKeys::development(&path).unwrap();
        let again = ClientKeys::development(&path).unwrap();
        assert_eq!(first.keys[0].kid, again.keys[0].kid);
        assert_eq!(first.public_jwks().next().unwrap()["alg"], "ES256");
    }
}
