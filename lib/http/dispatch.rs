//! Runs a matched handler: request id, problem rendering, HEAD bodies, one log line.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, request::Parts};
use serde::Serialize;

use super::problem::ErrorCode;
use super::request::{Background, RequestMeta};
use super::router::{Lookup, Route};
use super::{ApiError, ApiRequest, ApiResponse, MAX_BODY_BYTES};
use crate::config::LogLevel;
use crate::state::AppState;

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// It exceeded [`MAX_BODY_BYTES`] (answered 413 `payload_too_large`).
    TooLarge,
    /// Its framing was broken (a bad chunk, a connection closed mid-body): 400 `invalid_body`.
    Unreadable(String),
}

/// Reads a whole request body, at most [`MAX_BODY_BYTES`].
pub async fn read_body<B>(body: B) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// A request as a host received it, before routing.
pub struct Incoming {
    /// Method, URI, headers.
    pub parts: Parts,
    /// The body, or why it could not be read.
    pub body: Result<Bytes, BodyError>,
    /// Peer address when known.
    pub client_ip: Option<IpAddr>,
    /// How to run work after the response.
    pub background: Background,
}

/// Where path parameters come from for a request.
pub enum Resolve<'a> {
    /// Look the path up in a whole table (the local server).
    Table(&'a [Route]),
    /// One function hosting one route: parameters from the path, else from the query
    /// (Vercel rewrites `[param]` file segments to `?param=`). The public path they spell is
    /// then looked up in `table`, because Vercel orders dynamic routes by file rather than
    /// by specificity: `/api/v1/releases/x/channels` can reach the `[version]` function.
    Single {
        /// The function's own route.
        route: &'a Route,
        /// Every route, to serve the more specific one a public path names.
        table: &'a [Route],
    },
}

fn request_id(parts: &Parts) -> String {
    parts
        .headers
        .get("x-request-id")
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

/// Whether another route of `table` could match a path `route` matches and be at least as
/// specific (same number of segments, compatible literals, no more parameters): only then
/// must a function look its public path up in the whole table. Decided once per route (a
/// function serves one), as the lookup costs more than the rest of the routing.
fn shadowed(route: &Route, table: &[Route]) -> bool {
    static DECIDED: Mutex<Vec<(usize, usize, bool)>> = Mutex::new(Vec::new());
    let key = (route as *const Route as usize, table.as_ptr() as usize);
    if let Some((_, _, s)) = DECIDED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(r, t, _)| (*r, *t) == key)
    {
        return *s;
    }
    fn is_param(s: &&str) -> bool {
        s.starts_with('{')
    }
    let params = |p: &[&str]| p.iter().filter(|s| is_param(s)).count();
    let mine: Vec<&str> = route.pattern.split('/').collect();
    let shadowed = table.iter().any(|other| {
        let theirs: Vec<&str> = other.pattern.split('/').collect();
        !std::ptr::eq(other, route)
            && theirs.len() == mine.len()
            && mine
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a == b || is_param(a) || is_param(b))
            && params(&theirs) <= params(&mine)
    });
    DECIDED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key.0, key.1, shadowed));
    shadowed
}

/// Refuses query parameters `route` does not take, and any given twice: a parameter the
/// client meant to matter (`?Channel=beta`) is never silently ignored, and one the Hub reads
/// has one value. `from_path` are names the platform moved from the path into the query
/// (Vercel's `[param]` rewrites), allowed once each.
fn check_query(route: &Route, query: Option<&str>, from_path: &[&str]) -> Result<(), ApiError> {
    let Some(query) = query else { return Ok(()) };
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        if !route.query.contains(&name.as_ref()) && !from_path.contains(&name.as_ref()) {
            let takes = if route.query.is_empty() {
                "this route takes no query parameters".to_owned()
            } else {
                format!("this route takes {}", route.query.join(", "))
            };
            return Err(ApiError::invalid(format!(
                "query parameter {} is not known ({takes}; names are case-sensitive)",
                super::quoted(&name)
            )));
        }
        if seen.iter().any(|s| *s == name) {
            return Err(ApiError::invalid(format!(
                "query parameter {} is given twice; give it once",
                super::quoted(&name)
            )));
        }
        seen.push(name.into_owned());
    }
    Ok(())
}

/// The names of `route`'s path parameters a function found in the query (Vercel puts a
/// `[param]` segment's value there when it invokes the function's file path).
fn params_in_query(route: &Route, parts: &Parts) -> Vec<&'static str> {
    match route.match_path(parts.uri.path()) {
        Some(params) => params
            .into_iter()
            .filter(|(name, value)| *value == format!("[{name}]"))
            .map(|(name, _)| name)
            .collect(),
        None => route.param_names().collect(),
    }
}

fn single_route_params(route: &Route, parts: &Parts) -> Option<Vec<(&'static str, String)>> {
    let query = parts.uri.query().unwrap_or("");
    let from_query = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty() && !v.contains('/'))
    };
    match route.match_path(parts.uri.path()) {
        // The original path; a segment still holding its file placeholder (`[product]`)
        // means the platform invoked the file path and put the value in the query.
        Some(params) => params
            .into_iter()
            .map(|(name, value)| {
                if value == format!("[{name}]") {
                    from_query(name).map(|v| (name, v))
                } else {
                    Some((name, value))
                }
            })
            .collect(),
        None => route
            .param_names()
            .map(|name| from_query(name).map(|v| (name, v)))
            .collect(),
    }
}

/// Routes, runs and logs one request. Never fails: every error becomes a problem response.
pub async fn dispatch(
    state: Arc<AppState>,
    resolve: Resolve<'_>,
    incoming: Incoming,
) -> ApiResponse {
    let started = Instant::now();
    let Incoming {
        parts,
        body,
        client_ip,
        background,
    } = incoming;
    let meta = Arc::new(RequestMeta {
        request_id: request_id(&parts),
        token_id: OnceLock::new(),
        background,
    });
    let is_head = parts.method == Method::HEAD;
    let debug = state.config.log >= LogLevel::Debug;
    let mut detail = None;

    let mut from_path: Vec<&'static str> = Vec::new();
    let found = match resolve {
        Resolve::Table(routes) => lookup_table(routes, &parts.method, parts.uri.path()),
        Resolve::Single { route, table } => match single_route_params(route, &parts).inspect(|_| {
            from_path = params_in_query(route, &parts);
        }) {
            // No other route can claim this path: the table lookup would find this one.
            Some(params) if !shadowed(route, table) => match route.handler(&parts.method) {
                Some(handler) => Ok((route, handler, params)),
                None => Err(method_not_allowed(route.allow())),
            },
            Some(params) => {
                let public = fill(route.pattern, &params);
                match super::router::lookup(table, &parts.method, &public) {
                    Lookup::Found(found, handler, params) => Ok((found, handler, params)),
                    Lookup::MethodNotAllowed(allow) => Err(method_not_allowed(allow)),
                    // A route the table does not list (embedders, tests): the function's own.
                    Lookup::NotFound => match route.handler(&parts.method) {
                        Some(handler) => Ok((route, handler, params)),
                        None => Err(method_not_allowed(route.allow())),
                    },
                }
            }
            None => Err(ApiError::not_found(format!(
                "no route for {}",
                super::quoted(parts.uri.path())
            ))),
        },
    };

    let (pattern, result) = match found {
        Err(e) => ("-", Err(e)),
        Ok((route, _, _)) if let Err(e) = check_query(route, parts.uri.query(), &from_path) => {
            (route.pattern, Err(e))
        }
        Ok((route, handler, params)) => match body {
            Err(BodyError::TooLarge) => (
                route.pattern,
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                )),
            ),
            Err(BodyError::Unreadable(cause)) => (
                route.pattern,
                Err(ApiError::bad_request(
                    "invalid_body",
                    format!("the request body could not be read ({cause}); send it again"),
                )),
            ),
            Ok(body) => {
                let req = ApiRequest {
                    method: parts.method.clone(),
                    uri: parts.uri.clone(),
                    headers: parts.headers.clone(),
                    body,
                    params,
                    client_ip,
                    meta: meta.clone(),
                };
                (route.pattern, handler(state, req).await)
            }
        },
    };

    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(cause) = &e.cause {
                log_error(&meta.request_id, pattern, cause);
            }
            if debug {
                detail = Some(e.detail.clone());
            }
            e.into_response(&meta.request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&meta.request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    if is_head {
        let len = response.body().len();
        *response.body_mut() = Bytes::new();
        if len > 0 {
            response
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    let debug = debug.then(|| DebugFields {
        query: parts.uri.query().map(redacted_query),
        headers: redacted_headers(&parts.headers),
        client_ip,
        detail,
    });
    log_request(&parts, pattern, &response, &meta, started, debug);
    response
}

type Found<'a> = (&'a Route, super::Handler, Vec<(&'static str, String)>);

fn lookup_table<'a>(
    routes: &'a [Route],
    method: &Method,
    path: &str,
) -> Result<Found<'a>, ApiError> {
    match super::router::lookup(routes, method, path) {
        Lookup::Found(route, handler, params) => Ok((route, handler, params)),
        Lookup::MethodNotAllowed(allow) => Err(method_not_allowed(allow)),
        Lookup::NotFound => Err(ApiError::not_found(format!(
            "no route for {}",
            super::quoted(path)
        ))),
    }
}

/// `pattern` with its `{name}` segments replaced by percent-encoded `params`.
fn fill(pattern: &str, params: &[(&'static str, String)]) -> String {
    pattern
        .split('/')
        .map(|segment| {
            match segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .and_then(|name| params.iter().find(|(n, _)| *n == name))
            {
                Some((_, value)) => {
                    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                }
                None => segment.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method_not_allowed(allow: String) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route answers {allow}"),
    );
    e.allow = Some(allow);
    e
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
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A value as the debug log shows it: escaped, at most 80 characters.
fn shown(name: &str, value: &str) -> String {
    if sensitive(name) {
        REDACTED.to_owned()
    } else {
        super::quoted(value)
    }
}

fn redacted_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
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
        .map(|(k, v)| format!("{}={}", super::quoted(&k), shown(&k, &v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One JSON line per request on stderr. Only the path is logged (no query, no headers),
/// so no secret can reach the log; at `ATLAS_LOG=debug`, the query and headers with every
/// value that can carry a credential redacted, and the problem's detail.
fn log_request(
    parts: &Parts,
    route: &str,
    response: &ApiResponse,
    meta: &RequestMeta,
    started: Instant,
    debug: Option<DebugFields>,
) {
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
        method: parts.method.as_str(),
        path: parts.uri.path(),
        status,
        latency_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        code: response.extensions().get::<ErrorCode>().map(|c| c.0),
        request_id: &meta.request_id,
        token_id: meta.token_id.get().map(String::as_str),
        debug,
    };
    if let Ok(s) = serde_json::to_string(&line) {
        eprintln!("{s}");
    }
}

fn log_error(request_id: &str, route: &str, cause: &str) {
    let line = serde_json::json!({
        "ts": now_rfc3339(), "level": "error", "route": route,
        "requestId": request_id, "cause": cause,
    });
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pattern: &str) -> &'static Route {
        crate::routes::ROUTES
            .iter()
            .find(|r| r.pattern == pattern)
            .unwrap_or_else(|| panic!("no route {pattern}"))
    }

    #[test]
    fn only_routes_another_route_can_claim_need_the_table_lookup() {
        let table = crate::routes::ROUTES;
        // `/api/v1/releases/x/channels` also matches `{version}`; the literal route wins.
        assert!(shadowed(
            find("/api/v1/releases/{product}/{version}"),
            table
        ));
        assert!(!shadowed(
            find("/api/v1/releases/{product}/channels"),
            table
        ));
        assert!(!shadowed(
            find("/api/v1/releases/{product}/latest/{os}/{arch}"),
            table
        ));
        assert!(!shadowed(find("/api/v1/download/{downloadId}"), table));
        // Decided once, then remembered.
        assert!(shadowed(
            find("/api/v1/releases/{product}/{version}"),
            table
        ));
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
            let mut request = http::Request::new(());
            if let Ok(v) = HeaderValue::from_str(&id) {
                request.headers_mut().insert("x-request-id", v);
            }
            let (parts, ()) = request.into_parts();
            let got = request_id(&parts);
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

        /// What a Vercel function rebuilds from query parameters resolves to the same
        /// parameters, whatever they hold.
        #[test]
        fn filled_patterns_match_back_to_their_parameters(
            product in crate::test_support::hostile_string(20),
            version in crate::test_support::hostile_string(20),
        ) {
            proptest::prop_assume!(!product.is_empty() && !version.is_empty());
            let route = find("/api/v1/releases/{product}/{version}");
            let params = vec![("product", product.clone()), ("version", version.clone())];
            let path = fill(route.pattern, &params);
            proptest::prop_assert_eq!(route.match_path(&path), Some(params));
        }
    }
}
