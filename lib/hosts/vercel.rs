//! Vercel: `vercel_runtime` 2.x serves HTTP on `127.0.0.1:$VERCEL_DEV_PORT`; its axum
//! integration (`VercelLayer`) runs the router.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};
use vercel_runtime::Error;
use vercel_runtime::axum::VercelLayer;

use crate::http::middleware::vercel_path;
use crate::http::{Background, ClientIp};

/// The public paths `vercel.json` rewrites to function paths under `/api` (`/download/…`
/// is served by `api/download/…`): (destination prefix, public prefix). `tests/it/layout.rs`
/// holds this to `vercel.json`.
pub const REWRITES: &[(&str, &str)] = &[("/api/download/", "/download/")];

/// The public path a request was for, from the path Vercel invoked the function at: the
/// `[param]` segments its file-system routing moved into the query put back
/// ([`vercel_path`]), and a `vercel.json` rewrite undone ([`REWRITES`]).
pub fn public_path(req: Request) -> Result<Request, crate::error::ApiError> {
    let mut req = vercel_path(req)?;
    let uri = req.uri().clone();
    // An `index.rs` function is invoked at its file path, `…/index`.
    let mut path = uri
        .path()
        .strip_suffix("/index")
        .unwrap_or(uri.path())
        .to_owned();
    if let Some((from, to)) = REWRITES.iter().find(|(from, _)| path.starts_with(from)) {
        path = format!("{to}{}", &path[from.len()..]);
    }
    if path != uri.path() {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        *req.uri_mut() = format!("{path}{query}").parse().map_err(|_| {
            crate::error::ApiError::invalid("the rewritten path is not a valid URI")
        })?;
    }
    Ok(req)
}

/// The public path ([`public_path`]), and the client's address from `x-forwarded-for`
/// (Vercel's edge sets it; the first entry is the client).
async fn from_the_edge(req: Request, next: Next) -> Response {
    let mut req = match public_path(req) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let client_ip = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|ip| ip.trim().parse().ok());
    req.extensions_mut().insert(ClientIp(client_ip));
    next.run(req).await
}

/// The router as a Vercel function runs it: behind the edge's rewrites (public so tests
/// can pass it the paths Vercel sends).
pub fn app(router: Router) -> Router {
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn(from_the_edge))
}

/// Serves `router` until the platform stops the instance.
pub async fn run(router: Router) -> Result<(), Error> {
    let inner = VercelLayer::new().layer(app(router));
    let service = vercel_runtime::service_fn(
        move |mut req: vercel_runtime::Request, vercel: vercel_runtime::AppState| {
            let mut inner = inner.clone();
            // Vercel's waitUntil keeps the invocation alive until background work settles.
            let waiter = vercel.clone();
            req.extensions_mut()
                .insert(Background(Arc::new(move |fut| waiter.wait_until(fut))));
            async move { inner.call((vercel, req)).await }
        },
    );
    vercel_runtime::run(service).await
}
