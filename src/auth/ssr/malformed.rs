//! Refuses malformed requests to the sign-in endpoints and forms before they reach the server
//! functions, whose argument errors would otherwise end on an unexplained redirect: a parameter
//! given twice, a nested one (`a[b]=`), or a form's missing field. Browsers go to the page that
//! says so (a 400); other callers get a JSON 400.

use axum::{
    body::{to_bytes, Body},
    extract::Request,
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    Json,
};

use crate::{
    config::CALLBACK_PATH,
    failure::{SignInFailure, SignOutFailure},
    json_errors, links,
};

/// A sign-out form is a token and a button or two: anything much larger is not one.
const MAX_FORM: usize = 16 * 1024;

/// Middleware: lets well-formed requests through, and answers the rest.
pub async fn refuse_malformed(request: Request, next: Next) -> Response {
    let (path, method) = (request.uri().path(), request.method());
    if (path == "/login" || path == CALLBACK_PATH) && method == Method::GET {
        return match problem(request.uri().query().unwrap_or_default().as_bytes(), &[]) {
            None => next.run(request).await,
            Some(why) => refuse(
                &request,
                &why,
                links::sign_in_page(Some(SignInFailure::BadRequest), None, None),
            ),
        };
    }
    // The forms: their required fields, and the page that says a form was malformed.
    let (required, page): (&[&str], fn() -> String) = match (path, method) {
        ("/logout", &Method::POST) => (&["csrf"], || {
            links::sign_out_page(SignOutFailure::Malformed)
        }),
        ("/sessions/end", &Method::POST) => (&["csrf", "session"], || {
            links::sessions_page(Err(SignOutFailure::Malformed))
        }),
        _ => return next.run(request).await,
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_FORM).await else {
        let request = Request::from_parts(parts, Body::empty());
        return refuse(&request, "the form is too large", page());
    };
    let request = Request::from_parts(parts, Body::from(body.clone()));
    match problem(&body, required) {
        None => next.run(request).await,
        Some(why) => refuse(&request, &why, page()),
    }
}

/// What is wrong with these `application/x-www-form-urlencoded` parameters, if anything.
fn problem(params: &[u8], required: &[&str]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in url::form_urlencoded::parse(params) {
        if name.contains('[') || name.contains(']') {
            return Some(format!("the parameter {name:?} is not a plain name"));
        }
        if seen.iter().any(|s| *s == name) {
            return Some(format!("the parameter {name:?} is given more than once"));
        }
        seen.push(name.into_owned());
    }
    required
        .iter()
        .find(|name| !seen.iter().any(|s| s == *name))
        .map(|name| format!("the parameter {name:?} is missing"))
}

/// A browser goes to the page that says so; any other caller gets a JSON 400.
fn refuse(request: &Request, why: &str, page: String) -> Response {
    tracing::warn!(
        path = request.uri().path(),
        why,
        "malformed request refused"
    );
    if json_errors::wants_html(request.headers()) {
        return Redirect::to(&page).into_response();
    }
    let body = serde_json::json!({ "error": "invalid_request", "error_description": why });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_nested_and_missing_parameters_are_named() {
        assert_eq!(problem(b"code=1&state=2&iss=x", &[]), None);
        assert_eq!(problem(b"", &[]), None);
        assert!(problem(b"code=1&code=2", &[])
            .unwrap()
            .contains("\"code\" is given more than once"));
        assert!(problem(b"return_to[x]=1", &[])
            .unwrap()
            .contains("not a plain name"));
        assert!(problem(b"everywhere=1", &["csrf"])
            .unwrap()
            .contains("\"csrf\" is missing"));
        assert_eq!(problem(b"csrf=abc&everywhere=1", &["csrf"]), None);
        // Undecodable bytes are taken as they come: the endpoint judges the value.
        assert_eq!(problem(b"return_to=%ZZ", &[]), None);
    }
}
