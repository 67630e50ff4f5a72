//! Extractors: a request parsed into domain types, or the problem that says why not.
//!
//! - [`Path`], [`Query`]: parameters deserialized into domain types (which parse
//!   themselves); a value that does not parse is 400 `invalid_input` naming the parameter, an
//!   unknown or repeated query parameter is refused, never ignored, and an empty query value
//!   counts as absent.
//! - [`Json`], [`NoBody`], [`OptionalJson`]: the body as one JSON object (415, 413, 400
//!   `invalid_json` or `invalid_input` naming the field), no body at all, or either.
//! - [`Caller`], [`Admin`], [`Reader`], [`PackCaller`], [`CiCaller`], [`SignedIn`]: the
//!   credentials (a token, or an operator's session cookie), verified before anything else
//!   of the request is read (list them first among a handler's arguments).
//! - [`Meta`], [`Client`]: the request's id, log facts and background runner; the client's
//!   address.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::session::{SESSION_COOKIE, check_same_origin, is_unsafe, read_cookie};
use super::{ApiError, Background, ClientIp, MAX_BODY_BYTES, RequestMeta, quoted};
use crate::db::Sql;
use crate::domain::limits::AuthGuard;
pub use crate::domain::packs::PackCredential;
use crate::domain::sessions::Operator;
use crate::domain::tokens::{self, Principal};
use crate::error::Code;
use crate::state::AppState;

/// Header carrying a GitHub Actions OIDC token.
pub const OIDC_HEADER: &str = "x-atlas-oidc-token";
/// Header carrying a pack deploy token.
pub const PACK_TOKEN_HEADER: &str = "x-atlas-pack-deploy-token";

/// Deserializes `T` from `application/x-www-form-urlencoded` pairs, naming the parameter
/// whose value does not fit.
fn from_pairs<T: DeserializeOwned>(encoded: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let why = e.into_inner().to_string();
        ApiError::invalid(if path == "." {
            why.replace("field", "parameter")
        } else if why.starts_with('"') {
            // A domain type's own refusal: `"x" is not valid: expected …`.
            format!("{path} {why}")
        } else {
            format!("{path}: {why}")
        })
    })
}

/// Path parameters, percent-decoded, deserialized into `T`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Ok(axum::extract::Path(value)) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await
        {
            return Ok(Path(value));
        }
        // Refused: found again from the raw parameters, to name the one that does not fit
        // (axum's error does not name it when the domain type refuses the value). A segment
        // that does not decode (not UTF-8) names no route, as no route matched.
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::not_found(format!("no route for {}", quoted(parts.uri.path())))
            })?;
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &raw {
            form.append_pair(name, value);
        }
        from_pairs(&form.finish()).map(Path)
    }
}

/// Query parameters deserialized into `T` (whose fields are all optional). A parameter `T`
/// does not take, or one given twice, is 400 `invalid_input` naming it: `?Channel=beta`
/// must not silently serve stable, and random parameters must not defeat the CDN.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(seen, _)| seen == name) {
                return Err(ApiError::invalid(format!(
                    "query parameter {} is given twice; give it once",
                    quoted(name)
                )));
            }
        }
        // An empty value counts as absent (`?channel=` is the default channel).
        if pairs.iter().all(|(_, value)| !value.is_empty()) {
            return from_pairs(query).map(Query);
        }
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(pairs.iter().filter(|(_, value)| !value.is_empty()));
        from_pairs(&form.finish()).map(Query)
    }
}

/// The query of a route that takes none: any parameter is refused (`?x=1` must not be
/// silently ignored, nor defeat the CDN).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// Reads a whole body, at most [`MAX_BODY_BYTES`]: 413 `payload_too_large` beyond, 400
/// `invalid_body` when its framing breaks (a bad chunk, a connection closed mid-body).
async fn read_body(body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(
            Code::InvalidBody,
            format!("the request body could not be read ({e}); send it again"),
        )),
    }
}

/// 415 unless `content_type` is `application/json` (any case), optionally with
/// `charset=utf-8`: the Hub reads JSON bodies only, and only as UTF-8.
pub fn check_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let refused = |what: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            format!("{what}; send the body as JSON with content-type: application/json"),
        )
    };
    let Some(value) = content_type else {
        return Err(refused("the request has no content-type".into()));
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(refused(format!(
            "content-type {} is not accepted",
            quoted(essence)
        )));
    }
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let value = value.trim().trim_matches('"');
        let ok = name.trim().eq_ignore_ascii_case("charset")
            && (value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8"));
        if !ok && !parameter.trim().is_empty() {
            return Err(refused(format!(
                "content-type parameter {} is not accepted (only charset=utf-8)",
                quoted(parameter.trim())
            )));
        }
    }
    Ok(())
}

/// Parses a body that must be one JSON object into `T`. Syntax errors anywhere (including
/// trailing data and nesting deeper than serde_json's limit of 128) are 400 `invalid_json`;
/// values that do not fit `T` are 400 `invalid_input` with the path of the field
/// (`artifacts[0].size: …`).
pub fn parse_json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request(
            Code::InvalidJson,
            "the request body must be a JSON object ({…})",
        ));
    }
    // Syntax first, over the whole body (UTF-8, escapes, nesting, trailing data), so a
    // malformed body is `invalid_json` wherever the error sits, not whichever field error
    // comes first. Then the fields, straight from the bytes: only that pass sees duplicate
    // keys, which a parsed `Value` would silently collapse to the last one.
    serde_json::from_slice::<serde_json::Value>(body).map_err(|e| {
        ApiError::bad_request(
            Code::InvalidJson,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." {
            "the body".to_owned()
        } else {
            path
        };
        ApiError::invalid(format!("{field}: {inner}"))
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The body as one JSON object deserialized into `T` (unknown and duplicate fields refused).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let body = read_body(body).await?;
        if body.is_empty() {
            return Err(ApiError::bad_request(
                Code::InvalidJson,
                "the request body is empty; send a JSON object (content-type: application/json)",
            ));
        }
        check_json_content_type(header_str(&parts.headers, header::CONTENT_TYPE.as_str()))?;
        parse_json_object(&body).map(Json)
    }
}

/// No body: a route that takes none refuses one with fields (`{}` is accepted, as some
/// clients always send one), so a field the client expected to matter is never ignored.
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Nothing {}
        OptionalJson::<Nothing>::from_request(req, state)
            .await
            .map(|_| NoBody)
    }
}

/// No body (or only whitespace), or one JSON object read as [`Json`] reads it: for a route
/// that took no body and gained optional fields (a yank's `reason`), so the clients and CI
/// scripts that send nothing keep working while a body that is sent is held to the same
/// rules as any other (415 without the JSON content type, unknown fields refused).
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(value)| OptionalJson(Some(value)))
    }
}

/// The request's [`RequestMeta`] (id, token id for the log, background runner).
pub struct Meta(pub Arc<RequestMeta>);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Meta(meta(parts)))
    }
}

fn meta(parts: &Parts) -> Arc<RequestMeta> {
    parts
        .extensions
        .get::<Arc<RequestMeta>>()
        .cloned()
        .unwrap_or_else(|| {
            Arc::new(RequestMeta {
                request_id: "-".to_owned(),
                token_id: Default::default(),
                background: Background::spawned(),
            })
        })
}

/// The client's address, when the host knows it.
pub struct Client(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Client(parts.extensions.get::<ClientIp>().and_then(|c| c.0)))
    }
}

fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<ClientIp>().and_then(|c| c.0)
}

/// The operator a session cookie names: a live session whose person a rule still grants a
/// role, from an address not blocked for failed authentications; and, for a request that
/// changes state, one that passes the cross-site checks ([`check_same_origin`]). 401
/// `session_invalid` otherwise.
async fn signed_in(
    parts: &Parts,
    state: &AppState,
    conn: &impl Sql,
    cookie: &str,
) -> Result<Operator, ApiError> {
    let guard = AuthGuard::for_client(client_ip(parts), state.config.limits.auth_failures);
    if let Some(blocked) = guard.check(conn).await? {
        return Err(blocked);
    }
    let pepper = &state.config.token_pepper;
    if is_unsafe(&parts.method) {
        check_same_origin(parts, &state.config.hub_url, pepper, cookie)?;
    }
    match state.signin.operator(conn, pepper, cookie).await? {
        Some(operator) => {
            meta(parts).set_token_id(format!("session:{}", operator.session_id));
            Ok(operator)
        }
        None => Err(guard.failed(conn).await?.unwrap_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::SessionInvalid,
                "this session has ended (signed out, expired, revoked, or your access was \
                 withdrawn); sign in again",
            )
            .with_extra(serde_json::json!({ "reason": "session_unknown" }))
        })),
    }
}

/// The caller's credentials: the bearer token when an `Authorization` header is sent, else
/// the session cookie, else 401 `token_missing`.
async fn credentials(
    parts: &Parts,
    state: &AppState,
    conn: &impl Sql,
) -> Result<Principal, ApiError> {
    let authorization = header_str(&parts.headers, "authorization");
    if authorization.is_none()
        && let Some(cookie) = read_cookie(&parts.headers, SESSION_COOKIE)
    {
        return Ok(signed_in(parts, state, conn, &cookie).await?.principal());
    }
    let principal =
        tokens::authenticate_bearer(conn, &state.config, authorization, client_ip(parts)).await?;
    meta(parts).set_token_id(principal.key());
    Ok(principal)
}

/// A deploy token's holder (`Authorization: Bearer <token>`: valid, not revoked, not
/// expired) or a signed-in operator (the session cookie), from an address not blocked for
/// failed authentications; 401 otherwise.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let conn = state.db.conn().await?;
        Ok(Caller(credentials(parts, state, &conn).await?))
    }
}

/// Someone who may read what admins read: an admin token, or any signed-in operator.
pub struct Reader(pub Principal);

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        principal.require_reader()?;
        Ok(Reader(principal))
    }
}

/// A signed-in operator (the session cookie only; 401 `session_invalid` without one).
pub struct SignedIn(pub Operator);

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Some(cookie) = read_cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::SessionInvalid,
                "this needs a signed-in session (the session cookie); sign in first",
            ));
        };
        let conn = state.db.conn().await?;
        Ok(SignedIn(signed_in(parts, state, &conn, &cookie).await?))
    }
}

/// An admin token's holder; 403 `scope_denied` for any other token.
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        principal.require_admin()?;
        Ok(Admin(principal))
    }
}

/// The credential of a pack write: GitHub OIDC (`x-atlas-oidc-token`), a pack deploy token
/// (`x-atlas-pack-deploy-token`) or an operator's admin token (`Authorization`).
pub struct PackCaller(pub PackCredential);

impl FromRequestParts<Arc<AppState>> for PackCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let conn = state.db.conn().await?;
        let meta = meta(parts);
        let ip = client_ip(parts);
        let headers = &parts.headers;
        if let Some(token) = header_str(headers, OIDC_HEADER) {
            let guard = AuthGuard::for_client(ip, state.config.limits.auth_failures);
            if let Some(blocked) = guard.check(&conn).await? {
                return Err(blocked);
            }
            return match state.oidc.verify(token.trim()).await {
                Ok(claims) => {
                    meta.set_token_id(format!("oidc:{}", claims.jti));
                    Ok(PackCaller(PackCredential::Oidc(claims)))
                }
                // A forged or expired token counts against the address, like a bad token.
                Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                    Err(guard.failed(&conn).await?.unwrap_or(e))
                }
                Err(e) => Err(e),
            };
        }
        let principal = if let Some(token) = header_str(headers, PACK_TOKEN_HEADER) {
            let principal = tokens::authenticate_token(&conn, &state.config, token, ip).await?;
            meta.set_token_id(principal.key());
            principal
        } else if headers.contains_key("authorization")
            || read_cookie(headers, SESSION_COOKIE).is_some()
        {
            credentials(parts, state, &conn).await?
        } else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::TokenMissing,
                format!(
                    "pack writes need {OIDC_HEADER} (GitHub Actions OIDC) or {PACK_TOKEN_HEADER} \
                     (set ATLAS_PACK_DEPLOY_TOKEN)"
                ),
            ));
        };
        Ok(PackCaller(PackCredential::Token(principal)))
    }
}

/// The credential of a presign: a pack credential when one of the pack headers is sent,
/// else a bearer deploy token.
pub struct CiCaller(pub PackCredential);

impl FromRequestParts<Arc<AppState>> for CiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if parts.headers.contains_key(OIDC_HEADER) || parts.headers.contains_key(PACK_TOKEN_HEADER)
        {
            let PackCaller(credential) = PackCaller::from_request_parts(parts, state).await?;
            return Ok(CiCaller(credential));
        }
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        Ok(CiCaller(PackCredential::Token(principal)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        version: String,
        #[allow(dead_code)]
        artifacts: Vec<Artifact>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Artifact {
        size: i64,
        upload_id: Option<String>,
    }

    fn refused(body: &str) -> ApiError {
        parse_json_object::<Body>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn problems_name_the_field_that_does_not_fit() {
        let e = refused(r#"{"version": "1", "artifacts": [{"size": 1}, {"size": -1.5}]}"#);
        assert_eq!((e.code.as_str(), e.status.as_u16()), ("invalid_input", 400));
        assert!(e.detail.starts_with("artifacts[1].size: "), "{}", e.detail);
        let e = refused(r#"{"version": "1", "artifacts": [{"size": 1, "sizes": 2}]}"#);
        assert!(e.detail.contains("unknown field `sizes`"), "{}", e.detail);
        assert!(e.detail.starts_with("artifacts[0]"), "{}", e.detail);
        let e = refused(r#"{"version": "1", "artifacts": [], "artifacts": []}"#);
        assert!(e.detail.contains("duplicate field"), "{}", e.detail);
        let e = refused(r#"{"version": "1", "artifacts": [{"size": 9223372036854775808}]}"#);
        assert!(e.detail.starts_with("artifacts[0].size: "), "{}", e.detail);
        let e = refused(r#"{"artifacts": []}"#);
        assert!(e.detail.contains("missing field `version`"), "{}", e.detail);
    }

    #[test]
    fn only_one_json_object_is_a_body() {
        let whole = r#"{"version": "1", "artifacts": []}"#;
        for body in [
            "[]",
            "\"x\"",
            "1",
            "null",
            "{",
            &format!("{whole} {whole}"),
            &format!("{whole}x"),
            &format!("[{whole}]"),
        ] {
            let e = refused(body);
            assert_eq!(e.code, "invalid_json", "{body}: {}", e.detail);
        }
        // Deep nesting stops at serde_json's recursion limit, never at the stack's.
        let closed = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for body in [
            format!("{{\"version\": {}", "[".repeat(10_000)),
            format!("{{\"version\": {}}}", closed(10_000)),
            format!(
                "{{\"x\": {}}}",
                "{\"a\":".repeat(5_000) + "1" + &"}".repeat(5_000)
            ),
        ] {
            let e = refused(&body);
            assert_eq!(e.code, "invalid_json", "{}", e.detail);
            assert!(e.detail.contains("recursion limit"), "{}", e.detail);
        }
        // Within the limit, a nested value in the wrong place is a field error.
        let e = refused(&format!("{{\"version\": {}}}", closed(100)));
        assert!(e.detail.starts_with("version: "), "{}", e.detail);
        let ok: Body = parse_json_object(
            br#" {"version": "1.0.0", "artifacts": [{"size": 1, "uploadId": null}]} "#,
        )
        .unwrap();
        assert_eq!(ok.version, "1.0.0");
    }

    #[tokio::test]
    async fn optional_json_bodies_are_none_or_read_as_json() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Reason {
            reason: Option<String>,
        }
        async fn read(body: &str, content_type: Option<&str>) -> Result<Option<Reason>, ApiError> {
            let mut req = http::Request::post("/");
            if let Some(ct) = content_type {
                req = req.header(header::CONTENT_TYPE, ct);
            }
            let req = req.body(axum::body::Body::from(body.to_owned())).unwrap();
            OptionalJson::<Reason>::from_request(req, &())
                .await
                .map(|OptionalJson(r)| r)
        }
        assert!(read("", None).await.unwrap().is_none());
        assert!(read(" \r\n", None).await.unwrap().is_none());
        let empty = read("{}", Some("application/json")).await.unwrap().unwrap();
        assert!(empty.reason.is_none());
        let given = read(r#"{"reason": "bad build"}"#, Some("application/json"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(given.reason.as_deref(), Some("bad build"));
        let e = read("{}", None).await.unwrap_err();
        assert_eq!(e.code, "unsupported_media_type");
        let e = read(r#"{"reason": 5}"#, Some("application/json"))
            .await
            .unwrap_err();
        assert!(e.detail.starts_with("reason: "), "{}", e.detail);
        let e = read(r#"{"why": "x"}"#, Some("application/json"))
            .await
            .unwrap_err();
        assert!(e.detail.contains("unknown field `why`"), "{}", e.detail);
    }

    #[test]
    fn json_bodies_need_the_json_content_type() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json ;  charset=utf8",
        ] {
            assert!(check_json_content_type(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/json; charset=latin1"),
            Some("application/jsonx"),
            Some("application/json-seq"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json; boundary=x"),
        ] {
            let e = check_json_content_type(bad).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (415, "unsupported_media_type"),
                "{bad:?}"
            );
        }
    }
}

/// Properties: any body bytes and any content type give a value or a 4xx problem (never a
/// panic), and a JSON field the body type does not declare is refused by name.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{any_bytes, hostile_string};

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        size: Option<i64>,
        list: Option<Vec<String>>,
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            hostile_string(20).prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("name".to_owned()),
                        Just("size".to_owned()),
                        Just("list".to_owned()),
                        hostile_string(8)
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_are_a_body_or_a_400(bytes in prop_oneof![
            any_bytes(200),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            (1usize..20_000, prop::sample::select(vec!["[", "{\"a\":", "{\"list\":["])).prop_map(|(n, s)| {
                format!("{{\"name\":{}", s.repeat(n)).into_bytes()
            }),
        ]) {
            match parse_json_object::<Body>(&bytes) {
                Ok(b) => prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(), "{b:?}"),
                Err(e) => {
                    prop_assert_eq!(e.status.as_u16(), 400);
                    prop_assert!(e.code == "invalid_json" || e.code == "invalid_input", "{}", e.code);
                }
            }
        }

        #[test]
        fn undeclared_fields_are_refused_by_name(field in "[a-zA-Z_][a-zA-Z0-9_]{0,12}", value in json_value()) {
            prop_assume!(!["name", "size", "list"].contains(&field.as_str()));
            let mut body = serde_json::Map::new();
            body.insert("name".into(), "x".into());
            body.insert(field.clone(), value);
            let body = serde_json::Value::Object(body);
            let e = parse_json_object::<Body>(body.to_string().as_bytes()).unwrap_err();
            prop_assert_eq!(e.code, "invalid_input");
            prop_assert!(e.detail.contains(&format!("unknown field `{field}`")), "{}", e.detail);
        }

        #[test]
        fn sizes_outside_i64_or_not_integers_are_refused_naming_size(
            n in prop_oneof![
                (i64::MAX as u64 + 1..=u64::MAX).prop_map(|n| n.to_string()),
                any::<f64>().prop_filter("not integral", |f| f.fract() != 0.0 && f.is_finite()).prop_map(|f| f.to_string()),
                "[1-9][0-9]{19,39}",
                Just("1e3".to_owned()), Just("\"12\"".to_owned()), Just("true".to_owned()),
            ]
        ) {
            let body = format!("{{\"name\":\"x\",\"size\":{n}}}");
            let e = parse_json_object::<Body>(body.as_bytes()).unwrap_err();
            prop_assert_eq!(e.code, "invalid_input");
            prop_assert!(e.detail.starts_with("size: "), "{}", e.detail);
        }

        #[test]
        fn any_content_type_is_json_or_415(ct in prop_oneof![
            hostile_string(40),
            "[aA]pplication/[jJ][sS][oO][nN]( ?; ?[a-z]{1,8}=[a-zA-Z0-9\"-]{0,8})?",
        ]) {
            if let Err(e) = check_json_content_type(Some(&ct)) {
                prop_assert_eq!((e.status.as_u16(), e.code.as_str()), (415, "unsupported_media_type"));
            } else {
                prop_assert!(ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
            }
        }
    }
}

/// Properties of path parameters through the router and [`Path`]: percent-decoded exactly
/// once, whatever they hold; any path is a route or a 404, never a panic.
#[cfg(test)]
mod path_props {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::*;
    use crate::test_support::hostile_string;

    async fn echo(Path(p): Path<BTreeMap<String, String>>) -> String {
        serde_json::to_string(&p).unwrap()
    }

    fn get(path: &str) -> Option<(u16, BTreeMap<String, String>)> {
        let router = axum::Router::new()
            .route("/x/{a}/y/{b}", axum::routing::get(echo))
            .fallback(super::super::middleware::no_route);
        let request = http::Request::get(path)
            .body(axum::body::Body::empty())
            .ok()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            Some((status, serde_json::from_slice(&bytes).unwrap_or_default()))
        })
    }

    fn enc(s: &str) -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encoded_parameters_decode_to_what_was_encoded(a in hostile_string(30), b in hostile_string(30)) {
            prop_assume!(!a.is_empty() && !b.is_empty());
            let (status, params) = get(&format!("/x/{}/y/{}", enc(&a), enc(&b))).unwrap();
            prop_assert_eq!(status, 200);
            prop_assert_eq!(params.get("a"), Some(&a));
            prop_assert_eq!(params.get("b"), Some(&b));
            // Decoded once: an encoded `%` stays a `%` followed by what came after it.
            let (_, params) = get(&format!("/x/{}/y/z", enc(&enc(&a)))).unwrap();
            prop_assert_eq!(params.get("a"), Some(&enc(&a)));
        }

        #[test]
        fn any_path_is_a_route_or_a_problem(path in prop_oneof![
            "(/[a-z0-9%.]{0,12}){0,8}",
            proptest::collection::vec(prop_oneof![Just("%".to_owned()), Just("%FF".to_owned()),
                Just("%2e%2e".to_owned()), Just("%2F".to_owned()), Just("..".to_owned()),
                "[a-z]{1,4}".prop_map(String::from)], 0..10)
                .prop_map(|s| format!("/x/{}", s.join("/"))),
        ]) {
            if let Some((status, _)) = get(&path) {
                prop_assert!(status == 200 || status == 404, "{path}: {status}");
            }
        }
    }
}
