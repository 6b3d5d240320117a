//! A provider's signing keys, as openidconnect's verifiers take them, with RSA signatures (RS*,
//! PS*) checked by ring. openidconnect checks them with the `rsa` crate, whose big-integer code
//! took about a seventh of the app's CPU per sign-in; ring does the same check several times
//! faster. Every other key and algorithm is left to openidconnect as before.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{
    core::{CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm},
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeySet, JsonWebKeyUse,
    JwsSigningAlgorithm, SignatureVerificationError,
};
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents};
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A provider's key set.
pub type KeySet = JsonWebKeySet<Jwk>;

/// One key: openidconnect's, and for an RSA key its modulus and exponent, decoded once.
#[derive(Clone, Debug)]
pub struct Jwk {
    core: CoreJsonWebKey,
    rsa: Option<RsaPublicKeyComponents<Vec<u8>>>,
}

impl From<CoreJsonWebKey> for Jwk {
    fn from(core: CoreJsonWebKey) -> Self {
        let rsa = serde_json::to_value(&core)
            .ok()
            .and_then(|value| rsa_components(&value));
        Self { core, rsa }
    }
}

/// A key set of openidconnect's (as discovery gives it), as ours.
pub fn key_set(core: &JsonWebKeySet<CoreJsonWebKey>) -> KeySet {
    KeySet::new(core.keys().iter().cloned().map(Jwk::from).collect())
}

/// `n` and `e` of an RSA JWK, big-endian without leading zeros (as ring reads them).
fn rsa_components(value: &Value) -> Option<RsaPublicKeyComponents<Vec<u8>>> {
    if value.get("kty")?.as_str()? != "RSA" {
        return None;
    }
    let number = |name: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(value.get(name)?.as_str()?).ok()?;
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Some(bytes[start..].to_vec())
    };
    Some(RsaPublicKeyComponents {
        n: number("n")?,
        e: number("e")?,
    })
}

/// ring's parameters for an RSA algorithm; `None` for the others.
fn ring_rsa(alg: &CoreJwsSigningAlgorithm) -> Option<&'static RsaParameters> {
    use CoreJwsSigningAlgorithm as A;
    Some(match alg {
        A::RsaSsaPkcs1V15Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        A::RsaSsaPkcs1V15Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        A::RsaSsaPkcs1V15Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        A::RsaSsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        A::RsaSsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
        A::RsaSsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

impl JsonWebKey for Jwk {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.core.key_id()
    }

    fn key_type(&self) -> &CoreJsonWebKeyType {
        self.core.key_type()
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.core.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.core.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        CoreJsonWebKey::new_symmetric(key).into()
    }

    fn verify_signature(
        &self,
        alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        let Some(params) = ring_rsa(alg) else {
            return self.core.verify_signature(alg, message, signature);
        };
        // The checks openidconnect makes of any key before it verifies.
        let incompatible = |why: &str| Err(SignatureVerificationError::InvalidKey(why.into()));
        if self.key_use().is_some_and(|u| !u.allows_signature()) {
            return incompatible("key usage not permitted for digital signatures");
        }
        if alg.key_type().as_ref() != Some(self.key_type()) {
            return incompatible("key type does not match signature algorithm");
        }
        match self.signing_alg() {
            JsonWebKeyAlgorithm::Unspecified => {}
            JsonWebKeyAlgorithm::Algorithm(key_alg) if key_alg == alg => {}
            JsonWebKeyAlgorithm::Algorithm(_) => return incompatible("incompatible key algorithm"),
            JsonWebKeyAlgorithm::Unsupported => {
                return incompatible("key algorithm is not a signing algorithm")
            }
        }
        let Some(key) = &self.rsa else {
            return incompatible("RSA key without its modulus and exponent");
        };
        // ring refuses moduli under 2048 bits, as NIST has since 2013.
        key.verify(params, message, signature)
            .map_err(|_| SignatureVerificationError::CryptoError("bad signature".into()))
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.core.hash_bytes(bytes, alg)
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let core = CoreJsonWebKey::deserialize(&value).map_err(D::Error::custom)?;
        Ok(Self {
            rsa: rsa_components(&value),
            core,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::id_token::tests::{key, sign};
    use openidconnect::PrivateSigningKey;
    use serde_json::json;

    fn signed(alg: &str) -> (String, Vec<u8>) {
        let token = sign(json!({"alg": alg, "kid": "k1"}), &json!({"sub": "alice"}));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        (
            signed.to_owned(),
            URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
    }

    #[test]
    fn ring_accepts_what_the_key_signed_and_nothing_else() {
        let jwk = Jwk::from(key().as_verification_key());
        let (message, signature) = signed("RS256");
        let rs256 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
        assert!(jwk
            .verify_signature(&rs256, message.as_bytes(), &signature)
            .is_ok());
        let tampered = message.replacen('e', "f", 1);
        assert!(jwk
            .verify_signature(&rs256, tampered.as_bytes(), &signature)
            .is_err());
        // Another RSA algorithm over the same bytes is another check, and fails.
        let rs512 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512;
        assert!(jwk
            .verify_signature(&rs512, message.as_bytes(), &signature)
            .is_err());
    }

    #[test]
    fn every_rsa_algorithm_is_checked_by_ring() {
        use CoreJwsSigningAlgorithm as A;
        let jwk = Jwk::from(key().as_verification_key());
        let message = b"header.payload";
        for alg in [
            A::RsaSsaPkcs1V15Sha256,
            A::RsaSsaPkcs1V15Sha384,
            A::RsaSsaPkcs1V15Sha512,
            A::RsaSsaPssSha256,
            A::RsaSsaPssSha384,
            A::RsaSsaPssSha512,
        ] {
            assert!(ring_rsa(&alg).is_some());
            let signature = key().sign(&alg, message).unwrap();
            assert!(
                jwk.verify_signature(&alg, message, &signature).is_ok(),
                "{alg:?}"
            );
            assert!(
                jwk.verify_signature(&alg, b"header.payloaD", &signature)
                    .is_err(),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn an_rsa_key_is_refused_for_other_algorithms_and_uses() {
        let core = key().as_verification_key();
        let (message, signature) = signed("RS256");
        let es256 = CoreJwsSigningAlgorithm::EcdsaP256Sha256;
        assert!(Jwk::from(core.clone())
            .verify_signature(&es256, message.as_bytes(), &signature)
            .is_err());
        let mut as_json = serde_json::to_value(&core).unwrap();
        as_json["use"] = json!("enc");
        let for_encryption: Jwk = serde_json::from_value(as_json.clone()).unwrap();
        let rs256 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
        assert!(for_encryption
            .verify_signature(&rs256, message.as_bytes(), &signature)
            .is_err());
        as_json["use"] = json!("sig");
        as_json["alg"] = json!("PS256");
        let for_ps256: Jwk = serde_json::from_value(as_json).unwrap();
        assert!(for_ps256
            .verify_signature(&rs256, message.as_bytes(), &signature)
            .is_err());
    }

    #[test]
    fn a_key_set_reads_as_openidconnect_reads_it() {
        let set = json!({"keys": [
            serde_json::to_value(key().as_verification_key()).unwrap(),
            {"kty": "unknown-kind", "kid": "x"},
        ]});
        let keys: KeySet = serde_json::from_value(set).unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert!(keys.keys()[0].rsa.is_some());
    }
}
