//! Extractors: a request parsed into domain types, or the problem that says why not.
//!
//! - [`Path`], [`Query`]: parameters deserialized into domain types (which parse
//!   themselves); a value that does not parse is 400 `invalid_input` naming the parameter, an
//!   unknown or repeated query parameter is refused, never ignored, and an empty query value
//!   counts as absent.
//! - [`Json`], [`NoBody`]: the body as one JSON object (415, 413, 400 `invalid_json` or
//!   `invalid_input` naming the field), or no body at all.
//! - [`Caller`], [`Admin`], [`PackCaller`], [`CiCaller`]: the credentials, verified before
//!   anything else of the request is read (list them first among a handler's arguments).
//! - [`Meta`], [`Client`]: the request's id, log facts and background runner; the client's
//!   address.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::{ApiError, Background, ClientIp, MAX_BODY_BYTES, RequestMeta, quoted};
use crate::domain::limits::AuthGuard;
pub use crate::domain::packs::PackCredential;
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
        // A segment that does not decode (not UTF-8) names no route, as no route matched.
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
        let mut seen: Vec<String> = Vec::new();
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|s| *s == name) {
                return Err(ApiError::invalid(format!(
                    "query parameter {} is given twice; give it once",
                    quoted(&name)
                )));
            }
            // An empty value counts as absent (`?channel=` is the default channel).
            if !value.is_empty() {
                form.append_pair(&name, &value);
            }
            seen.push(name.into_owned());
        }
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
        let (parts, body) = req.into_parts();
        let bytes = read_body(body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(NoBody);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Json::<Nothing>::from_request(req, state)
            .await
            .map(|_| NoBody)
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
                route: Default::default(),
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

/// A deploy token's holder (`Authorization: Bearer <token>`): valid, not revoked, not
/// expired, from an address not blocked for failed authentications; 401 otherwise.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let conn = state.db.conn().await?;
        let principal = tokens::authenticate_bearer(
            &conn,
            &state.config,
            header_str(&parts.headers, "authorization"),
            client_ip(parts),
        )
        .await?;
        meta(parts).set_token_id(principal.token_id.to_string());
        Ok(Caller(principal))
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
            tokens::authenticate_token(&conn, &state.config, token, ip).await?
        } else if headers.contains_key("authorization") {
            tokens::authenticate_bearer(
                &conn,
                &state.config,
                header_str(headers, "authorization"),
                ip,
            )
            .await?
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
        meta.set_token_id(principal.token_id.to_string());
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
