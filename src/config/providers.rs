//! The OpenID providers the app signs in with, from the environment.
//!
//! `OIDC_PROVIDERS=okta,google` names them; each id then takes `OIDC_<ID>_ISSUER`,
//! `OIDC_<ID>_CLIENT_ID`, `OIDC_<ID>_CLIENT_SECRET`, and optionally `OIDC_<ID>_LABEL`,
//! `OIDC_<ID>_SCOPES`, `OIDC_<ID>_CLOCK_SKEW_SECONDS` and `OIDC_<ID>_TIMEOUT_SECONDS` (the last
//! three default to their `OIDC_*` form). Without `OIDC_PROVIDERS`, the single-provider
//! variables (`OIDC_ISSUER`, ...) make one provider with the id `default`; with nothing at all,
//! the bundled development provider is that one.

use std::{collections::HashSet, time::Duration};

use openidconnect::{ClientId, ClientSecret, IssuerUrl};

use super::{parse_http_url, ConfigError};
use crate::claims::ClaimRule;

/// The bundled development provider (`scripts/provider`), used when nothing is configured: its
/// first issuer, "Acme Corp".
pub const DEV_ISSUER: &str = "http://127.0.0.1:4000";
pub const DEV_CLIENT_ID: &str = "leptos-oidc-demo";
pub const DEV_CLIENT_SECRET: &str = "leptos-oidc-demo-secret";
const DEV_LABEL: &str = "Acme Corp";

/// The id of the provider that the single-provider variables configure.
pub const DEFAULT_ID: &str = "default";

/// One provider: who it is, how the app is registered there, and how patient to be with it.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Lowercase letters, digits and `-`: what `/login?provider=` names.
    pub id: String,
    /// The sign-in button's text.
    pub label: String,
    /// Kept exactly as written: issuers are compared as strings, trailing slash included.
    pub issuer: IssuerUrl,
    pub client_id: ClientId,
    /// Empty with `private_key_jwt`, which needs none.
    pub client_secret: ClientSecret,
    pub client_auth: ClientAuthMethod,
    /// With `private_key_jwt`: the PEM texts of `PRIVATE_KEY_FILE` (comma-separated files; the
    /// first signs, all are published). None: a development key kept in `DATA_DIR`.
    pub private_keys: Vec<String>,
    pub assertion_audience: AssertionAudience,
    pub par: ParMode,
    /// DPoP (RFC 9449, `OIDC_<ID>_DPOP=true`): access tokens bound to a key of each session's.
    pub dpop: bool,
    /// Scopes requested beyond `openid` (which is always sent).
    pub scopes: Vec<String>,
    /// Tolerance for clock differences with the provider (`exp`, `iat`, `nbf`).
    pub clock_skew: Duration,
    /// How long one request to the provider may take before the user is told it is slow.
    pub timeout: Duration,
    /// The `aud` a JWT access token must name for the app's own API (`API_AUDIENCE`; by
    /// default this provider's client id).
    pub api_audience: String,
    /// The clients whose opaque access tokens the app's API takes, as introspection names them
    /// (`API_CLIENTS`, comma-separated; by default this app's own client at this provider).
    pub api_clients: Vec<String>,
    /// Claim values a user must have to sign in with this provider (`REQUIRE_CLAIM`,
    /// comma-separated `claim:value` rules, all of which must hold).
    pub require_claims: Vec<ClaimRule>,
}

impl ProviderConfig {
    /// The variable this provider's setting `name` (`ISSUER`, say) is read from.
    pub fn variable(&self, name: &str) -> String {
        if self.id == DEFAULT_ID {
            format!("OIDC_{name}")
        } else {
            format!("{}{name}", prefix_of(&self.id))
        }
    }
}

/// What the token endpoint is told the client is authenticated by (`OIDC_<ID>_CLIENT_AUTH`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// The client secret: HTTP Basic, unless the provider takes it only in the body.
    #[default]
    Auto,
    SecretBasic,
    SecretPost,
    /// A JWT signed with the app's own key (RFC 7523); no client secret.
    PrivateKeyJwt,
}

/// What a client assertion's `aud` names (`OIDC_<ID>_ASSERTION_AUD`): the issuer, as FAPI 2.0,
/// Auth0 and oidc-provider expect, or the token endpoint's URL, as Okta documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssertionAudience {
    #[default]
    Issuer,
    TokenEndpoint,
}

/// When sign-ins go by a pushed authorization request (RFC 9126, `OIDC_<ID>_PAR`): the
/// authorization request is posted to the provider first, and the browser carries only its
/// reference (`client_id` and `request_uri`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParMode {
    /// When the provider requires it (`require_pushed_authorization_requests`).
    #[default]
    Auto,
    /// Whenever the provider offers it; a provider that does not is misconfigured for this app.
    Always,
    Never,
}

/// The start of the variables of provider `id`, one of several: `OIDC_<ID>_`.
fn prefix_of(id: &str) -> String {
    format!("OIDC_{}_", id.to_ascii_uppercase().replace('-', "_"))
}

/// Reads the providers through `var` (which treats blank values as unset).
pub fn from_lookup(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let Some(list) = var("OIDC_PROVIDERS") else {
        return single(var).map(|p| vec![p]);
    };
    for name in [
        "OIDC_ISSUER",
        "OIDC_CLIENT_ID",
        "OIDC_CLIENT_SECRET",
        "OIDC_LABEL",
    ] {
        if var(name).is_some() {
            return Err(ConfigError::new(
                name,
                "is set alongside OIDC_PROVIDERS: give each provider its own OIDC_<ID>_ variables instead",
            ));
        }
    }
    // The list as a whole first: a typo there is the thing to report.
    let ids: Vec<&str> = list.split(',').map(str::trim).collect();
    let mut seen = HashSet::new();
    for id in &ids {
        check_id(id)?;
        if !seen.insert(id) {
            return Err(ConfigError::new(
                "OIDC_PROVIDERS",
                format!("names \"{id}\" twice"),
            ));
        }
    }
    let mut providers: Vec<ProviderConfig> = Vec::new();
    for id in ids {
        let prefix = prefix_of(id);
        let required = |name: &str| {
            let name = format!("{prefix}{name}");
            var(&name).ok_or_else(|| {
                ConfigError::new(
                    &name,
                    format!("is not set (provider \"{id}\" is in OIDC_PROVIDERS)"),
                )
            })
        };
        let provider = provider(
            var,
            id,
            &prefix,
            required("ISSUER")?,
            required("CLIENT_ID")?,
            var(&format!("{prefix}CLIENT_SECRET")),
            id,
        )?;
        if let Some(other) = providers
            .iter()
            .find(|p| p.issuer.as_str() == provider.issuer.as_str())
        {
            return Err(ConfigError::new(
                &format!("{prefix}ISSUER"),
                format!(
                    "is provider \"{}\"'s issuer too; each issuer may be configured once",
                    other.id
                ),
            ));
        }
        providers.push(provider);
    }
    Ok(providers)
}

/// The single-provider form: `OIDC_ISSUER` and its client, or the bundled provider.
fn single(var: &dyn Fn(&str) -> Option<String>) -> Result<ProviderConfig, ConfigError> {
    let Some(issuer) = var("OIDC_ISSUER") else {
        let label = var("OIDC_LABEL").unwrap_or_else(|| DEV_LABEL.into());
        return provider(
            var,
            DEFAULT_ID,
            "OIDC_",
            DEV_ISSUER.into(),
            DEV_CLIENT_ID.into(),
            Some(DEV_CLIENT_SECRET.into()),
            &label,
        );
    };
    let required = |name: &str| {
        var(name)
            .ok_or_else(|| ConfigError::new(name, "is not set (it is required with OIDC_ISSUER)"))
    };
    let (client_id, client_secret) = (required("OIDC_CLIENT_ID")?, var("OIDC_CLIENT_SECRET"));
    // Without a label of its own, the button names the provider's host.
    let host = parse_http_url("OIDC_ISSUER", &issuer)?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let label = var("OIDC_LABEL").unwrap_or(host);
    provider(
        var,
        DEFAULT_ID,
        "OIDC_",
        issuer,
        client_id,
        client_secret,
        &label,
    )
}

/// One provider's settings, read from the variables that start with `prefix`; the optional
/// ones fall back to their `OIDC_*` form, then to the defaults.
fn provider(
    var: &dyn Fn(&str) -> Option<String>,
    id: &str,
    prefix: &str,
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    default_label: &str,
) -> Result<ProviderConfig, ConfigError> {
    // The variable that gives `name`, and its value: the provider's own first.
    let setting = |name: &str| -> Option<(String, String)> {
        [format!("{prefix}{name}"), format!("OIDC_{name}")]
            .into_iter()
            .find_map(|var_name| var(&var_name).map(|value| (var_name, value)))
    };
    let seconds = |name: &str, default: u64| -> Result<Duration, ConfigError> {
        match setting(name) {
            None => Ok(Duration::from_secs(default)),
            Some((var_name, v)) => v.trim().parse().map(Duration::from_secs).map_err(|_| {
                ConfigError::new(&var_name, format!("\"{v}\" is not a number of seconds"))
            }),
        }
    };

    let issuer_var = format!("{prefix}ISSUER");
    parse_http_url(&issuer_var, &issuer)?;
    let issuer =
        IssuerUrl::new(issuer).map_err(|e| ConfigError::new(&issuer_var, e.to_string()))?;

    let (scopes_var, scopes_text) = setting("SCOPES")
        .unwrap_or_else(|| (format!("{prefix}SCOPES"), "openid email profile".into()));
    let scopes: Vec<String> = scopes_text.split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError::new(
            &scopes_var,
            format!("\"{scopes_text}\" lacks \"openid\", which OpenID Connect requires"),
        ));
    }

    let require_claims = match setting("REQUIRE_CLAIM") {
        None => Vec::new(),
        Some((var_name, text)) => comma_list(&text)
            .map(|rule| {
                ClaimRule::parse(rule).ok_or_else(|| {
                    ConfigError::new(
                        &var_name,
                        format!("\"{rule}\" is not a claim:value rule, like groups:admins"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };

    let client_auth = choice(
        setting("CLIENT_AUTH"),
        &[
            ("client_secret_basic", ClientAuthMethod::SecretBasic),
            ("client_secret_post", ClientAuthMethod::SecretPost),
            ("private_key_jwt", ClientAuthMethod::PrivateKeyJwt),
        ],
        ClientAuthMethod::Auto,
    )?;
    let client_secret = match (client_auth, client_secret) {
        (ClientAuthMethod::PrivateKeyJwt, _) => String::new(),
        (_, Some(secret)) => secret,
        (_, None) => {
            return Err(ConfigError::new(
                &format!("{prefix}CLIENT_SECRET"),
                "is not set (it is required unless CLIENT_AUTH is private_key_jwt)",
            ))
        }
    };
    let private_keys = match setting("PRIVATE_KEY_FILE") {
        None => Vec::new(),
        Some((var_name, files)) => comma_list(&files)
            .map(|file| {
                std::fs::read_to_string(file)
                    .map_err(|e| ConfigError::new(&var_name, format!("{file} cannot be read: {e}")))
            })
            .collect::<Result<_, _>>()?,
    };
    let assertion_audience = choice(
        setting("ASSERTION_AUD"),
        &[
            ("issuer", AssertionAudience::Issuer),
            ("token_endpoint", AssertionAudience::TokenEndpoint),
        ],
        AssertionAudience::Issuer,
    )?;
    let par = choice(
        setting("PAR"),
        &[
            ("auto", ParMode::Auto),
            ("always", ParMode::Always),
            ("never", ParMode::Never),
        ],
        ParMode::Auto,
    )?;
    let dpop = choice(setting("DPOP"), &[("true", true), ("false", false)], false)?;

    let timeout = seconds("TIMEOUT_SECONDS", 10)?;
    if timeout.is_zero() {
        return Err(ConfigError::new(
            &setting("TIMEOUT_SECONDS")
                .map(|(n, _)| n)
                .unwrap_or_default(),
            "must be at least 1 second",
        ));
    }
    Ok(ProviderConfig {
        id: id.to_owned(),
        label: var(&format!("{prefix}LABEL")).unwrap_or_else(|| default_label.to_owned()),
        issuer,
        client_secret: ClientSecret::new(client_secret),
        client_auth,
        private_keys,
        assertion_audience,
        par,
        dpop,
        scopes: scopes.into_iter().filter(|s| s != "openid").collect(),
        clock_skew: seconds("CLOCK_SKEW_SECONDS", 60)?,
        timeout,
        api_audience: var("API_AUDIENCE").unwrap_or_else(|| client_id.clone()),
        api_clients: match var("API_CLIENTS") {
            Some(list) => comma_list(&list).map(str::to_owned).collect(),
            None => vec![client_id.clone()],
        },
        client_id: ClientId::new(client_id),
        require_claims,
    })
}

/// The value a setting (its variable and text) names among `choices`; `default` when unset.
fn choice<T: Copy>(
    setting: Option<(String, String)>,
    choices: &[(&str, T)],
    default: T,
) -> Result<T, ConfigError> {
    let Some((var_name, text)) = setting else {
        return Ok(default);
    };
    choices
        .iter()
        .find(|(name, _)| *name == text.trim())
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            ConfigError::new(
                &var_name,
                format!("\"{}\" is none of {}", text.trim(), names.join(", ")),
            )
        })
}

/// The items of a comma-separated setting, trimmed, blanks left out.
fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Ids are what `/login?provider=` names and what variable names are made of.
fn check_id(id: &str) -> Result<(), ConfigError> {
    let valid = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            "OIDC_PROVIDERS",
            format!("\"{id}\" is not a provider id (lowercase letters, digits and -, at most 32)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn providers(vars: &[(&str, &str)]) -> Result<Vec<ProviderConfig>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(&|name| vars.get(name).cloned().filter(|v| !v.trim().is_empty()))
    }

    #[test]
    fn client_authentication_is_read_and_private_key_jwt_needs_no_secret() {
        let okta = [
            ("OIDC_PROVIDERS", "okta"),
            ("OIDC_OKTA_ISSUER", "https://okta.example"),
            ("OIDC_OKTA_CLIENT_ID", "app"),
        ];
        let without_secret = providers(&okta).unwrap_err().to_string();
        assert!(
            without_secret.starts_with("OIDC_OKTA_CLIENT_SECRET:"),
            "{without_secret}"
        );
        let jwt = [&okta[..], &[("OIDC_OKTA_CLIENT_AUTH", "private_key_jwt")]].concat();
        let p = &providers(&jwt).unwrap()[0];
        assert_eq!(p.client_auth, ClientAuthMethod::PrivateKeyJwt);
        assert_eq!(p.client_secret.secret(), "");
        assert_eq!(p.assertion_audience, AssertionAudience::Issuer);
        assert!(p.private_keys.is_empty());
        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/client-key-ec-sec1.pem"
        );
        let with = [
            &jwt[..],
            &[
                ("OIDC_OKTA_PRIVATE_KEY_FILE", key),
                ("OIDC_OKTA_ASSERTION_AUD", "token_endpoint"),
            ],
        ]
        .concat();
        let p = &providers(&with).unwrap()[0];
        assert!(p.private_keys[0].starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert_eq!(p.assertion_audience, AssertionAudience::TokenEndpoint);
        assert_eq!(p.par, ParMode::Auto);
        let always = [&jwt[..], &[("OIDC_OKTA_PAR", "always")]].concat();
        assert_eq!(providers(&always).unwrap()[0].par, ParMode::Always);
        for (name, value) in [
            ("OIDC_OKTA_CLIENT_AUTH", "mtls"),
            ("OIDC_OKTA_ASSERTION_AUD", "everyone"),
            ("OIDC_OKTA_PRIVATE_KEY_FILE", "/nowhere/key.pem"),
            ("OIDC_OKTA_PAR", "sometimes"),
        ] {
            let err = providers(&[&jwt[..], &[(name, value)]].concat())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{name}:")), "{err}");
        }
        let post = [
            &okta[..],
            &[
                ("OIDC_OKTA_CLIENT_SECRET", "s"),
                ("OIDC_OKTA_CLIENT_AUTH", "client_secret_post"),
            ],
        ]
        .concat();
        assert_eq!(
            providers(&post).unwrap()[0].client_auth,
            ClientAuthMethod::SecretPost
        );
    }

    fn error(vars: &[(&str, &str)]) -> String {
        providers(vars).unwrap_err().to_string()
    }

    const TWO: [(&str, &str); 7] = [
        ("OIDC_PROVIDERS", "okta, google-work"),
        (
            "OIDC_OKTA_ISSUER",
            "https://example.okta.com/oauth2/default",
        ),
        ("OIDC_OKTA_CLIENT_ID", "okta-client"),
        ("OIDC_OKTA_CLIENT_SECRET", "okta-secret"),
        ("OIDC_GOOGLE_WORK_ISSUER", "https://accounts.google.com"),
        ("OIDC_GOOGLE_WORK_CLIENT_ID", "google-client"),
        ("OIDC_GOOGLE_WORK_CLIENT_SECRET", "google-secret"),
    ];

    #[test]
    fn nothing_configured_is_the_bundled_provider() {
        let [p] = &providers(&[]).unwrap()[..] else {
            panic!("one provider")
        };
        assert_eq!((p.id.as_str(), p.issuer.as_str()), (DEFAULT_ID, DEV_ISSUER));
        assert_eq!(p.client_id.as_str(), DEV_CLIENT_ID);
        assert_eq!(p.label, DEV_LABEL);
        assert_eq!(p.scopes, ["email", "profile"]);
        assert_eq!(p.timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_single_provider_variables_make_the_default_provider() {
        let [p] = &providers(&[
            ("OIDC_ISSUER", "https://example.okta.com"),
            ("OIDC_CLIENT_ID", "abc"),
            ("OIDC_CLIENT_SECRET", "def"),
            ("OIDC_SCOPES", "openid email offline_access"),
            ("OIDC_TIMEOUT_SECONDS", "3"),
        ])
        .unwrap()[..] else {
            panic!("one provider")
        };
        assert_eq!(p.id, DEFAULT_ID);
        assert_eq!(p.label, "example.okta.com");
        assert_eq!(p.scopes, ["email", "offline_access"]);
        assert_eq!(p.timeout, Duration::from_secs(3));
    }

    #[test]
    fn several_providers_each_with_their_own_settings() {
        let mut vars = TWO.to_vec();
        vars.extend([
            ("OIDC_GOOGLE_WORK_LABEL", "Google (work)"),
            ("OIDC_OKTA_TIMEOUT_SECONDS", "4"),
            ("OIDC_TIMEOUT_SECONDS", "7"),
            ("OIDC_CLOCK_SKEW_SECONDS", "30"),
            ("OIDC_GOOGLE_WORK_SCOPES", "openid email"),
        ]);
        let list = providers(&vars).unwrap();
        let ids: Vec<&str> = list.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["okta", "google-work"]);
        let (okta, google) = (&list[0], &list[1]);
        assert_eq!(okta.label, "okta", "the label defaults to the id");
        assert_eq!(google.label, "Google (work)");
        assert_eq!(
            okta.timeout,
            Duration::from_secs(4),
            "its own setting first"
        );
        assert_eq!(google.timeout, Duration::from_secs(7), "then the OIDC_ one");
        assert_eq!(google.clock_skew, Duration::from_secs(30));
        assert_eq!(okta.scopes, ["email", "profile"]);
        assert_eq!(google.scopes, ["email"]);
        assert_eq!(google.client_secret.secret(), "google-secret");
    }

    #[test]
    fn every_bad_value_is_named() {
        let with = |changes: &[(&'static str, &'static str)]| {
            let mut vars: HashMap<&str, &str> = TWO.into_iter().collect();
            for (k, v) in changes {
                vars.insert(k, v);
            }
            error(&vars.into_iter().collect::<Vec<_>>())
        };
        for (changes, named) in [
            (&[("OIDC_PROVIDERS", "okta,Google")][..], "OIDC_PROVIDERS"),
            (&[("OIDC_PROVIDERS", "okta,,google-work")], "OIDC_PROVIDERS"),
            (&[("OIDC_PROVIDERS", "okta,okta")], "OIDC_PROVIDERS"),
            (&[("OIDC_PROVIDERS", "okta,-x")], "OIDC_PROVIDERS"),
            (&[("OIDC_PROVIDERS", "okta,azure")], "OIDC_AZURE_ISSUER"),
            (
                &[("OIDC_OKTA_CLIENT_SECRET", " ")],
                "OIDC_OKTA_CLIENT_SECRET",
            ),
            (
                &[("OIDC_GOOGLE_WORK_CLIENT_ID", "")],
                "OIDC_GOOGLE_WORK_CLIENT_ID",
            ),
            (&[("OIDC_OKTA_ISSUER", "not a url")], "OIDC_OKTA_ISSUER"),
            (
                &[("OIDC_OKTA_ISSUER", "ftp://example.com")],
                "OIDC_OKTA_ISSUER",
            ),
            (
                &[(
                    "OIDC_GOOGLE_WORK_ISSUER",
                    "https://example.okta.com/oauth2/default",
                )],
                "OIDC_GOOGLE_WORK_ISSUER",
            ),
            (&[("OIDC_OKTA_SCOPES", "email")], "OIDC_OKTA_SCOPES"),
            (&[("OIDC_SCOPES", "profile")], "OIDC_SCOPES"),
            (
                &[("OIDC_OKTA_TIMEOUT_SECONDS", "soon")],
                "OIDC_OKTA_TIMEOUT_SECONDS",
            ),
            (&[("OIDC_TIMEOUT_SECONDS", "0")], "OIDC_TIMEOUT_SECONDS"),
            (
                &[("OIDC_OKTA_REQUIRE_CLAIM", "groups:admins, staff")],
                "OIDC_OKTA_REQUIRE_CLAIM",
            ),
            (
                &[("OIDC_GOOGLE_WORK_CLOCK_SKEW_SECONDS", "-1")],
                "OIDC_GOOGLE_WORK_CLOCK_SKEW_SECONDS",
            ),
            (&[("OIDC_ISSUER", "https://x.example")], "OIDC_ISSUER"),
            (&[("OIDC_CLIENT_ID", "x")], "OIDC_CLIENT_ID"),
        ] {
            let err = with(changes);
            assert!(err.starts_with(&format!("{named}: ")), "{changes:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn claim_rules_are_per_provider_with_a_shared_default() {
        let mut vars = TWO.to_vec();
        vars.extend([
            (
                "OIDC_OKTA_REQUIRE_CLAIM",
                "groups:admins, email_verified:true",
            ),
            ("OIDC_REQUIRE_CLAIM", "hd:example.com"),
        ]);
        let [okta, google] = &providers(&vars).unwrap()[..] else {
            panic!("two providers")
        };
        let rules = |p: &ProviderConfig| {
            p.require_claims
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(rules(okta), ["groups:admins", "email_verified:true"]);
        assert_eq!(rules(google), ["hd:example.com"]);
        assert!(providers(&TWO).unwrap()[0].require_claims.is_empty());
    }

    #[test]
    fn an_issuer_without_its_client_names_the_missing_variable() {
        let err = error(&[("OIDC_ISSUER", "https://example.okta.com")]);
        assert!(err.starts_with("OIDC_CLIENT_ID:"), "{err}");
        let err = error(&[
            ("OIDC_ISSUER", "https://example.okta.com"),
            ("OIDC_CLIENT_ID", "a"),
        ]);
        assert!(err.starts_with("OIDC_CLIENT_SECRET:"), "{err}");
    }
}
