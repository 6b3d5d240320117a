//! The app's own JSON API for other services, which send an access token instead of a session
//! cookie (RFC 6750): `GET /api/me`. A token is good when a configured provider vouches for it
//! ([`crate::oidc::access_token`]): a JWT access token by its signature and claims, any other
//! by the provider's introspection, whose answers are kept briefly
//! ([`crate::oidc::access_token::Introspections`]).

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use sha2::{Digest, Sha256};

use crate::{
    oidc::{access_token, OidcError, Vouched},
    state::AppState,
};

/// Why a request to the API was not answered: a 401 that says what to send (RFC 6750), or a
/// 503 while no provider can be asked.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("send an access token: Authorization: Bearer <token>")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("the provider that would vouch for the token cannot be asked now: {0}")]
    Unavailable(String),
}

impl From<OidcError> for BearerError {
    fn from(e: OidcError) -> Self {
        match e {
            e if e.is_transient() => Self::Unavailable(e.to_string()),
            OidcError::TokenRefused(why) => Self::Invalid(why),
            e => Self::Invalid(e.to_string()),
        }
    }
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, error, challenge) = match &self {
            // No error code when no token came (RFC 6750, 3.1): the caller just did not know.
            Self::Missing => (StatusCode::UNAUTHORIZED, "token_required", "Bearer".into()),
            Self::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                format!(
                    r#"Bearer error="invalid_token", error_description="{}""#,
                    quotable(why)
                ),
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                String::new(),
            ),
        };
        let body = serde_json::json!({ "error": error, "error_description": self.to_string() });
        let mut response =
            (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
        let headers = response.headers_mut();
        if !challenge.is_empty() {
            if let Ok(challenge) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// Text fit for a quoted header parameter: printable ASCII without quotes or backslashes.
fn quotable(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

/// `GET /api/me`: who the token is about, and its claims, as the provider vouched for them.
pub async fn me(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, BearerError> {
    let result = vouch(&app, bearer_token(&headers)?).await;
    if let Err(e) = &result {
        tracing::info!(reason = %e, "bearer token refused");
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(result?)))
}

/// The token of an `Authorization: Bearer` header (the scheme in any case). Tokens in query
/// strings or forms are not taken: URLs end up in logs.
fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(header::AUTHORIZATION) {
            true => Err(BearerError::Invalid("several Authorization headers".into())),
            false => Err(BearerError::Missing),
        };
    };
    let value = value.to_str().unwrap_or_default();
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(BearerError::Missing);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    // RFC 6750's b64token: what a token may be made of.
    let token = token.trim();
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
    {
        return Err(BearerError::Invalid("malformed token".into()));
    }
    Ok(token)
}

/// What a configured provider vouches for about `token`: a JWT access token is checked with
/// the keys of the provider it names; any other is asked about at each provider that offers
/// introspection, in the configured order, until one knows it (and then its answer decides).
pub async fn vouch(app: &AppState, token: &str) -> Result<Arc<Vouched>, BearerError> {
    if access_token::is_jwt(token) {
        let provider = app
            .providers
            .for_jwt(token)
            .ok_or_else(|| BearerError::Invalid("issued by no configured provider".into()))?;
        return Ok(Arc::new(provider.verify_access_token(token).await?));
    }
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(answer) = app.introspections.get(&key) {
        return answer.map_err(BearerError::Invalid);
    }
    let mut unavailable = None;
    let answer = 'asking: {
        for provider in app.providers.iter() {
            match provider.introspect(token).await {
                Ok(Some(vouched)) => break 'asking Ok(Arc::new(vouched)),
                Ok(None) => {} // not a token of this provider's
                Err(OidcError::TokenRefused(why)) => break 'asking Err(why),
                Err(e) if e.is_transient() => unavailable = Some(e),
                Err(_) => {} // no introspection there
            }
        }
        // A provider that could not be asked might have known it: nothing is kept, and the
        // caller may try again.
        if let Some(e) = unavailable {
            return Err(e.into());
        }
        Err("no configured provider knows it as an active token".into())
    };
    app.introspections.keep(key, answer.clone());
    answer.map_err(BearerError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_token_is_read_from_one_bearer_authorization_header() {
        let token = |values: &[&str]| {
            bearer_token(&headers(values))
                .map(str::to_owned)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            token(&["Bearer abc.DEF-_~+/=="]),
            Ok("abc.DEF-_~+/==".into())
        );
        assert_eq!(token(&["bearer abc"]), Ok("abc".into()));
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(BearerError::Missing)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"])),
            Err(BearerError::Missing)
        ));
        for bad in ["Bearer ", "Bearer a b", "Bearer a\"b", "Bearer =="] {
            assert_eq!(token(&[bad]), Err("malformed token".into()), "{bad}");
        }
        assert!(token(&["Bearer a", "Bearer b"]).is_err());
    }

    #[test]
    fn an_invalid_token_is_told_in_the_challenge() {
        let response = BearerError::Invalid("expired \"really\"".into()).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="expired really""#
        );
        let response = BearerError::Missing.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = BearerError::Unavailable("down".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
