//! The layers every host runs around the handlers: request ids and one JSON log line per
//! request, body limits and 304 answers to conditional GETs ([`request_log`]); problems for unknown paths and methods ([`no_route`],
//! [`wrong_method`]); and, on Vercel, the path its file-system routing rewrote
//! ([`vercel_path`]).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use serde::Serialize;

use super::problem::REQUEST_ID;
use super::{ApiError, Background, ClientIp, RequestMeta, quoted};
use crate::config::LogLevel;
use crate::state::AppState;

/// The request id header, a constant so it is not parsed from a string per request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `x-request-id` when it is a short token, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        // A v4 UUID from the thread's CSPRNG (no getrandom syscall per request).
        .unwrap_or_else(|| {
            uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .simple()
                .to_string()
        })
}

/// The one layer every request runs through (one layer, not two: each costs a boxed future
/// and a clone of the inner service per request). It gives the request its id and
/// [`RequestMeta`], applies [`per_route`] to a request for a route, echoes `x-request-id`,
/// and writes one JSON line for it on stderr: route, status, latency, problem code, request
/// id, token id. Only the path is logged (no query, no headers), so no secret can reach the
/// log; at `ATLAS_LOG=debug`, the query and headers with every value that can carry a
/// credential redacted, the client address and the problem's detail.
pub async fn request_log(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    let meta = Arc::new(RequestMeta {
        request_id: request_id.clone(),
        token_id: OnceLock::new(),
        background: req
            .extensions()
            .get::<Background>()
            .cloned()
            .unwrap_or_else(Background::spawned),
    });
    req.extensions_mut().insert(meta.clone());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let debug = (state.config.log >= LogLevel::Debug).then(|| DebugFields {
        query: req.uri().query().map(redacted_query),
        headers: redacted_headers(req.headers()),
        client_ip: req.extensions().get::<ClientIp>().and_then(|c| c.0),
        detail: None,
    });

    let run = async {
        if route.is_some() {
            per_route(req, next).await
        } else {
            next.run(req).await
        }
    };
    let mut response = REQUEST_ID.scope(request_id.clone(), run).await;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, v);
    }
    let route = route.as_ref().map_or("-", MatchedPath::as_str);
    let problem = response.extensions().get::<ApiError>();
    if let Some(cause) = problem.and_then(|p| p.cause.as_deref()) {
        log_error(&request_id, route, cause);
    }
    let status = response.status().as_u16();
    let line = LogLine {
        ts: now_rfc3339(),
        level: if status >= 500 {
            "error"
        } else if status >= 400 {
            "warn"
        } else {
            "info"
        },
        route,
        method: method.as_str(),
        path: &path,
        status,
        latency_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        code: problem.map(|p| p.code.as_str()),
        reason: problem.and_then(|p| p.extra.as_ref()?.get("reason")?.as_str()),
        request_id: &request_id,
        token_id: meta.token_id.get().map(String::as_str),
        debug: debug.map(|mut d| {
            d.detail = problem.map(|p| p.detail.clone());
            d
        }),
    };
    if let Ok(s) = serde_json::to_vec(&line) {
        write_line(s);
    }
    response
}

/// Writes one log line with one `write` (stderr is unbuffered: `eprintln!` would send the
/// line and its newline as two system calls).
fn write_line(mut line: Vec<u8>) {
    use std::io::Write as _;
    line.push(b'\n');
    let _ = std::io::stderr().write_all(&line);
}

/// What a request for a route runs before its handler: a body known to be over
/// [`super::MAX_BODY_BYTES`] (its `Content-Length`, or the size of a body the host already
/// holds, as Lambda's) refused with 413 `payload_too_large` before anything else is done (a
/// body of unknown length is held to the limit as it is read, [`super::extract::Json`]); and
/// after it, a GET or HEAD whose `If-None-Match` names the response's `ETag` answered 304
/// with no body (RFC 9110 §13.1.2: weak comparison, `*` matches), keeping the caching
/// headers.
async fn per_route(req: Request, next: Next) -> Response {
    use http_body::Body as _;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .max(req.body().size_hint().lower());
    if declared > super::MAX_BODY_BYTES as u64 {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::error::Code::PayloadTooLarge,
            format!(
                "request bodies are limited to {} bytes",
                super::MAX_BODY_BYTES
            ),
        )
        .into_response();
    }
    let tags: Vec<HeaderValue> = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .cloned()
        .collect();
    let response = next.run(req).await;
    if tags.is_empty()
        || !(response.status() == StatusCode::OK || response.status() == StatusCode::NO_CONTENT)
    {
        return response;
    }
    let Some(etag) = response
        .headers()
        .get(header::ETAG)
        .and_then(|e| e.to_str().ok())
        .map(str::to_owned)
    else {
        return response;
    };
    if !if_none_match(&tags, &etag) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::empty())
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

/// A method the matched route does not answer (405 `method_not_allowed`; the router adds
/// its `Allow`).
pub async fn wrong_method(method: http::Method) -> ApiError {
    ApiError::method_not_allowed(&method)
}

/// The fallback: no route for the path (404 `not_found`).
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", quoted(uri.path())))
}

/// What a path segment keeps unencoded: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Vercel's file-system routing invokes a function at its file path with the dynamic
/// segments in the query (`/api/v1/releases/[product]/latest/[os]/[arch]?product=x&os=…`).
/// This puts each value back into its segment and takes it out of the query, so the router
/// sees the public path (and a client's own `?product=` can never stand in for the path:
/// given twice, it is refused). Paths without `[name]` segments pass unchanged.
pub fn vercel_path(mut req: Request) -> Result<Request, ApiError> {
    let uri = req.uri();
    if !uri.path().contains('[') {
        return Ok(req);
    }
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let mut segments = Vec::new();
    for segment in uri.path().split('/') {
        let Some(name) = segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
            segments.push(segment.to_owned());
            continue;
        };
        let at: Vec<usize> = pairs
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| k == name)
            .map(|(i, _)| i)
            .collect();
        let [i] = at[..] else {
            return Err(ApiError::invalid(format!(
                "query parameter {} must be given exactly once",
                quoted(name)
            )));
        };
        let (_, value) = pairs.remove(i);
        segments.push(percent_encoding::utf8_percent_encode(&value, SEGMENT).to_string());
    }
    let mut path_and_query = segments.join("/");
    if !pairs.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish(),
        );
    }
    *req.uri_mut() = path_and_query
        .parse()
        .map_err(|_| ApiError::invalid("the rewritten path is not a valid URI"))?;
    Ok(req)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogLine<'a> {
    ts: String,
    level: &'static str,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    /// Why a sign-in, session or cross-site check refused the request (`state_mismatch`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    debug: Option<DebugFields>,
}

/// What `ATLAS_LOG=debug` adds to a request's line. Values that can carry a credential are
/// replaced by `[redacted]` before they are kept: the secret never reaches the log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DebugFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

const REDACTED: &str = "[redacted]";

/// Whether a header or query parameter name may carry a credential (`authorization`,
/// `cookie`, `x-atlas-oidc-token`, `x-atlas-pack-deploy-token`, `X-Amz-Signature`…).
fn sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "cookie",
        "token",
        "secret",
        "key",
        "sig",
        "password",
        "credential",
        "session",
        // Sign-in: an authorization code, a flow's state, a CSRF token.
        "code",
        "state",
        "csrf",
        "nonce",
        "verifier",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A value as the debug log shows it: escaped, at most 80 characters.
fn shown(name: &str, value: &str) -> String {
    if sensitive(name) {
        REDACTED.to_owned()
    } else {
        quoted(value)
    }
}

fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match value.to_str() {
                Ok(v) => shown(name.as_str(), v),
                Err(_) if sensitive(name.as_str()) => REDACTED.to_owned(),
                Err(_) => "[not visible ASCII]".to_owned(),
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

fn redacted_query(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| format!("{}={}", quoted(&k), shown(&k, &v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn log_error(request_id: &str, route: &str, cause: &str) {
    let line = serde_json::json!({
        "ts": now_rfc3339(), "level": "error", "route": route,
        "requestId": request_id, "cause": cause,
    });
    write_line(line.to_string().into_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(uri: &str) -> Result<String, ApiError> {
        let req = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        vercel_path(req).map(|r| r.uri().to_string())
    }

    #[test]
    fn vercel_file_paths_become_public_paths() {
        assert_eq!(
            rewritten("/api/v1/releases/[product]/latest/[os]/[arch]?product=launcher&os=linux&arch=x86_64&channel=beta").unwrap(),
            "/api/v1/releases/launcher/latest/linux/x86_64?channel=beta"
        );
        // A value that is not a plain segment stays one segment.
        assert_eq!(
            rewritten("/api/v1/updater/[product]/[target]/[arch]/[currentVersion]?product=l&target=linux&arch=x86_64&currentVersion=1.0.0%2Bb.1").unwrap(),
            "/api/v1/updater/l/linux/x86_64/1.0.0%2Bb.1"
        );
        assert_eq!(
            rewritten("/api/health?deep=1").unwrap(),
            "/api/health?deep=1"
        );
        // A client's own `?product=` beside the platform's is refused, not preferred.
        assert!(rewritten("/api/v1/releases/[product]?product=a&product=b").is_err());
        assert!(rewritten("/api/v1/releases/[product]").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// A client's `x-request-id` is echoed only when it is a short token; anything else
        /// (controls, quotes, non-ASCII, over 64 bytes) is replaced by a fresh id.
        #[test]
        fn request_ids_are_echoed_only_when_safe(id in proptest::prop_oneof![
            crate::test_support::hostile_string(80),
            "[A-Za-z0-9_-]{1,70}",
        ]) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&id) {
                headers.insert("x-request-id", v);
            }
            let got = request_id(&headers);
            let safe = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if safe {
                proptest::prop_assert_eq!(got, id);
            } else {
                proptest::prop_assert_eq!(got.len(), 32);
                proptest::prop_assert!(got.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }
}

/// Properties of conditional requests: `If-None-Match` never panics and matches exactly
/// when one of its tags (weak or strong) is the current ETag, or `*`.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::http::respond::etag_of;

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
