//! The server binary: configuration from the environment (and `.env`), then serve.

// A page render makes many small allocations; mimalloc serves them in about half the time of the
// system allocator (README: "Performance").
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    // A missing .env file is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    match std::env::args().nth(1).as_deref() {
        None => {}
        // Checks the configuration and what it names, a line each (README: "Running in
        // production").
        Some("check") => {
            return if leptos_oidc::check::run().await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some(other) => {
            eprintln!("error: unknown command \"{other}\" (usage: leptos-oidc [check])");
            return ExitCode::from(2);
        }
    }
    let traces = match leptos_oidc::server::init_tracing() {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let served = leptos_oidc::server::run().await;
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser half is the library's `hydrate` entry point; this binary is the server only.
}
