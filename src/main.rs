//! The server binary: configuration from the environment (and `.env`), then serve.

// A page render makes many small allocations; mimalloc serves them in about half the time of the
// system allocator (README: "Performance").
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
