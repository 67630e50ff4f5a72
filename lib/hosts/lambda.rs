//! AWS Lambda (API Gateway v2 / Function URLs) through `lambda_http`, which runs the router.

use axum::Router;
use lambda_http::{Error, RequestExt};
use tower::util::MapRequest;

use crate::http::ClientIp;

/// Records the client's address from the Lambda request context.
fn with_source_ip(mut req: lambda_http::Request) -> lambda_http::Request {
    let client_ip = req
        .request_context_ref()
        .and_then(|ctx| match ctx {
            lambda_http::request::RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .and_then(|ip| ip.parse().ok());
    req.extensions_mut().insert(ClientIp(client_ip));
    req
}

/// The router as Lambda runs it (public so tests can pass it real events).
pub fn app(router: Router) -> MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request> {
    MapRequest::new(router, with_source_ip)
}

/// Serves `router` from the Lambda runtime API.
pub async fn run(router: Router) -> Result<(), Error> {
    lambda_http::run(app(router)).await
}
