//! The route table: every route, its handlers, and the `api/` function file hosting it.
//! The local server, each Vercel/Lambda function and the layout test all read this list.

pub mod health;

use http::Method;

use crate::http::Route;

/// Wraps an `async fn(Arc<AppState>, ApiRequest) -> ApiResult` as a [`crate::http::Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn boxed(
            state: std::sync::Arc<crate::state::AppState>,
            req: crate::http::ApiRequest,
        ) -> futures_util::future::BoxFuture<'static, crate::http::ApiResult> {
            Box::pin($f(state, req))
        }
        boxed as crate::http::Handler
    }};
}

/// Every route the Hub serves.
pub static ROUTES: &[Route] = &[Route {
    pattern: "/api/health",
    methods: &[(Method::GET, handler!(health::get))],
    api_file: "api/health.rs",
    bin: "health",
}];
