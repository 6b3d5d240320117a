//! The server binary: configuration from the environment (and `.env`), then serve.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A missing .env file is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    leptos_oidc::server::init_tracing();
    match leptos_oidc::server::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser half is the library's `hydrate` entry point; this binary is the server only.
}
