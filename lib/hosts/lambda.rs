//! AWS Lambda (API Gateway v2 / Function URLs) through `lambda_http`, which runs the router.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::{Error, RequestExt};

use crate::http::ClientIp;

/// The client's address from the Lambda request context.
async fn source_ip(mut req: Request, next: Next) -> Response {
    let client_ip = req
        .request_context_ref()
        .and_then(|ctx| match ctx {
            lambda_http::request::RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .and_then(|ip| ip.parse().ok());
    req.extensions_mut().insert(ClientIp(client_ip));
    next.run(req).await
}

/// The router as Lambda runs it (public so tests can pass it real events).
pub fn app(router: Router) -> Router {
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn(source_ip))
}

/// Serves `router` from the Lambda runtime API.
pub async fn run(router: Router) -> Result<(), Error> {
    lambda_http::run(app(router)).await
}
