//! The three hosts of the same handlers: Vercel (`vercel_runtime`), AWS Lambda
//! (`lambda_http`), and one local process serving every route.

pub mod lambda;
pub mod local;
pub mod vercel;

use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::http::Route;
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

/// Entry point of every `api/` function binary: serves the route whose pattern is
/// `pattern`, on Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else with `vercel_runtime`.
pub fn serve_function(pattern: &str) -> ExitCode {
    let Some(route) = crate::routes::ROUTES.iter().find(|r| r.pattern == pattern) else {
        eprintln!("atlas-hub: no route {pattern} in the route table");
        return ExitCode::FAILURE;
    };
    let state = match state_from_environment() {
        Ok(s) => s,
        Err(code) => return code,
    };
    // One thread: a function instance is about one vCPU, and requests wait on the database
    // far more than they compute. Measured (README, benchmark): higher throughput and
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
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            lambda::run(state, route).await
        } else {
            vercel::run(state, route).await
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

/// Background work on a host without `waitUntil`: a spawned task.
pub fn spawn_background() -> crate::http::request::Background {
    Arc::new(|fut| {
        tokio::spawn(fut);
    })
}

/// Whichever host, requests are handed to the dispatcher with this resolver for `route`.
pub(crate) fn single(route: &'static Route) -> crate::http::dispatch::Resolve<'static> {
    crate::http::dispatch::Resolve::Single {
        route,
        table: crate::routes::ROUTES,
    }
}
