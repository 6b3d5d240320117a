//! `leptos-oidc check`: reads the configuration as the server would, reaches the database, the
//! session store and each provider's discovery and keys, and prints one line per item, with
//! what is wrong and the variable to fix. Exits non-zero on any problem. Run it before the first
//! start of a deployment, and after any change of its settings.

use std::{future::Future, time::Duration};

use crate::{
    config::{self, Config},
    db,
    oidc::{OidcError, Providers},
    session,
};

/// The longest any one item may take to answer.
const BOUND: Duration = Duration::from_secs(10);

/// Checks everything, printing a line each; `true` when all is well.
pub async fn run() -> bool {
    let mut report = Report { ok: true };
    let config =
        match config::leptos_options().and_then(|options| Config::from_env(options.site_addr)) {
            Ok(config) => config,
            Err(e) => {
                report.line(false, e.to_string());
                return false;
            }
        };
    let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
    report.line(
        true,
        format!("configuration: read; providers {}", ids.join(", ")),
    );

    match bounded(db::open(&config.database_url)).await {
        Some(Ok(_)) => report.line(
            true,
            "DATABASE_URL: the database answers; its schema is up to date".into(),
        ),
        Some(Err(e)) => report.line(false, e.to_string()),
        None => report.line(false, format!("DATABASE_URL: no answer within {BOUND:?}")),
    }
    if let Some(url) = &config.redis_url {
        let answer = bounded(async {
            let store = session::Store::in_redis(url, config.store_timeout).await?;
            store
                .ping()
                .await
                .map_err(|e| config::ConfigError::new("REDIS_URL", e.to_string()))
        })
        .await;
        match answer {
            Some(Ok(())) => report.line(true, "REDIS_URL: the session store answers".into()),
            Some(Err(e)) => report.line(false, e.to_string()),
            None => report.line(false, format!("REDIS_URL: no answer within {BOUND:?}")),
        }
    }

    match &config.session_keys {
        Some(keys) => report.line(
            true,
            format!("SESSION_KEYS: {} key(s); tokens in sessions are sealed with the first", keys.len()),
        ),
        None => report.line(
            true,
            format!(
                "SESSION_KEYS: not set; tokens in sessions are sealed with the development key in {} (made at the first start). In production set SESSION_KEYS, the same on every instance",
                config.data_dir.join("session.key").display()
            ),
        ),
    }

    let providers = match Providers::new(&config, &Default::default()) {
        Ok(providers) => providers,
        Err(e) => {
            report.line(false, e.to_string());
            return false;
        }
    };
    for provider in providers.iter() {
        let variable = provider.variable("ISSUER");
        match bounded(provider.check()).await {
            Some(Ok(keys)) => report.line(
                true,
                format!(
                    "{variable}: {} answers discovery and publishes {keys} signing key(s)",
                    provider.issuer()
                ),
            ),
            Some(Err(e)) => {
                report.line(
                    false,
                    format!("{variable}: {}", explain(&e, provider.issuer())),
                );
                continue;
            }
            None => {
                report.line(false, format!("{variable}: no answer within {BOUND:?}"));
                continue;
            }
        }
        // What the provider's metadata says of the client's authentication, of PAR and of
        // DPoP, as configured: a line each when they are used, or wrong.
        let (auth, par) = (provider.variable("CLIENT_AUTH"), provider.variable("PAR"));
        for (variable, checked) in [
            (auth, bounded(provider.check_client_auth()).await),
            (par, bounded(provider.check_par()).await),
            (
                provider.variable("DPOP"),
                bounded(provider.check_dpop()).await,
            ),
        ] {
            match checked {
                Some(Ok(Some(line))) => report.line(true, format!("{variable}: {line}")),
                Some(Ok(None)) => {}
                Some(Err(e)) => report.line(false, format!("{variable}: {e}")),
                None => report.line(false, format!("{variable}: no answer within {BOUND:?}")),
            }
        }
    }
    report.ok
}

struct Report {
    ok: bool,
}

impl Report {
    fn line(&mut self, good: bool, text: String) {
        self.ok &= good;
        println!("{} {text}", if good { "ok   " } else { "error" });
    }
}

async fn bounded<T>(check: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(BOUND, check).await.ok()
}

/// What went wrong, with the likely fix where there is one: issuers are compared exactly, and
/// a trailing slash is the usual difference.
fn explain(e: &OidcError, configured: &str) -> String {
    let told = e.to_string();
    if !told.contains("unexpected issuer") {
        return told;
    }
    let hint = if configured.ends_with('/') {
        "remove the trailing slash"
    } else {
        "check the trailing slash: issuers are compared exactly"
    };
    format!("{told}; {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_mismatch_says_what_to_fix() {
        let e = OidcError::Misconfigured(
            "unexpected issuer URI `https://id.example` (expected `https://id.example/`)".into(),
        );
        assert!(explain(&e, "https://id.example/").ends_with("remove the trailing slash"));
        assert!(explain(&e, "https://id.example").contains("check the trailing slash"));
        let other = OidcError::Timeout(Duration::from_secs(1));
        assert_eq!(explain(&other, "https://id.example"), other.to_string());
    }
}
