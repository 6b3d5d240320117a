//! Sign in with any OpenID Connect provider: a Leptos SSR app.
//!
//! Built for the server and for the WASM (where only the islands of [`app`] run), lowest
//! first: [`claims`] (rules on a user's claims), [`visitor`] and [`failure`] (what pages
//! show), [`links`] (the app's addresses), [`auth`] (the sign-in server functions, and
//! `require_user` for others), [`api_demo`] (an API called with the user's token), [`app`]
//! (pages and routes). Everything else runs only on the server: [`config`], [`oidc`], [`db`],
//! [`users`], [`session`], [`state`], [`page_cache`], [`csp`] (the pages' Content-Security-Policy),
//! [`json_errors`] (failure pages as JSON),
//! [`bearer`] (`/api/me`, for services with an access token), [`health`], [`metrics`],
//! [`traces`], [`check`] (the `check` command), and [`server`], which wires them together.
#![recursion_limit = "256"]
// Module docs name their private parts, for the reader of the source (`cargo doc
// --document-private-items` links them).
#![allow(rustdoc::private_intra_doc_links)]

pub mod claims;
pub mod failure;
pub mod links;
pub mod visitor;

pub mod api_demo;
pub mod app;
pub mod auth;

#[cfg(feature = "ssr")]
pub mod bearer;
#[cfg(feature = "ssr")]
pub mod check;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod csp;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "ssr")]
pub mod health;
#[cfg(feature = "ssr")]
pub mod json_errors;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod oidc;
#[cfg(feature = "ssr")]
pub mod page_cache;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod traces;
#[cfg(feature = "ssr")]
pub mod users;

/// The WASM entry point. The pages are the server's: this starts the runtime of the islands
/// (`app::LocalTime`, and any a team adds), which Leptos's script then hydrates one by one.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
    // Tells the browser tests (and anyone curious) that the page is interactive now.
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "");
    }
}
