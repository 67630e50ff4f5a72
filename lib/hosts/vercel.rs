//! Vercel: `vercel_runtime` 2.x serves HTTP on `127.0.0.1:$VERCEL_DEV_PORT` and hands each
//! request to the router.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use tower::{Service, ServiceExt};
use vercel_runtime::Error;

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

/// A constant, so it is not parsed from a string per request.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The router as a Vercel function runs it (public so tests can pass it the paths Vercel
/// sends): the public path put back ([`public_path`]) and the client's address taken from
/// `x-forwarded-for` (Vercel's edge sets it; the first entry is the client), before routing.
pub fn app(
    router: Router,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    tower::service_fn(move |req: Request| {
        let router = router.clone();
        async move {
            let mut req = match public_path(req) {
                Ok(req) => req,
                Err(e) => return Ok(e.into_response()),
            };
            let client_ip = req
                .headers()
                .get(X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            req.extensions_mut().insert(ClientIp(client_ip));
            router.oneshot(req).await
        }
    })
}

/// Serves `router` until the platform stops the instance.
///
/// Not through `vercel_runtime`'s own axum layer: it treats every `application/json` answer
/// as a stream (a spawned task and a channel per response, sent as chunks), which on the
/// function's HTTP server costs each JSON answer a ~40 ms Nagle / delayed-ACK stall
/// (measured: the latest lookup fell from 20,000/s to 1,450/s, p50 44 ms). The Hub's
/// answers are small and whole, so they are sent whole.
pub async fn run(router: Router) -> Result<(), Error> {
    let app = app(router);
    let service = vercel_runtime::service_fn(
        move |req: vercel_runtime::Request, vercel: vercel_runtime::AppState| {
            let app = app.clone();
            async move {
                let mut req = req.map(axum::body::Body::new);
                // Vercel's waitUntil keeps the invocation alive until background work settles.
                req.extensions_mut()
                    .insert(Background(Arc::new(move |fut| vercel.wait_until(fut))));
                let response = app.oneshot(req).await.map_err(|e| match e {})?;
                let (parts, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await?;
                Ok::<_, Error>(vercel_runtime::Response::from_parts(
                    parts,
                    vercel_runtime::ResponseBody::from(bytes),
                ))
            }
        },
    );
    vercel_runtime::run(service).await
}
