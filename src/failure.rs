//! What went wrong, as the pages tell it: shared by the server (which picks the failure and
//! redirects to its page) and the browser (which renders that page).

/// The header by which a failure page names its code to the server's own middleware, which
/// removes it from every answer (and answers callers that do not ask for HTML with JSON).
pub const CODE_HEADER: &str = "x-failure-code";

/// Why a sign-in did not complete: the `error` of `/signin?error=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInFailure {
    /// The user said no at the provider (`access_denied`, `consent_required`).
    AccessDenied,
    /// The provider wants the user to sign in or act on its pages first (`login_required`,
    /// `interaction_required`, `account_selection_required`).
    LoginRequired,
    ProviderError,
    MissingCode,
    BadState,
    CodeRefused,
    TokenRefused,
    ProviderUnavailable,
    ProviderMisconfigured,
    ProviderTimeout,
    StorageUnavailable,
    SessionEnded,
    /// `/login?provider=` named no configured provider.
    UnknownProvider,
    /// Missing, repeated or unreadable parameters.
    BadRequest,
    /// The provider signed the user in, but their claims lack what this app requires there.
    NotAllowed,
    /// A sensitive action asked the provider to confirm the user again (a step-up), and the
    /// provider's answer does not show it did.
    StepUpFailed,
}

impl SignInFailure {
    pub const ALL: [Self; 16] = [
        Self::AccessDenied,
        Self::LoginRequired,
        Self::ProviderError,
        Self::MissingCode,
        Self::BadState,
        Self::CodeRefused,
        Self::TokenRefused,
        Self::ProviderUnavailable,
        Self::ProviderMisconfigured,
        Self::ProviderTimeout,
        Self::StorageUnavailable,
        Self::SessionEnded,
        Self::UnknownProvider,
        Self::BadRequest,
        Self::NotAllowed,
        Self::StepUpFailed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ProviderError => "provider_error",
            Self::MissingCode => "missing_code",
            Self::BadState => "bad_state",
            Self::CodeRefused => "code_refused",
            Self::TokenRefused => "token_refused",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderMisconfigured => "provider_misconfigured",
            Self::ProviderTimeout => "provider_timeout",
            Self::StorageUnavailable => "storage_unavailable",
            Self::SessionEnded => "session_ended",
            Self::UnknownProvider => "unknown_provider",
            Self::BadRequest => "bad_request",
            Self::NotAllowed => "not_allowed",
            Self::StepUpFailed => "step_up_failed",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// What a provider's `error` in its redirect back means for the user: they said no, they
    /// must act at the provider first, or something is wrong there.
    pub fn from_provider_error(error: &str) -> Self {
        match error {
            "access_denied" | "consent_required" => Self::AccessDenied,
            "login_required" | "interaction_required" | "account_selection_required" => {
                Self::LoginRequired
            }
            _ => Self::ProviderError,
        }
    }

    /// The HTTP status of the page that reports it.
    pub fn status(self) -> u16 {
        match self {
            Self::AccessDenied | Self::NotAllowed => 403,
            Self::ProviderUnavailable | Self::ProviderMisconfigured | Self::StorageUnavailable => {
                503
            }
            Self::ProviderTimeout => 504,
            Self::SessionEnded | Self::LoginRequired | Self::StepUpFailed => 401,
            Self::UnknownProvider => 404,
            _ => 400,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::AccessDenied => "Sign-in cancelled",
            Self::LoginRequired => "Your provider needs you first",
            Self::ProviderUnavailable => "The sign-in service is unavailable",
            Self::ProviderMisconfigured => "The sign-in service is misconfigured",
            Self::ProviderTimeout => "The sign-in service is not answering",
            Self::StorageUnavailable => "Sign-in could not be saved",
            Self::BadState => "This sign-in has expired",
            Self::SessionEnded => "Your session has ended",
            Self::UnknownProvider => "No such way to sign in",
            Self::BadRequest => "That request was malformed",
            Self::NotAllowed => "This account may not use this app",
            Self::StepUpFailed => "Not confirmed",
            _ => "Sign-in failed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::AccessDenied => "You cancelled the sign-in, or did not allow this app access. Nothing was changed.",
            Self::LoginRequired => "Your identity provider needs you to sign in, or to confirm something, on its own pages before it lets you in. Try again and follow its pages.",
            Self::ProviderError => "The identity provider could not sign you in. It may be misconfigured for this app.",
            Self::MissingCode => "The identity provider sent you back without a sign-in code.",
            Self::BadState => "This sign-in was started too long ago, in another browser, or was already used.",
            Self::CodeRefused => "The identity provider did not accept the sign-in code. It may have expired or been used already.",
            Self::TokenRefused => "The identity provider's answer did not pass this app's security checks, so you were not signed in.",
            Self::ProviderUnavailable => "The identity provider could not be reached. Please try again in a moment.",
            Self::ProviderMisconfigured => "The identity provider's settings do not match this app's, so nobody can sign in with it until an administrator fixes them.",
            Self::ProviderTimeout => "The identity provider took too long to answer. Please try again in a moment.",
            Self::StorageUnavailable => "The app could not store your session. Please try again in a moment.",
            Self::SessionEnded => "Your identity provider no longer vouches for your session (it may have been ended there, or expired), so you were signed out here. Please sign in again.",
            Self::UnknownProvider => "This app does not sign in with that provider. Choose one of these:",
            Self::BadRequest => "The address had missing, repeated or unreadable parts, so nothing was done.",
            Self::StepUpFailed => "Your identity provider did not confirm that it was you just now (or not in the way this action needs), so nothing was done. You are still signed in as before.",
            Self::NotAllowed => "Your identity provider signed you in, but this app requires something your account there does not have, so you were not signed in here. To use another account, sign out at your provider first.",
        }
    }
}

/// Why a sign-out did not happen: the `error` of `/logout?error=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignOutFailure {
    /// The post did not come from this site's page, or carried the wrong token.
    Forged,
    /// The session store failed.
    Failed,
    /// The request was not a sign-out form.
    Malformed,
}

impl SignOutFailure {
    pub fn code(self) -> &'static str {
        match self {
            Self::Forged => "csrf",
            Self::Failed => "failed",
            Self::Malformed => "malformed",
        }
    }

    /// Any code we do not know is a malformed request too.
    pub fn from_code(code: &str) -> Self {
        [Self::Forged, Self::Failed]
            .into_iter()
            .find(|f| f.code() == code)
            .unwrap_or(Self::Malformed)
    }

    pub fn status(self) -> u16 {
        match self {
            Self::Forged => 403,
            Self::Failed => 503,
            Self::Malformed => 400,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Forged => "That sign-out request did not come from this site's page, so you are still signed in. Press Sign out to sign out.",
            Self::Failed => "Signing out failed on our side. Please try again.",
            Self::Malformed => "That was not a sign-out request this site makes, so nothing was done. Press Sign out to sign out.",
        }
    }

    /// The same failure, when the request was to end another session (on `/sessions`).
    pub fn ending_message(self) -> &'static str {
        match self {
            Self::Forged => {
                "That request did not come from this site's page, so no session was ended."
            }
            Self::Failed => "Ending that session failed on our side. Please try again.",
            Self::Malformed => "That was not a request this site makes, so no session was ended.",
        }
    }
}

/// What became of a request to end another of the user's sessions: the `ended` of
/// `/sessions?ended=...` (its failures are a [`SignOutFailure`]'s `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnding {
    Ended,
    /// It had ended already (signed out, expired), or was never this user's.
    Gone,
    /// It is the session of the browser asking: that one signs out instead.
    Current,
}

impl SessionEnding {
    const ALL: [Self; 3] = [Self::Ended, Self::Gone, Self::Current];

    pub fn code(self) -> &'static str {
        match self {
            Self::Ended => "1",
            Self::Gone => "already",
            Self::Current => "current",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Ended => "The session was ended: that browser is signed out.",
            Self::Gone => "That session had ended already.",
            Self::Current => "That is this browser's session: sign out to end it.",
        }
    }
}

/// The session store (or the database) did not answer: who is looking is unknown for now.
pub mod outage {
    pub const CODE: &str = "temporarily_unavailable";
    pub const TITLE: &str = "Temporarily unavailable";
    pub const MESSAGE: &str = "This app cannot reach where it keeps sessions, so it cannot tell whether you are signed in. Nothing is lost: please try again in a moment.";
}

/// A page for signed-in users, asked for without a session by a caller that does not ask for
/// HTML (a browser is sent to sign in instead).
pub mod sign_in_required {
    pub const CODE: &str = "sign_in_required";
    pub const MESSAGE: &str = "This is for signed-in users: sign in first.";
}

/// Signed in, but not recently enough (or not strongly enough) for this action: sign in again.
pub mod step_up_required {
    pub const CODE: &str = "step_up_required";
    pub const MESSAGE: &str = "This action needs you to confirm it is you: sign in again.";
}

/// Signed in, but without the claim value a server function requires.
pub mod forbidden {
    pub const CODE: &str = "forbidden";
    pub const MESSAGE: &str = "Your account may not do this.";
}

/// No page at the address asked for.
pub mod not_found {
    pub const CODE: &str = "not_found";
    pub const MESSAGE: &str = "There is nothing at this address.";
}

/// What a failure page's `code` means, for callers that get it as JSON instead of the page.
pub fn describe(code: &str) -> Option<&'static str> {
    match code {
        outage::CODE => Some(outage::MESSAGE),
        not_found::CODE => Some(not_found::MESSAGE),
        sign_in_required::CODE => Some(sign_in_required::MESSAGE),
        forbidden::CODE => Some(forbidden::MESSAGE),
        step_up_required::CODE => Some(step_up_required::MESSAGE),
        _ => SignInFailure::from_code(code)
            .map(SignInFailure::message)
            .or_else(|| {
                [
                    SignOutFailure::Forged,
                    SignOutFailure::Failed,
                    SignOutFailure::Malformed,
                ]
                .into_iter()
                .find(|f| f.code() == code)
                .map(SignOutFailure::message)
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_code_is_described_and_no_two_share_one() {
        let mut codes: Vec<&str> = SignInFailure::ALL.iter().map(|f| f.code()).collect();
        codes.extend([
            "csrf",
            "failed",
            "malformed",
            outage::CODE,
            not_found::CODE,
            sign_in_required::CODE,
        ]);
        for code in &codes {
            assert!(describe(code).is_some(), "{code}");
        }
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert_eq!(describe("bogus"), None);
    }

    #[test]
    fn every_failure_round_trips_through_its_code() {
        for failure in SignInFailure::ALL {
            assert_eq!(SignInFailure::from_code(failure.code()), Some(failure));
            assert!((400..600).contains(&failure.status()));
        }
        assert_eq!(SignInFailure::from_code("<b>bogus"), None);
    }

    #[test]
    fn a_user_who_said_no_sees_the_cancelled_page() {
        for error in ["access_denied", "consent_required"] {
            assert_eq!(
                SignInFailure::from_provider_error(error),
                SignInFailure::AccessDenied
            );
        }
        for error in [
            "login_required",
            "interaction_required",
            "account_selection_required",
        ] {
            assert_eq!(
                SignInFailure::from_provider_error(error),
                SignInFailure::LoginRequired
            );
        }
        assert_eq!(
            SignInFailure::from_provider_error("invalid_scope"),
            SignInFailure::ProviderError
        );
    }
}
