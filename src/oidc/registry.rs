//! The configured providers, in the order the sign-in page lists them: found by id (a sign-in
//! names its provider) or by issuer (a logout token names its own).

use std::sync::Arc;

use super::{jwt, Provider};
use crate::{config::Config, metrics::Metrics};

pub struct Providers(Vec<Arc<Provider>>);

impl Providers {
    /// The providers of `config`, their calls counted in `metrics`.
    pub fn new(config: &Config, metrics: &Arc<Metrics>) -> Self {
        Self(
            config
                .providers
                .iter()
                .map(|p| {
                    Arc::new(Provider::new(
                        p.clone(),
                        config.redirect_uri.clone(),
                        config.public_origin.clone(),
                        metrics.clone(),
                    ))
                })
                .collect(),
        )
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
        Providers::new(&config, &Arc::default())
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
