//! Why a sign-in or sign-out did not complete, inside the server: converted from each layer's
//! own error with `From`, told to the user as a [`SignInFailure`], and logged once, where the
//! flow turns it into a redirect.

use crate::{failure::SignInFailure, oidc::OidcError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Provider(#[from] OidcError),
    #[error("the session store failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error("the session store failed: {0}")]
    SessionStore(#[from] tower_sessions::session_store::Error),
    #[error("the user record was not saved: {0}")]
    UserRecord(#[from] sqlx::Error),
    /// The provider's `error` (cut short: it is the provider's text, not ours).
    #[error("the provider answered with the error {0:?}")]
    ProviderSaidNo(String),
    #[error("the provider sent the browser back without a code")]
    MissingCode,
    #[error("the callback's state matches no pending sign-in of this browser (state present: {state_present})")]
    NoPendingSignIn { state_present: bool },
    #[error("no provider {0:?} is configured")]
    UnknownProvider(String),
    /// The user's claims do not satisfy the provider's rule (`claim:value`).
    #[error("the user's claims do not satisfy the rule {0}")]
    NotAllowed(String),
    #[error("the app state is missing")]
    NoAppState,
    #[error("the session layer is missing: {0}")]
    NoSessionLayer(String),
}

impl AuthError {
    /// What the user is told.
    pub fn failure(&self) -> SignInFailure {
        match self {
            Self::Provider(e) => match e {
                OidcError::Unavailable(_) => SignInFailure::ProviderUnavailable,
                OidcError::Misconfigured(_) => SignInFailure::ProviderMisconfigured,
                OidcError::Timeout(_) => SignInFailure::ProviderTimeout,
                OidcError::CodeRefused(_) => SignInFailure::CodeRefused,
                OidcError::TokenRefused(_) => SignInFailure::TokenRefused,
                OidcError::NotSteppedUp(_) => SignInFailure::StepUpFailed,
            },
            Self::ProviderSaidNo(error) => SignInFailure::from_provider_error(error),
            Self::MissingCode => SignInFailure::MissingCode,
            Self::NoPendingSignIn { .. } => SignInFailure::BadState,
            Self::UnknownProvider(_) => SignInFailure::UnknownProvider,
            Self::NotAllowed(_) => SignInFailure::NotAllowed,
            Self::Session(_)
            | Self::SessionStore(_)
            | Self::UserRecord(_)
            | Self::NoAppState
            | Self::NoSessionLayer(_) => SignInFailure::StorageUnavailable,
        }
    }

    /// Logs it once, at the level its kind deserves: ours to fix (error), the provider's or an
    /// attacker's doing (warn), or the user's choice (info).
    pub fn log(&self, what: &'static str) {
        match self {
            Self::Session(_)
            | Self::SessionStore(_)
            | Self::UserRecord(_)
            | Self::NoAppState
            | Self::NoSessionLayer(_) => tracing::error!(error = %self, "{what}"),
            Self::ProviderSaidNo(_) | Self::NotAllowed(_) => {
                tracing::info!(error = %self, "{what}")
            }
            _ => tracing::warn!(failure = self.failure().code(), error = %self, "{what}"),
        }
    }
}
