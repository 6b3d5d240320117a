//! Configuration: the app's own settings from the environment (and `.env`), and Leptos's options
//! from `Leptos.toml` with `LEPTOS_*` environment variables overriding each one.
//!
//! A bad or missing value stops the start with one line that names it.

use std::{
    env,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use leptos::config::{get_config_from_str, LeptosOptions};
use openidconnect::RedirectUrl;
use url::Url;

mod providers;
pub use providers::{
    AssertionAudience, ClientAuthMethod, ParMode, ProviderConfig, DEFAULT_ID, DEV_CLIENT_ID,
    DEV_CLIENT_SECRET, DEV_ISSUER,
};

/// The callback path users of the Okta sample have registered at their provider: one for every
/// provider.
pub const CALLBACK_PATH: &str = "/authorization-code/callback";

/// `Leptos.toml` as it was at build time: used when no file is found at run time.
const BUILT_IN_LEPTOS_TOML: &str = include_str!("../../Leptos.toml");

/// A setting that does not work, named: what stops the start, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    name: String,
    problem: String,
}

impl ConfigError {
    pub fn new(name: &str, problem: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            problem: problem.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The providers, in the order the sign-in page lists them; at least one.
    pub providers: Vec<ProviderConfig>,
    /// The callback as registered at every provider.
    pub redirect_uri: RedirectUrl,
    /// `sqlite:path` (the default, `sqlite:data/app.db`) or `postgres://...`.
    pub database_url: String,
    /// Where sessions are kept: the database, or Redis at this URL (`SESSION_STORE=redis`).
    pub redis_url: Option<String>,
    /// How long a call to the database or the session store may take (`STORE_TIMEOUT_MS`,
    /// default 1000): a store that does not answer by then is unavailable, and the request says
    /// so (a 503) instead of waiting.
    pub store_timeout: Duration,
    /// Where `/metrics` is served on a listener of its own (`METRICS_ADDR`), so that it need
    /// not be public; without it, `/metrics` is one of the app's routes.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the app is reached by browsers (scheme, host, port): the redirect URI's origin.
    pub public_origin: Url,
    pub session: SessionConfig,
    pub shutdown: ShutdownConfig,
    /// How recently the user must have entered their credentials for a sensitive action (sign
    /// out everywhere; `SignedIn::require_recent_sign_in` with it): `STEP_UP_MAX_AGE_SECONDS`,
    /// default 300. Older, and the provider is asked to confirm them again.
    pub step_up_max_age: Duration,
    /// The keys that seal the tokens in session records (`SESSION_KEYS`): the first seals, all
    /// open. Without them, a development key kept in `data_dir`.
    pub session_keys: Option<Vec<SessionKey>>,
    /// Where the app keeps files it makes (the development session key): `DATA_DIR`, else the
    /// SQLite database's directory, else `data`.
    pub data_dir: PathBuf,
}

/// A file the app makes for development at its first start and reads afterwards (a key, kept in
/// `DATA_DIR`): its text, and whether it was made now. Made readable by its owner only; written
/// aside and linked into place, so that of two instances starting at once, one makes it and
/// both use that one.
pub fn development_file(
    path: &Path,
    make: impl FnOnce() -> String,
) -> std::io::Result<(String, bool)> {
    let mut made = false;
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let aside = path.with_extension(format!("new.{}", std::process::id()));
        write_private_file(&aside, &make())?;
        let linked = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => made = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok((std::fs::read_to_string(path)?, made))
}

/// Writes `text` to a new file that only its owner may read.
fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// A key of `SESSION_KEYS`: 32 bytes, for AES-256-GCM.
pub type SessionKey = [u8; 32];

/// A key as `SESSION_KEYS` writes it: base64 (standard or URL-safe, padded or not) of 32
/// bytes, as `openssl rand -base64 32` prints one.
pub fn parse_session_key(text: &str) -> Option<SessionKey> {
    use base64::{
        engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
        Engine,
    };
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .and_then(|bytes| SessionKey::try_from(bytes.as_slice()).ok())
}

/// What the server does on SIGTERM (or Ctrl-C): `/readyz` answers 503 at once; new connections
/// are still taken for `delay` (while a load balancer notices), then refused; requests under way
/// get `grace` to finish before the process exits without them.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownConfig {
    pub delay: Duration,
    pub grace: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Send the cookie only over https (derived from the public origin).
    pub secure: bool,
}

impl Config {
    /// Reads the app's settings from the process environment.
    pub fn from_env(site_addr: SocketAddr) -> Result<Self, ConfigError> {
        Self::from_lookup(site_addr, |name| env::var(name).ok())
    }

    /// Reads the app's settings through `var`, so tests need not touch the process environment.
    pub fn from_lookup(
        site_addr: SocketAddr,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let providers = providers::from_lookup(&var)?;

        let redirect = match var("OIDC_REDIRECT_URI") {
            Some(uri) => parse_http_url("OIDC_REDIRECT_URI", &uri)?,
            None => Url::parse(&format!("http://{site_addr}{CALLBACK_PATH}"))
                .map_err(|e| ConfigError::new("LEPTOS_SITE_ADDR", e.to_string()))?,
        };
        let public_origin = Url::parse(&redirect.origin().ascii_serialization())
            .map_err(|e| ConfigError::new("OIDC_REDIRECT_URI", e.to_string()))?;
        let redirect_uri = RedirectUrl::from_url(redirect);

        let database_url = var("DATABASE_URL").unwrap_or_else(|| "sqlite:data/app.db".into());
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|scheme| database_url.starts_with(scheme))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                format!("\"{database_url}\" is neither a sqlite: nor a postgres:// URL"),
            ));
        }
        let redis_url = match var("SESSION_STORE").as_deref().map(str::trim) {
            None | Some("database") => None,
            Some("redis") => Some(var("REDIS_URL").ok_or_else(|| {
                ConfigError::new(
                    "REDIS_URL",
                    "is not set (it is required with SESSION_STORE=redis)",
                )
            })?),
            Some(other) => {
                return Err(ConfigError::new(
                    "SESSION_STORE",
                    format!("\"{other}\" is neither \"database\" nor \"redis\""),
                ))
            }
        };

        let seconds = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            match var(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v.trim().parse().map(Duration::from_secs).map_err(|_| {
                    ConfigError::new(name, format!("\"{v}\" is not a number of seconds"))
                }),
            }
        };

        let store_timeout = match var("STORE_TIMEOUT_MS") {
            None => crate::db::DEFAULT_TIMEOUT,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::new(
                        "STORE_TIMEOUT_MS",
                        format!("\"{v}\" is not a positive number of milliseconds"),
                    ))
                }
            },
        };

        let metrics_addr = match var("METRICS_ADDR") {
            None => None,
            Some(v) => Some(v.trim().parse().map_err(|_| {
                ConfigError::new(
                    "METRICS_ADDR",
                    format!("\"{v}\" is not an address and port, like 127.0.0.1:9090"),
                )
            })?),
        };

        let session_keys = match var("SESSION_KEYS") {
            None => None,
            Some(keys) => Some(
                keys.split(',')
                    .enumerate()
                    .map(|(n, key)| {
                        parse_session_key(key).ok_or_else(|| {
                            ConfigError::new(
                                "SESSION_KEYS",
                                format!(
                                    "key {} is not 32 bytes in base64 (make one with `openssl rand -base64 32`)",
                                    n + 1
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let data_dir = match var("DATA_DIR") {
            Some(dir) => PathBuf::from(dir.trim()),
            None => database_url
                .strip_prefix("sqlite:")
                .map(|path| path.trim_start_matches("//"))
                .and_then(|path| Path::new(path.split('?').next().unwrap_or(path)).parent())
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("data"), Path::to_path_buf),
        };

        Ok(Self {
            providers,
            metrics_addr,
            session_keys,
            data_dir,
            database_url,
            redis_url,
            store_timeout,
            session: SessionConfig {
                idle: seconds("SESSION_IDLE_SECONDS", 2 * 60 * 60)?,
                absolute: seconds("SESSION_MAX_SECONDS", 24 * 60 * 60)?,
                secure: public_origin.scheme() == "https",
            },
            shutdown: ShutdownConfig {
                delay: seconds("SHUTDOWN_DELAY_SECONDS", 0)?,
                grace: seconds("SHUTDOWN_GRACE_SECONDS", 30)?,
            },
            step_up_max_age: seconds("STEP_UP_MAX_AGE_SECONDS", 300)?,
            public_origin,
            redirect_uri,
        })
    }
}

fn parse_http_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::new(name, format!("\"{value}\" is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            name,
            format!("\"{value}\" is not an http(s) URL"),
        ));
    }
    Ok(url)
}

/// Leptos's options: `Leptos.toml` (the file named by `LEPTOS_CONFIG`, else `./Leptos.toml`, else
/// the copy built into the binary), with each `LEPTOS_*` variable that is set (`LEPTOS_SITE_ADDR`,
/// `LEPTOS_SITE_ROOT`, ...) overriding its key. cargo-leptos sets those variables when it runs the
/// server, so both ways agree.
pub fn leptos_options() -> Result<LeptosOptions, ConfigError> {
    let text = match env::var("LEPTOS_CONFIG").map(PathBuf::from) {
        Ok(path) => std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new("LEPTOS_CONFIG", format!("{}: {e}", path.display())))?,
        Err(_) => std::fs::read_to_string("Leptos.toml")
            .unwrap_or_else(|_| BUILT_IN_LEPTOS_TOML.to_owned()),
    };
    get_config_from_str(&text)
        .map_err(|e| ConfigError::new("Leptos.toml or LEPTOS_*", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ADDR: &str = "127.0.0.1:3000";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(ADDR.parse().unwrap(), |name| vars.get(name).cloned())
    }

    #[test]
    fn no_configuration_uses_the_bundled_provider() {
        let c = config(&[]).unwrap();
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].issuer.as_str(), DEV_ISSUER);
        assert_eq!(
            c.redirect_uri.as_str(),
            "http://127.0.0.1:3000/authorization-code/callback"
        );
        assert!(!c.session.secure);
    }

    #[test]
    fn bad_values_are_named() {
        for (name, value) in [
            ("OIDC_ISSUER", "not a url"),
            ("OIDC_REDIRECT_URI", "ftp://x/cb"),
            ("OIDC_SCOPES", "email profile"),
            ("DATABASE_URL", "mysql://x"),
            ("OIDC_CLOCK_SKEW_SECONDS", "soon"),
            ("SESSION_STORE", "memcached"),
            ("SESSION_STORE", "redis"),
            ("STORE_TIMEOUT_MS", "0"),
            ("STORE_TIMEOUT_MS", "1s"),
            ("METRICS_ADDR", "localhost"),
            ("SESSION_KEYS", "c2hvcnQ="),
            (
                "SESSION_KEYS",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,not a key",
            ),
        ] {
            let mut vars = vec![(name, value)];
            if name == "OIDC_ISSUER" {
                vars.extend([("OIDC_CLIENT_ID", "a"), ("OIDC_CLIENT_SECRET", "b")]);
            }
            let err = config(&vars).unwrap_err().to_string();
            // SESSION_STORE=redis without REDIS_URL names the missing one.
            let named = if value == "redis" { "REDIS_URL" } else { name };
            assert!(err.starts_with(&format!("{named}:")), "{err}");
        }
    }

    #[test]
    fn session_keys_are_read_in_order_and_files_kept_beside_the_database() {
        let (one, two) = (
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU",
        );
        let c = config(&[("SESSION_KEYS", &format!("{one}, {two}"))]).unwrap();
        let keys = c.session_keys.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(&keys[0], b"0123456789abcdef0123456789abcdef");
        assert_eq!(&keys[1], b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
        assert!(config(&[]).unwrap().session_keys.is_none());
        for (database_url, dir) in [
            (None, "data"),
            (Some("sqlite:/var/lib/app/app.db"), "/var/lib/app"),
            (Some("sqlite://db/app.db?mode=rwc"), "db"),
            (Some("sqlite::memory:"), "data"),
            (Some("postgres://db/app"), "data"),
        ] {
            let vars: Vec<_> = database_url
                .map(|url| ("DATABASE_URL", url))
                .into_iter()
                .collect();
            assert_eq!(
                config(&vars).unwrap().data_dir,
                PathBuf::from(dir),
                "{database_url:?}"
            );
        }
        let c = config(&[("DATA_DIR", "/srv/app")]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/app"));
    }

    #[test]
    fn an_https_redirect_uri_makes_the_cookie_secure() {
        let c = config(&[(
            "OIDC_REDIRECT_URI",
            "https://app.example.com/authorization-code/callback",
        )])
        .unwrap();
        assert!(c.session.secure);
        assert_eq!(c.public_origin.as_str(), "https://app.example.com/");
    }

    #[test]
    fn leptos_toml_agrees_with_cargo_leptos() {
        let options = get_config_from_str(BUILT_IN_LEPTOS_TOML).unwrap();
        let cargo = get_config_from_str(include_str!("../../Cargo.toml")).unwrap();
        assert_eq!(options.output_name, cargo.output_name);
        assert_eq!(options.site_pkg_dir, cargo.site_pkg_dir);
        assert_eq!(options.site_root, cargo.site_root);
        assert_eq!(options.site_addr, cargo.site_addr);
        assert_eq!(options.reload_port, cargo.reload_port);
    }
}
