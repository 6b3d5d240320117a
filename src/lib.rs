//! Sign in with any OpenID Connect provider: a Leptos SSR app.
//!
//! Shared by the server and the browser: [`app`] (pages and routes) and [`auth`] (the sign-in
//! server functions and what they return). Everything else runs only on the server.
#![recursion_limit = "256"]

pub mod app;
pub mod auth;

#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "ssr")]
pub mod oidc;
#[cfg(feature = "ssr")]
pub mod page_cache;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod users;

/// The WASM entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Tells the browser tests (and anyone curious) that the page is interactive now.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "");
    }
}
