//! The three hosts of the one router ([`crate::routes::router`]): Vercel (`vercel_runtime`,
//! one binary per route), AWS Lambda (`lambda_http`), and one local process serving every
//! route (`axum::serve`). Each adds what only it knows: the client's address, and how work
//! runs after the response.

pub mod lambda;
pub mod local;
pub mod vercel;

use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::state::AppState;

/// Builds the instance state from the environment, printing one clear message on failure.
pub fn state_from_environment() -> Result<Arc<AppState>, ExitCode> {
    let config = Config::from_environment().map_err(|e| {
        eprintln!("atlas-hub: {e}");
        ExitCode::from(2)
    })?;
    AppState::new(config).map(Arc::new).map_err(|e| {
        eprintln!("atlas-hub: {e}");
        ExitCode::from(2)
    })
}

/// Entry point of every `api/` function binary: the function for the route `pattern`
/// (which must be one of [`crate::routes::FUNCTIONS`]), on Lambda when
/// `AWS_LAMBDA_RUNTIME_API` is set, else with `vercel_runtime`.
pub fn serve_function(pattern: &str) -> ExitCode {
    if !crate::routes::FUNCTIONS
        .iter()
        .any(|f| f.pattern == pattern)
    {
        eprintln!("atlas-hub: no route {pattern} in the route table");
        return ExitCode::FAILURE;
    }
    let state = match state_from_environment() {
        Ok(s) => s,
        Err(code) => return code,
    };
    // One thread: a function instance is about one vCPU, and requests wait on the database
    // far more than they compute. Measured (docs/benchmark.md): higher throughput and
    // shorter tails than a multi-threaded runtime, no worker threads to start, and the
    // database connection tasks run on the thread that awaits them.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("atlas-hub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let router = crate::routes::router(state);
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            lambda::run(router).await
        } else {
            vercel::run(router).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atlas-hub: {e}");
            ExitCode::FAILURE
        }
    }
}
