//! Building responses: JSON, CDN-cacheable answers with strong ETags (which the
//! conditional-GET layer answers with 304), redirects.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ApiError;

/// A JSON response that must not be cached (CI and admin routes).
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// How a public read may be cached by the CDN.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// Seconds the CDN may serve it without asking again.
    pub s_maxage: u32,
    /// A request header the answer depends on (sent as `Vary`).
    pub vary: Option<&'static str>,
    /// The answer is for this client only: no shared cache may keep it.
    pub private: bool,
}

impl CachePolicy {
    fn header_value(&self) -> HeaderValue {
        if self.private {
            return HeaderValue::from_static("private, no-store");
        }
        let v = format!(
            "public, max-age=0, s-maxage={}, stale-while-revalidate={}",
            self.s_maxage,
            self.s_maxage.saturating_mul(2).max(1)
        );
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("no-store"))
    }
}

/// A strong ETag over the exact body bytes.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// A cacheable response: strong `ETag` and CDN `Cache-Control` (the conditional-GET layer
/// answers a matching `If-None-Match` with 304). A `None` body is a 204 (still cacheable:
/// "no update" is an answer too).
pub fn cached(
    status: StatusCode,
    content_type: &'static str,
    body: Option<Vec<u8>>,
    policy: CachePolicy,
) -> Response {
    let body = body.unwrap_or_default();
    let etag = etag_of(&body);
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if status != StatusCode::NO_CONTENT {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    h.insert(header::CACHE_CONTROL, policy.header_value());
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(vary) = policy.vary {
        h.insert(header::VARY, HeaderValue::from_static(vary));
    }
    r
}

/// A cacheable JSON response (see [`cached`]).
pub fn cached_json<T: Serialize>(value: &T, policy: CachePolicy) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Ok(cached(
        StatusCode::OK,
        "application/json",
        Some(body),
        policy,
    ))
}

/// A 302 to a short-lived URL: never cached, since the target expires.
pub fn redirect(location: &str) -> Result<Response, ApiError> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    let loc = HeaderValue::from_str(location).map_err(ApiError::internal)?;
    r.headers_mut().insert(header::LOCATION, loc);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// 204 with no body, not cached.
pub fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
