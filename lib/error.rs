//! The one error type: an RFC 9457 problem with a stable machine [`Code`]. Every layer
//! returns it; library errors are mapped here, centrally (a pool error is a 503, a statement
//! the Hub got wrong an opaque 500 whose cause goes to the log only).

use std::fmt;

use http::StatusCode;

/// How a problem detail quotes what the client sent: debug-escaped (controls and bidi
/// characters shown as escapes, never interpreted) and cut after 80 characters, so a
/// megabyte of input never comes back in the answer.
pub fn quoted(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(80).collect();
    if chars.next().is_some() {
        format!("{head:?}… ({} bytes)", value.len())
    } else {
        format!("{head:?}")
    }
}

/// Declares [`Code`] with the spelling each variant has on the wire.
macro_rules! codes {
    ($($variant:ident => $text:literal,)*) => {
        /// The stable, machine-readable `code` of a problem: what launchers, runners and CI
        /// scripts branch on. The spelling is the public contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &[Code] = &[$(Code::$variant),*];

            /// The code as it is sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    // Requests the Hub cannot read.
    InvalidInput => "invalid_input",
    InvalidJson => "invalid_json",
    InvalidBody => "invalid_body",
    UnsupportedMediaType => "unsupported_media_type",
    PayloadTooLarge => "payload_too_large",
    MethodNotAllowed => "method_not_allowed",
    NotFound => "not_found",
    // Credentials and permissions.
    TokenMissing => "token_missing",
    TokenInvalid => "token_invalid",
    TokenRevoked => "token_revoked",
    TokenExpired => "token_expired",
    ScopeDenied => "scope_denied",
    OidcInvalid => "oidc_invalid",
    OidcClaimsMismatch => "oidc_claims_mismatch",
    RateLimited => "rate_limited",
    // Operators in a browser.
    SigninFailed => "signin_failed",
    SessionInvalid => "session_invalid",
    CsrfFailed => "csrf_failed",
    // Publishing, channels, immutability.
    VersionExists => "version_exists",
    BuildExists => "build_exists",
    ProductExists => "product_exists",
    PackExists => "pack_exists",
    PackOidcOnly => "pack_oidc_only",
    ChannelMoved => "channel_moved",
    ChannelPointsHere => "channel_points_here",
    ReleaseYanked => "release_yanked",
    PlatformsMissing => "platforms_missing",
    PrimaryRequired => "primary_required",
    PrimaryConflict => "primary_conflict",
    UploadUnknown => "upload_unknown",
    UploadConflict => "upload_conflict",
    ArtifactMismatch => "artifact_mismatch",
    ArtifactTooLarge => "artifact_too_large",
    ObjectMissing => "object_missing",
    ObjectMismatch => "object_mismatch",
    StorageKeyTooLong => "storage_key_too_long",
    StorageKeyInvalid => "storage_key_invalid",
    InvalidSignature => "invalid_signature",
    InvalidPublicKey => "invalid_public_key",
    SignatureKeyMismatch => "signature_key_mismatch",
    SignatureVersionMismatch => "signature_version_mismatch",
    // The Hub's own dependencies.
    SchemaBehind => "schema_behind",
    DbUnavailable => "db_unavailable",
    StorageUnavailable => "storage_unavailable",
    OidcUnavailable => "oidc_unavailable",
    ProviderUnavailable => "provider_unavailable",
    Internal => "internal",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An error answered as `application/problem+json` with a stable machine `code`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: Code,
    /// Human-readable explanation for this occurrence.
    pub detail: String,
    /// Extra members merged into the body (e.g. `missing` platforms).
    pub extra: Option<serde_json::Value>,
    /// `Retry-After` seconds for 429 answers.
    pub retry_after: Option<u64>,
    /// The cause, logged and never sent to the client (5xx only).
    pub cause: Option<String>,
}

impl ApiError {
    /// An error with a status, code and detail.
    pub fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: None,
            retry_after: None,
            cause: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: Code, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, detail)
    }

    /// 409 with a code.
    pub fn conflict(code: Code, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 422 with a code.
    pub fn unprocessable(code: Code, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 400 `invalid_input`, for a field that fails validation.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::bad_request(Code::InvalidInput, detail)
    }

    /// An opaque 500; `cause` goes to the log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "the Hub failed to handle this request; it has been logged",
        );
        e.cause = Some(cause.to_string());
        e
    }

    /// 503 `db_unavailable`; `cause` goes to the log only.
    pub fn db_unavailable(cause: impl fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::DbUnavailable,
            "the database is unreachable; retry later",
        );
        e.cause = Some(cause.to_string());
        e
    }

    /// 503 `storage_unavailable`; `cause` goes to the log only.
    pub fn storage_unavailable(cause: impl fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::StorageUnavailable,
            "object storage is unreachable or refused the Hub's credentials; retry later",
        );
        e.cause = Some(cause.to_string());
        e
    }

    /// 405 `method_not_allowed` (the router adds the `Allow` header naming the methods the
    /// route answers).
    pub fn method_not_allowed(method: &http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::MethodNotAllowed,
            format!("this route does not answer {method}; its Allow header lists what it does"),
        )
    }

    /// Keeps `cause` for the log (never sent to the client).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// Adds members to the problem body.
    pub fn with_extra(mut self, extra: serde_json::Value) -> Self {
        self.extra = Some(extra);
        self
    }

    /// The RFC 9457 title for the status.
    pub fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    /// The problem+json body for a request id.
    pub fn problem<'a>(&'a self, request_id: &'a str) -> Problem<'a> {
        Problem {
            kind: "about:blank",
            title: self.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            request_id,
            extra: self.extra.as_ref().filter(|e| e.is_object()),
        }
    }
}

/// An RFC 9457 problem; some codes add members (e.g. `missing`, `channels`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem<'a> {
    /// Always `about:blank` (RFC 9457 §4.2.1): the Hub serves no page describing a problem
    /// and must not point at a domain it does not own; `code` says which problem it is, and
    /// `title` is the status's phrase.
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    /// Stable machine code (`token_invalid`, `version_exists`, …).
    code: &'static str,
    request_id: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    extra: Option<&'a serde_json::Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Text PostgreSQL cannot store (NUL) only ever comes from the client: the handlers
        // refuse it field by field, and this keeps any field they miss a 400, not a 500.
        if e.code() == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE) {
            let mut err = ApiError::invalid(
                "a text value contains a character that cannot be stored (NUL); remove it",
            );
            err.cause = Some(format!("database: {e:?}"));
            return err;
        }
        // The invariants the database holds itself (migrations/0003_invariants.sql): a
        // write that lost a race against another is refused there, with the same answer the
        // handler gives when it sees the conflict first.
        if let Some(db) = e.as_db_error() {
            let invariant = match db.code().code() {
                "AH001" => Some(Code::ReleaseYanked),
                "AH002" => Some(Code::ChannelPointsHere),
                _ => None,
            };
            if let Some(code) = invariant {
                let mut err = ApiError::conflict(code, db.message().to_owned());
                if let Some(channels) = db.detail() {
                    err = err.with_extra(serde_json::json!({
                        "channels": channels.split(", ").collect::<Vec<_>>()
                    }));
                }
                return err;
            }
        }
        if database_unreachable(&e) {
            ApiError::db_unavailable(format!("{e}: {e:?}"))
        } else {
            ApiError::internal(format!("database: {e:?}"))
        }
    }
}

/// Whether `e` says the database (or the pooler in front of it) cannot serve right now, as
/// opposed to a statement the Hub got wrong: the connection broke or never opened, or the
/// server refused for a reason that passes (shutting down, starting up, out of connections).
fn database_unreachable(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // 08: connection exceptions (PgBouncer reports its own failures so); 53: insufficient
        // resources (too many connections); 57P01–57P03: admin/crash shutdown, cannot connect now.
        return code.starts_with("08") || code.starts_with("53") || code.starts_with("57P");
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    // The other kinds (serializing, columns, row counts, parse errors) are bugs: 500.
    io || e.is_closed()
        || matches!(
            e.to_string().as_str(),
            "error connecting to server"
                | "timeout waiting for server"
                | "error performing TLS handshake"
                | "error communicating with the server"
                | "unexpected message from server"
        )
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::db_unavailable(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_has_every_rfc9457_member_and_the_code() {
        let body = ApiError::conflict(Code::VersionExists, "1.0.0 exists")
            .with_extra(serde_json::json!({"existing": "1.0.0"}));
        let body = serde_json::to_value(body.problem("req-1")).unwrap();
        for member in ["type", "title", "status", "detail", "code", "requestId"] {
            assert!(body.get(member).is_some(), "missing {member}: {body}");
        }
        assert_eq!(body["code"], "version_exists");
        assert_eq!(body["existing"], "1.0.0");
        assert_eq!(body["status"], 409);
        assert_eq!(body["type"], "about:blank");
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let error = ApiError::internal("password=hunter2 at db.internal:5432");
        let text = serde_json::to_string(&error.problem("r")).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("db.internal"),
            "{text}"
        );
    }

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
        }
    }
}

/// Properties of quoting client input in problem details.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::hostile_string;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn quoted_input_is_bounded_and_shows_no_control_or_bidi_character(s in hostile_string(300)) {
            let q = quoted(&s);
            // 80 characters, each at most a 10-character escape, plus the size note.
            prop_assert!(q.chars().count() <= 80 * 10 + 40, "{}", q.len());
            prop_assert!(!q.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)), "{q}");
            if s.chars().count() <= 80 {
                prop_assert_eq!(q, format!("{s:?}"));
            }
        }
    }
}
