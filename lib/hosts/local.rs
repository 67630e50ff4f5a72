//! One local process serving every route on one port (development and tests).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as HyperBody;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::http::MAX_BODY_BYTES;
use crate::http::dispatch::{Incoming, Resolve, dispatch};
use crate::state::AppState;

/// Serves every route of [`crate::routes::ROUTES`] on `listener` until `shutdown` resolves.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut shutdown => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), peer, req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: hyper::Request<HyperBody>,
) -> Result<hyper::Response<Full<bytes::Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes());
    let incoming = Incoming {
        parts,
        body,
        client_ip: Some(peer.ip()),
        background: super::spawn_background(),
    };
    let response = dispatch(state, Resolve::Table(crate::routes::ROUTES), incoming).await;
    let (parts, body) = response.into_parts();
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}
