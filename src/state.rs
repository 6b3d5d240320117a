//! What every handler and server function may use; server functions get it as context.

use std::sync::{atomic::AtomicBool, Arc};

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::{
    config::Config,
    db::Db,
    metrics::Metrics,
    oidc::{access_token::Introspections, Providers},
    session,
    users::Users,
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub db: Db,
    pub providers: Arc<Providers>,
    pub users: Users,
    pub sessions: session::Store,
    pub pending: session::PendingSignIns,
    pub metrics: Arc<Metrics>,
    /// For calls to APIs with a user's access token ([`crate::auth::SignedIn::send`]).
    pub api_client: openidconnect::reqwest::Client,
    /// Introspection answers about tokens presented to the app's API, kept briefly.
    pub introspections: Arc<Introspections>,
    /// Set on SIGTERM: `/readyz` then answers 503.
    pub shutting_down: Arc<AtomicBool>,
}
