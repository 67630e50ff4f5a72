//! AWS Lambda (API Gateway v2 / Function URLs) through `lambda_http`.

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, Error, Request, RequestExt, Response};

use crate::http::dispatch::{BodyError, Incoming, dispatch};
use crate::http::{MAX_BODY_BYTES, Route};
use crate::state::AppState;

/// Serves `route` from the Lambda runtime API.
pub async fn run(state: Arc<AppState>, route: &'static Route) -> Result<(), Error> {
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let state = state.clone();
        async move { Ok::<_, Error>(handle(state, route, req).await) }
    }))
    .await
}

/// Runs one Lambda HTTP event through the dispatcher (public so tests can pass real events).
pub async fn handle(state: Arc<AppState>, route: &'static Route, req: Request) -> Response<Body> {
    let client_ip = req
        .request_context_ref()
        .and_then(|ctx| match ctx {
            lambda_http::request::RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .and_then(|ip| ip.parse().ok());
    let (parts, body) = req.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        #[allow(unreachable_patterns)]
        _ => Bytes::new(),
    };
    let body = if bytes.len() <= MAX_BODY_BYTES {
        Ok(bytes)
    } else {
        Err(BodyError::TooLarge)
    };
    let incoming = Incoming {
        parts,
        body,
        client_ip,
        background: super::spawn_background(),
    };
    let response = dispatch(state, super::single(route), incoming).await;
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    Response::from_parts(parts, body)
}
