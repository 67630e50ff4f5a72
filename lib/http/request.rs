//! The request as handlers see it, whichever host received it.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Uri};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Runs work after the response is sent (Vercel's `waitUntil`, or a spawned task).
pub type Background = Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>;

/// Per-request facts shared between the handler and the request log.
pub struct RequestMeta {
    /// The `x-request-id` echoed on the response.
    pub request_id: String,
    /// The deploy token that authenticated the request, for the log line (never the secret).
    pub token_id: OnceLock<String>,
    /// Where to run work that must not delay the response.
    pub background: Background,
}

impl RequestMeta {
    /// Records which token authenticated this request.
    pub fn set_token_id(&self, id: impl Into<String>) {
        let _ = self.token_id.set(id.into());
    }
}

/// An HTTP request with its body read and its path parameters resolved.
pub struct ApiRequest {
    /// Method.
    pub method: Method,
    /// Full request URI (path and query).
    pub uri: Uri,
    /// Request headers.
    pub headers: HeaderMap,
    /// The whole body (bounded by [`super::MAX_BODY_BYTES`]).
    pub body: Bytes,
    /// Path parameters by name, percent-decoded.
    pub params: Vec<(&'static str, String)>,
    /// The client's address, when the host knows it.
    pub client_ip: Option<IpAddr>,
    /// Request id, token id and background runner.
    pub meta: Arc<RequestMeta>,
}

impl ApiRequest {
    /// A path parameter; routes only declare parameters their pattern has.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// A query parameter, percent-decoded; empty values count as absent.
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.uri.query()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }

    /// A header as a string, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, or a 400 naming what is wrong with it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("the request body is not valid: {e}"),
            )
        })
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.meta.request_id
    }
}
