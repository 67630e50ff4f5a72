//! Building responses: JSON, CDN-cacheable answers with strong ETags (answered 304 by the
//! conditional-GET layer, [`super::middleware::conditional`]), redirects.

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

/// Whether `If-None-Match` field values name `etag` or `*`, with the weak comparison
/// RFC 9110 §13.1.2 prescribes (`W/` ignored). Values that are not visible ASCII match
/// nothing.
pub fn if_none_match<'a>(values: impl IntoIterator<Item = &'a HeaderValue>, etag: &str) -> bool {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
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

/// Properties of conditional requests: `If-None-Match` never panics and matches exactly
/// when one of its tags (weak or strong) is the current ETag, or `*`.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn header_values(raw: &[Vec<u8>]) -> Vec<HeaderValue> {
        raw.iter()
            .filter_map(|b| HeaderValue::from_bytes(b).ok())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_listed_etag_matches_wherever_it_is(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            others in proptest::collection::vec("\"[0-9a-f]{32}\"", 0..4),
            at in 0usize..5, weak in prop::bool::ANY, spaces in " {0,2}",
        ) {
            let etag = etag_of(&body);
            prop_assert_eq!(etag.len(), 34);
            prop_assert_eq!(etag_of(&body), etag.clone());
            let mut tags = others.clone();
            let mine = if weak { format!("W/{etag}") } else { etag.clone() };
            tags.insert(at.min(tags.len()), mine);
            let value = HeaderValue::from_str(&tags.join(&format!(",{spaces}"))).unwrap();
            prop_assert!(if_none_match([&value], &etag));
            let without = HeaderValue::from_str(&others.join(", ")).unwrap();
            prop_assert_eq!(if_none_match([&without], &etag), others.contains(&etag));
        }

        #[test]
        fn arbitrary_header_bytes_never_panic_and_rarely_match(
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..4)
        ) {
            let values = header_values(&raw);
            let etag = etag_of(b"current");
            let matched = if_none_match(&values, &etag);
            let named = values.iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains('*') || v.contains(&etag));
            prop_assert!(!matched || named);
        }
    }

    #[test]
    fn star_matches_anything() {
        let star = HeaderValue::from_static("*");
        assert!(if_none_match([&star], &etag_of(b"x")));
        let none: [&HeaderValue; 0] = [];
        assert!(!if_none_match(none, &etag_of(b"x")));
    }
}
