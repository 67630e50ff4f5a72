//! [`ApiError`] as an `application/problem+json` response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use crate::error::ApiError;

tokio::task_local! {
    /// The request id of the request being answered, set by the request-log layer around
    /// each request, so a problem body carries it wherever the problem was raised.
    pub static REQUEST_ID: String;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID
            .try_with(Clone::clone)
            .unwrap_or_else(|_| "-".to_owned());
        let body = serde_json::to_string(&self.problem(&request_id)).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // For the request log: the code, and the cause of a 5xx (never sent).
        response.extensions_mut().insert(self);
        response
    }
}
