//! The app's own addresses that carry a query: where a sign-in starts and where its failures,
//! and a sign-out's, land. Built in one place, so the pages and the server agree on them.

use crate::failure::{SessionEnding, SignInFailure, SignOutFailure};

/// `/login`, which starts a sign-in at `provider` (or offers the choice when there are several),
/// and comes back to `return_to`.
pub fn login(provider: Option<&str>, return_to: Option<&str>) -> String {
    with_query(
        "/login",
        &[("provider", provider), ("return_to", return_to)],
    )
}

/// The sign-out page asking to confirm "sign out everywhere", where its step-up comes back to.
pub const CONFIRM_EVERYWHERE: &str = "/logout?confirm=everywhere";

/// `/login` as a step-up at `provider`: the user confirmed again (within `max_age` seconds, or
/// with one of `acr_values`), then back to `return_to`.
pub fn step_up(
    provider: &str,
    max_age: Option<u64>,
    acr_values: Option<&str>,
    return_to: &str,
) -> String {
    let max_age = max_age.map(|seconds| seconds.to_string());
    with_query(
        "/login",
        &[
            ("provider", Some(provider)),
            ("max_age", max_age.as_deref()),
            ("acr_values", acr_values),
            ("return_to", Some(return_to)),
        ],
    )
}

/// `/signin`: the sign-in page, telling of `failure` when there is one.
pub fn sign_in_page(
    failure: Option<SignInFailure>,
    provider: Option<&str>,
    return_to: Option<&str>,
) -> String {
    with_query(
        "/signin",
        &[
            ("error", failure.map(SignInFailure::code)),
            ("provider", provider),
            ("return_to", return_to),
        ],
    )
}

/// `/signin` telling that the account of `provider` does not satisfy `rule` (`claim:value`).
pub fn not_allowed_page(provider: Option<&str>, rule: &str) -> String {
    with_query(
        "/signin",
        &[
            ("error", Some(SignInFailure::NotAllowed.code())),
            ("provider", provider),
            ("rule", Some(rule)),
        ],
    )
}

/// `/logout`: the sign-out page, telling why the sign-out did not happen.
pub fn sign_out_page(failure: SignOutFailure) -> String {
    with_query("/logout", &[("error", Some(failure.code()))])
}

/// `/sessions`, the user's sessions, telling what became of ending one, or why it failed.
pub fn sessions_page(outcome: Result<SessionEnding, SignOutFailure>) -> String {
    match outcome {
        Ok(ending) => with_query("/sessions", &[("ended", Some(ending.code()))]),
        Err(failure) => with_query("/sessions", &[("error", Some(failure.code()))]),
    }
}

fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut url = path.to_owned();
    for (name, value) in params {
        if let Some(value) = value {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_query_value(value));
        }
    }
    url
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query_value("/profile"), "/profile");
        assert_eq!(encode_query_value("/a?b=c&d"), "/a%3Fb%3Dc%26d");
        assert_eq!(encode_query_value("/é"), "/%C3%A9");
    }

    #[test]
    fn only_the_parameters_given_are_written() {
        assert_eq!(login(None, None), "/login");
        assert_eq!(login(None, Some("/profile")), "/login?return_to=/profile");
        assert_eq!(
            login(Some("acme"), Some("/a?b")),
            "/login?provider=acme&return_to=/a%3Fb"
        );
        assert_eq!(
            sign_in_page(Some(SignInFailure::BadState), None, None),
            "/signin?error=bad_state"
        );
        assert_eq!(
            sign_in_page(
                Some(SignInFailure::SessionEnded),
                Some("g"),
                Some("/profile")
            ),
            "/signin?error=session_ended&provider=g&return_to=/profile"
        );
        assert_eq!(sign_in_page(None, None, Some("/x")), "/signin?return_to=/x");
        assert_eq!(sign_out_page(SignOutFailure::Forged), "/logout?error=csrf");
        assert_eq!(
            sessions_page(Ok(SessionEnding::Gone)),
            "/sessions?ended=already"
        );
        assert_eq!(
            sessions_page(Err(SignOutFailure::Failed)),
            "/sessions?error=failed"
        );
    }
}
