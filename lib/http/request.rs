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

    /// The body parsed as JSON, or a problem naming what is wrong with it: 415
    /// `unsupported_media_type` unless it is sent as `application/json`, 400 `invalid_json`
    /// when it is not a JSON object, 400 `invalid_input` naming the field whose value does
    /// not fit (unknown fields included: they are refused, never ignored).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the request body is empty; send a JSON object (content-type: application/json)",
            ));
        }
        check_json_content_type(self.header("content-type"))?;
        parse_json_object(&self.body)
    }

    /// Refuses a body on a route that takes none (`{}` is accepted, as some clients always
    /// send one), so a field the client expected to matter is never silently ignored.
    pub fn no_body(&self) -> Result<(), ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Nothing {}
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.json::<Nothing>().map(|_| ())
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.meta.request_id
    }
}

/// 415 unless `content_type` is `application/json` (any case), optionally with
/// `charset=utf-8`: the Hub reads JSON bodies only, and only as UTF-8.
pub fn check_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let refused = |what: String| {
        ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
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
            super::quoted(essence)
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
                super::quoted(parameter.trim())
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
            "invalid_json",
            "the request body must be a JSON object ({…})",
        ));
    }
    // Syntax first, over the whole body (UTF-8, escapes, nesting, trailing data), so a
    // malformed body is `invalid_json` wherever the error sits, not whichever field error
    // comes first. Then the fields, straight from the bytes: only that pass sees duplicate
    // keys, which a parsed `Value` would silently collapse to the last one.
    serde_json::from_slice::<serde_json::Value>(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
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
        assert_eq!((e.code, e.status.as_u16()), ("invalid_input", 400));
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
                (e.status.as_u16(), e.code),
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
                prop_assert_eq!((e.status.as_u16(), e.code), (415, "unsupported_media_type"));
            } else {
                prop_assert!(ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
            }
        }
    }
}
