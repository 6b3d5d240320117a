//! Failure pages for callers that do not ask for HTML (`fetch`, scripts, `curl`): the same
//! status, with a JSON body `{"error": code, "error_description": message}` instead of the page.

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderMap, HeaderName},
    middleware::Next,
    response::{IntoResponse, Json, Response},
};

use crate::failure::{self, CODE_HEADER};

/// Whether the caller asks for HTML: browsers navigating do, programs mostly do not.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Middleware: takes the failure code off every failure page, and answers a caller that does
/// not ask for HTML with the JSON form of the failure.
pub async fn for_programs(request: Request, next: Next) -> Response {
    let wants_html = wants_html(request.headers());
    let mut response = next.run(request).await;
    // Only failure pages carry the code: a successful answer costs nothing more.
    if response.status().as_u16() < 400 {
        return response;
    }
    let Some(code) = response
        .headers_mut()
        .remove(HeaderName::from_static(CODE_HEADER))
    else {
        return response;
    };
    if wants_html {
        return response;
    }
    let code = code.to_str().unwrap_or_default().to_owned();
    let body = serde_json::json!({
        "error": code,
        "error_description": failure::describe(&code).unwrap_or_default(),
    });
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let json = Json(body).into_response();
    parts.headers.insert(
        header::CONTENT_TYPE,
        json.headers()[header::CONTENT_TYPE].clone(),
    );
    Response::from_parts(parts, Body::new(json.into_body()))
}
