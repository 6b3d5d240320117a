//! What every handler and server function may use; server functions get it as context.

use std::{
    ops::Deref,
    sync::{atomic::AtomicBool, Arc},
};

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

/// The app's state. Behind one `Arc`: axum clones the state for every request it routes, which
/// then costs one counter instead of a copy of every field (`perf` saw about 3 % of `/login`'s
/// time in cloning and dropping the fields).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
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

// What handlers and leptos_axum take out of the state.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Arc<Providers> {
    fn from_ref(state: &AppState) -> Self {
        state.providers.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}
