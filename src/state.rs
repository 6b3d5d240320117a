//! What every handler and server function may use; server functions get it as context.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::{config::Config, db::Db, oidc::Providers, session, users::Users};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub db: Db,
    pub providers: Arc<Providers>,
    pub users: Users,
    pub sessions: session::Store,
    pub pending: session::PendingSignIns,
}
