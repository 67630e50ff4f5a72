//! One local process serving every route on one port (development and tests).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Incoming as HyperBody;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::http::dispatch::{Incoming, Resolve, dispatch, read_body};
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
    let incoming = Incoming {
        parts,
        body: read_body(body).await,
        client_ip: Some(peer.ip()),
        background: super::spawn_background(),
    };
    let response = dispatch(state, Resolve::Table(crate::routes::ROUTES), incoming).await;
    let (parts, body) = response.into_parts();
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}
