//! Vercel: `vercel_runtime` 2.x serves HTTP on `127.0.0.1:$VERCEL_DEV_PORT`.

use std::sync::Arc;

use vercel_runtime::{Error, Request, Response, ResponseBody};

use crate::http::Route;
use crate::http::dispatch::{Incoming, dispatch, read_body};
use crate::state::AppState;

/// Serves `route` until the platform stops the instance.
pub async fn run(state: Arc<AppState>, route: &'static Route) -> Result<(), Error> {
    let service = vercel_runtime::service_fn(move |req: Request, app: vercel_runtime::AppState| {
        let state = state.clone();
        async move { Ok::<_, Error>(handle(state, route, req, app).await) }
    });
    vercel_runtime::run(service).await
}

async fn handle(
    state: Arc<AppState>,
    route: &'static Route,
    req: Request,
    app: vercel_runtime::AppState,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let client_ip = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|ip| ip.trim().parse().ok());
    let incoming = Incoming {
        parts,
        body: read_body(body).await,
        client_ip,
        // Vercel's waitUntil keeps the invocation alive until background work settles.
        background: Arc::new(move |fut| app.wait_until(fut)),
    };
    let response = dispatch(state, super::single(route), incoming).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, ResponseBody::from(body))
}
