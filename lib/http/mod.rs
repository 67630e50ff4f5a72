//! The HTTP surface shared by every host: request type, problem errors, the route matcher,
//! response helpers and the dispatcher that logs one line per request.

pub mod dispatch;
pub mod problem;
pub mod request;
pub mod respond;
pub mod router;

pub use problem::{ApiError, quoted};
pub use request::ApiRequest;
pub use router::{Handler, Route};

/// The response type handlers produce: a fully buffered body.
pub type ApiResponse = ::http::Response<bytes::Bytes>;

/// What a handler returns.
pub type ApiResult = Result<ApiResponse, ApiError>;

/// Largest request body accepted (JSON metadata only; artifacts never pass through the Hub).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
