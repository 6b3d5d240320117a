//! The benchmark's axum peer: the sign-in of axum-oidc 0.6, set up as its README and examples
//! show. `OidcAuthLayer` (the provider discovered at start) on every route, `OidcLoginLayer` on
//! `/profile`, which sends a visitor without a session to the provider and takes the redirect
//! back at the same path (code exchange, ID token checks, PKCE); sessions in tower-sessions'
//! `MemoryStore`. Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, APP_URL.

use axum::{
    error_handling::HandleErrorLayer,
    http::Uri,
    response::{Html, IntoResponse},
    routing::get,
    Router,
};
use axum_oidc::{
    error::MiddlewareError, EmptyAdditionalClaims, OidcAuthLayer, OidcClaims, OidcLoginLayer,
};
use tower::ServiceBuilder;
use tower_sessions::{cookie::SameSite, Expiry, MemoryStore, SessionManagerLayer};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

#[tokio::main]
async fn main() {
    let app_url = env("APP_URL");
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_secure(false)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::hours(8),
        ));
    let login = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: MiddlewareError| async {
            e.into_response()
        }))
        .layer(OidcLoginLayer::<EmptyAdditionalClaims>::new());
    let auth = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: MiddlewareError| async {
            e.into_response()
        }))
        .layer(
            OidcAuthLayer::<EmptyAdditionalClaims>::discover_client(
                Uri::from_maybe_shared(app_url.clone()).expect("APP_URL is a URL"),
                env("ISSUER"),
                env("CLIENT_ID"),
                Some(env("CLIENT_SECRET")),
                vec!["email".into(), "profile".into()],
            )
            .await
            .expect("the provider answers discovery"),
        );
    let app = Router::new()
        .route("/profile", get(profile))
        .layer(login)
        .route("/", get(home))
        .layer(auth)
        .layer(sessions);
    let addr = app_url.trim_start_matches("http://").trim_end_matches('/');
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the address is free");
    axum::serve(listener, app).await.expect("serves");
}

async fn home() -> Html<&'static str> {
    Html(concat!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Home</title></head>"#,
        r#"<body><header><a href="/">Home</a> <a href="/profile">Profile</a></header>"#,
        r#"<main><h1>Welcome</h1><p>Sign in to see your profile.</p></main></body></html>"#
    ))
}

async fn profile(claims: OidcClaims<EmptyAdditionalClaims>) -> Html<String> {
    let text = |c: Option<String>| html_escape(&c.unwrap_or_default());
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.to_string());
    let email = claims.email().map(|e| e.to_string());
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Profile</title></head><body><header><a href="/">Home</a></header><main><h1>{}</h1><dl><dt>Email</dt><dd>{}</dd><dt>Subject</dt><dd>{}</dd></dl></main></body></html>"#,
        text(name),
        text(email),
        html_escape(claims.subject().as_str()),
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
