//! The HTTP layer, on axum: what every route and every host shares.
//!
//! - [`extract`]: extractors that parse requests into domain types (path, query, JSON body,
//!   credentials) and refuse the rest with problem+json;
//! - [`middleware`]: the tower layers every host runs: request ids, one JSON log line per
//!   request (secrets redacted), problem bodies, conditional GETs, Vercel's path rewrites;
//! - [`problem`]: [`crate::error::ApiError`] as a response;
//! - [`respond`]: JSON, CDN-cacheable and redirect responses;
//! - [`session`]: the operator's session and sign-in cookies, and the cross-site checks of
//!   cookie-authenticated writes.

pub mod extract;
pub mod middleware;
pub mod problem;
pub mod respond;
pub mod session;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;

pub use crate::error::{ApiError, quoted};

/// What a handler returns.
pub type ApiResult = Result<axum::response::Response, ApiError>;

/// Largest request body accepted (JSON metadata only; artifacts never pass through the Hub).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Runs work after the response is sent (Vercel's `waitUntil`, or a spawned task). Hosts put
/// one in the request's extensions; without one, work is spawned.
#[derive(Clone)]
pub struct Background(pub Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>);

impl Background {
    /// Background work as a spawned task (hosts without `waitUntil`).
    pub fn spawned() -> Self {
        Background(Arc::new(|fut| {
            tokio::spawn(fut);
        }))
    }

    /// Runs `fut` after the response.
    pub fn run(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        (self.0)(Box::pin(fut))
    }
}

/// The client's address as the host knows it (the peer, a forwarded-for header, the
/// Lambda request context). Hosts put it in the request's extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientIp(pub Option<IpAddr>);

/// Per-request facts shared between the handler and the request log; the request-log layer
/// puts one in every request's extensions.
pub struct RequestMeta {
    /// The `x-request-id` echoed on the response.
    pub request_id: String,
    /// The credential that authenticated the request, for the log line (never the secret).
    pub token_id: OnceLock<String>,
    /// Where to run work that must not delay the response.
    pub background: Background,
}

impl RequestMeta {
    /// Records which credential authenticated this request.
    pub fn set_token_id(&self, id: impl Into<String>) {
        let _ = self.token_id.set(id.into());
    }
}
