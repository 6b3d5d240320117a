//! The configured providers, in the order the sign-in page lists them: found by id (a sign-in
//! names its provider) or by issuer (a logout token names its own).

use std::sync::Arc;

use super::{jwt, ClientKeys, Provider};
use crate::{
    config::{ClientAuthMethod, Config, ConfigError},
    metrics::Metrics,
};

pub struct Providers(Vec<Arc<Provider>>);

impl Providers {
    /// The providers of `config`, their calls counted in `metrics`; with `private_key_jwt`,
    /// their client keys read (or, without a key file, the development key made in `DATA_DIR`).
    pub fn new(config: &Config, metrics: &Arc<Metrics>) -> Result<Self, ConfigError> {
        let mut providers = Vec::new();
        for p in &config.providers {
            let keys = match p.client_auth {
                ClientAuthMethod::PrivateKeyJwt if p.private_keys.is_empty() => {
                    let path = config.data_dir.join(format!("client-key-{}.pem", p.id));
                    Some(ClientKeys::development(&path).map_err(|e| {
                        ConfigError::new("DATA_DIR", format!("{}: {e}", path.display()))
                    })?)
                }
                ClientAuthMethod::PrivateKeyJwt => Some(
                    ClientKeys::from_pems(&p.private_keys)
                        .map_err(|e| ConfigError::new(&p.variable("PRIVATE_KEY_FILE"), e))?,
                ),
                _ => None,
            };
            providers.push(Arc::new(Provider::new(
                p.clone(),
                keys.map(Arc::new),
                config.redirect_uri.clone(),
                config.public_origin.clone(),
                metrics.clone(),
            )));
        }
        Ok(Self(providers))
    }

    /// The public keys of the app's clients (`private_key_jwt`), for `/.well-known/jwks.json`.
    pub fn client_jwks(&self) -> serde_json::Value {
        let keys: Vec<&serde_json::Value> = self
            .0
            .iter()
            .filter_map(|p| p.client_keys())
            .flat_map(|keys| keys.public_jwks())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Discovers every provider in the background, each on its own: one down or slow leaves the
    /// others working.
    pub fn keep_fresh(&self) {
        for provider in &self.0 {
            tokio::spawn(provider.keep_fresh());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.0.iter()
    }

    /// Every origin the browser is sent to for any provider, each once.
    pub fn browser_origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self.0.iter().flat_map(|p| p.browser_origins()).collect();
        origins.sort();
        origins.dedup();
        origins
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Provider>> {
        self.0.iter().find(|p| p.id() == id)
    }

    pub fn by_issuer(&self, issuer: &str) -> Option<&Arc<Provider>> {
        self.0.iter().find(|p| p.issuer() == issuer)
    }

    /// The provider that signed a session in: by its id, or for a session from before there
    /// were several (no id), by its issuer.
    pub fn of_session(&self, id: &str, issuer: &str) -> Option<&Arc<Provider>> {
        self.by_id(id).or_else(|| self.by_issuer(issuer))
    }

    /// The provider, when there is exactly one: `/login` then needs no choice.
    pub fn only(&self) -> Option<&Arc<Provider>> {
        match &self.0[..] {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The provider whose JWT (a logout token, an access token) this claims to be (by its
    /// `iss`, unverified: its keys alone then decide).
    pub fn for_jwt(&self, token: &str) -> Option<&Arc<Provider>> {
        self.by_issuer(&jwt::claimed_issuer(token)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(vars: &[(&str, &str)]) -> Providers {
        let vars: std::collections::HashMap<_, _> = vars.iter().cloned().collect();
        let config = Config::from_lookup("127.0.0.1:3000".parse().unwrap(), |name| {
            vars.get(name).map(|v| v.to_string())
        })
        .unwrap();
        Providers::new(&config, &Arc::default()).unwrap()
    }

    #[test]
    fn a_key_file_that_is_no_key_stops_the_start_naming_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(
            &file,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let file = file.display().to_string();
        let vars: std::collections::HashMap<_, _> = [
            ("OIDC_CLIENT_AUTH", "private_key_jwt"),
            ("OIDC_PRIVATE_KEY_FILE", file.as_str()),
        ]
        .into_iter()
        .collect();
        let config = Config::from_lookup("127.0.0.1:3000".parse().unwrap(), |name| {
            vars.get(name).map(|v| v.to_string())
        })
        .unwrap();
        let Err(err) = Providers::new(&config, &Arc::default()) else {
            panic!("a public key was taken for a private one");
        };
        let err = err.to_string();
        assert!(
            err.starts_with("OIDC_PRIVATE_KEY_FILE: key 1: a PEM \"PUBLIC KEY\""),
            "{err}"
        );
    }

    #[test]
    fn providers_are_found_by_id_and_by_issuer_in_their_order() {
        let list = providers(&[
            ("OIDC_PROVIDERS", "acme,globex"),
            ("OIDC_ACME_ISSUER", "https://acme.example"),
            ("OIDC_ACME_CLIENT_ID", "a"),
            ("OIDC_ACME_CLIENT_SECRET", "a"),
            ("OIDC_GLOBEX_ISSUER", "https://globex.example/"),
            ("OIDC_GLOBEX_CLIENT_ID", "g"),
            ("OIDC_GLOBEX_CLIENT_SECRET", "g"),
            ("OIDC_GLOBEX_LABEL", "Globex"),
        ]);
        let ids: Vec<&str> = list.iter().map(|p| p.id()).collect();
        assert_eq!(ids, ["acme", "globex"]);
        assert_eq!(list.by_id("globex").unwrap().label(), "Globex");
        assert!(list.by_id("Globex").is_none());
        assert_eq!(
            list.by_issuer("https://globex.example/").unwrap().id(),
            "globex"
        );
        assert!(
            list.by_issuer("https://globex.example").is_none(),
            "issuers are exact"
        );
        assert!(list.only().is_none());
        assert_eq!(
            list.of_session("acme", "https://globex.example/")
                .unwrap()
                .id(),
            "acme"
        );
        assert_eq!(
            list.of_session("", "https://globex.example/").unwrap().id(),
            "globex"
        );
        assert!(list.of_session("gone", "https://gone.example").is_none());
    }

    #[test]
    fn one_provider_needs_no_choice() {
        let list = providers(&[]);
        assert_eq!(list.only().unwrap().id(), crate::config::DEFAULT_ID);
    }
}
