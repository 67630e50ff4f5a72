//! Vercel Blob: uploads go straight to the Blob API with a client token the Hub signs per
//! artifact (one pathname, a few minutes, exact content type, maximum size, no overwrite);
//! publish inspects objects through the API's metadata lookup; downloads redirect to the
//! public blob URL.
//!
//! Formats follow the official `@vercel/blob` package (2.x): a read-write token is
//! `vercel_blob_rw_{storeId}_{secret}`; a client token is
//! `vercel_blob_client_{storeId}_{base64(hex(hmac_sha256(payload, readWriteToken)) + "." + payload)}`
//! where `payload` is the base64 of the JSON constraints. An upload is
//! `PUT {api}?pathname=…`, the metadata lookup `GET {api}?url=…`, a listing `GET {api}?limit=…`.
//! (The JS SDK writes `{api}/?pathname=`, Vercel's Python SDK `{api}?pathname=`; the Hub uses
//! the latter because `curl -T file URL/` appends the file name to a URL ending in `/`.)
//!
//! What Blob cannot do, compared with S3: its metadata carries no sha256, so publish verifies
//! size and pathname only; public blob URLs do not expire, so download redirects are not
//! short-lived.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use http::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{ObjectInfo, PresignedUpload, StorageError, UploadSpec};
use crate::config::{BlobConfig, Secret};
use crate::error::Code;

pub use crate::config::blob::{
    CLIENT_TOKEN_PREFIX, DEFAULT_API_URL, READ_WRITE_TOKEN_PREFIX, default_public_url, is_store_id,
    store_id_of_read_write_token,
};

/// The `x-api-version` the official SDK 2.x sends.
pub const API_VERSION: &str = "12";
/// The longest pathname the Blob API accepts (the SDK's `MAXIMUM_PATHNAME_LENGTH`).
pub const MAX_PATHNAME_LEN: usize = 950;

/// The constraints a client token carries, in the field order the official SDK writes them
/// when given in this order (the signature covers the exact bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTokenPayload {
    /// The one pathname this token may write.
    pub pathname: String,
    /// Largest body accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_size_in_bytes: Option<u64>,
    /// Content types accepted (`type/*` wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_content_types: Option<Vec<String>>,
    /// Whether the store may append a random suffix to the pathname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_random_suffix: Option<bool>,
    /// Whether an existing blob may be replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_overwrite: Option<bool>,
    /// Expiry, milliseconds since the Unix epoch.
    pub valid_until: i64,
}

impl ClientTokenPayload {
    /// Whether the token has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.valid_until
    }

    /// Whether `content_type` is among the allowed ones (all when unrestricted).
    pub fn allows_content_type(&self, content_type: &str) -> bool {
        let Some(allowed) = &self.allowed_content_types else {
            return true;
        };
        let bare = content_type.split(';').next().unwrap_or("").trim();
        allowed.iter().any(|a| match a.strip_suffix("/*") {
            Some(major) => bare
                .split_once('/')
                .is_some_and(|(m, _)| m.eq_ignore_ascii_case(major)),
            None => a.eq_ignore_ascii_case(bare),
        })
    }
}

/// Why a client token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTokenError {
    /// Not a client token, or its parts do not decode.
    Malformed(&'static str),
    /// Issued for another store.
    OtherStore(String),
    /// The HMAC does not match this store's read-write token.
    BadSignature,
}

impl std::fmt::Display for ClientTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed client token: {why}"),
            Self::OtherStore(id) => write!(f, "client token for another store ({id})"),
            Self::BadSignature => f.write_str("client token signature does not match"),
        }
    }
}

fn hmac_hex(key: &str, message: &str) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A client token for `payload`, signed with the store's read-write token, byte for byte
/// what `generateClientTokenFromReadWriteToken` returns for the same fields.
pub fn client_token(
    read_write_token: &str,
    store_id: &str,
    payload: &ClientTokenPayload,
) -> String {
    let json = serde_json::to_string(payload).expect("the payload serialises");
    let encoded_payload = STANDARD.encode(json);
    let signature = hmac_hex(read_write_token, &encoded_payload);
    format!(
        "{CLIENT_TOKEN_PREFIX}{store_id}_{}",
        STANDARD.encode(format!("{signature}.{encoded_payload}"))
    )
}

/// Checks a client token's store and HMAC against the store's read-write token and returns
/// its constraints. Expiry and the constraints themselves are the caller's to enforce.
pub fn verify_client_token(
    token: &str,
    read_write_token: &str,
) -> Result<ClientTokenPayload, ClientTokenError> {
    let store_id = store_id_of_read_write_token(read_write_token)
        .map_err(|_| ClientTokenError::Malformed("the read-write token is malformed"))?;
    let rest = token
        .strip_prefix(CLIENT_TOKEN_PREFIX)
        .ok_or(ClientTokenError::Malformed("no vercel_blob_client_ prefix"))?;
    let (token_store, encoded) = rest
        .split_once('_')
        .ok_or(ClientTokenError::Malformed("no store id"))?;
    if token_store != store_id {
        return Err(ClientTokenError::OtherStore(token_store.to_owned()));
    }
    let inner = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ClientTokenError::Malformed("the token body is not base64"))?;
    let (signature_hex, encoded_payload) = inner
        .split_once('.')
        .ok_or(ClientTokenError::Malformed("no signature"))?;
    let signature = hex::decode(signature_hex)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or(ClientTokenError::Malformed(
            "the signature is not 64 hex digits",
        ))?;
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(read_write_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(encoded_payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| ClientTokenError::BadSignature)?;
    let json = STANDARD
        .decode(encoded_payload)
        .map_err(|_| ClientTokenError::Malformed("the payload is not base64"))?;
    serde_json::from_slice(&json)
        .map_err(|_| ClientTokenError::Malformed("the payload is not the expected JSON"))
}

/// Characters left as they are in a URL path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `pathname` as a URL path, each segment percent-encoded.
pub fn encode_pathname(pathname: &str) -> String {
    pathname
        .split('/')
        .map(|s| utf8_percent_encode(s, PATH_SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The Blob API's error body: `{"error": {"code", "message"}}`.
#[derive(Deserialize, Default)]
struct ApiErrorBody {
    #[serde(default)]
    error: ApiErrorDetail,
}

#[derive(Deserialize, Default)]
struct ApiErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// What the metadata lookup answers (fields the Hub uses).
#[derive(Deserialize)]
struct BlobMetadata {
    pathname: String,
    size: u64,
}

/// A Vercel Blob store reached with its read-write token.
pub struct BlobStorage {
    read_write_token: Secret,
    store_id: String,
    api_url: String,
    public_url: String,
    http: OnceLock<reqwest::Client>,
}

impl BlobStorage {
    /// Builds the provider from validated settings; no network I/O.
    pub fn new(c: &BlobConfig) -> Self {
        Self {
            read_write_token: c.read_write_token.clone(),
            store_id: c.store_id.clone(),
            api_url: c.api_url.trim_end_matches('/').to_owned(),
            public_url: c.public_url.trim_end_matches('/').to_owned(),
            http: OnceLock::new(),
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
    }

    /// Refuses keys the Blob API would refuse, before anything is recorded.
    pub fn check_key(&self, key: &str) -> Result<(), StorageError> {
        if key.len() > MAX_PATHNAME_LEN {
            return Err(StorageError::Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: Code::StorageKeyTooLong,
                detail: format!(
                    "the storage key would be {} characters; Vercel Blob accepts at most {MAX_PATHNAME_LEN} \
                     (shorten the version, kind or filename)",
                    key.len()
                ),
            });
        }
        if key.contains("//") {
            return Err(StorageError::Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: Code::StorageKeyInvalid,
                detail: "Vercel Blob refuses pathnames containing \"//\"".into(),
            });
        }
        Ok(())
    }

    /// A PUT to the Blob API with a client token bound to this pathname, content type and
    /// size, refusing overwrites and random suffixes, valid for `ttl`.
    pub async fn presign_upload(
        &self,
        spec: &UploadSpec<'_>,
        ttl: Duration,
    ) -> Result<PresignedUpload, StorageError> {
        self.check_key(spec.key)?;
        let expires_at = OffsetDateTime::now_utc() + ttl;
        let valid_until = (expires_at.unix_timestamp_nanos() / 1_000_000) as i64;
        let payload = ClientTokenPayload {
            pathname: spec.key.to_owned(),
            maximum_size_in_bytes: Some(spec.size),
            allowed_content_types: Some(vec![spec.content_type.to_owned()]),
            add_random_suffix: Some(false),
            allow_overwrite: Some(false),
            valid_until,
        };
        let token = client_token(self.read_write_token.expose(), &self.store_id, &payload);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("pathname", spec.key)
            .finish();
        let headers = [
            ("authorization", format!("Bearer {token}")),
            ("x-api-version", API_VERSION.to_owned()),
            ("x-vercel-blob-access", "public".to_owned()),
            ("x-content-type", spec.content_type.to_owned()),
            ("x-add-random-suffix", "0".to_owned()),
            ("x-allow-overwrite", "0".to_owned()),
            ("x-content-length", spec.size.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(PresignedUpload {
            method: "PUT",
            url: format!("{}?{query}", self.api_url),
            headers,
            expires_at,
        })
    }

    /// The public blob URL with `download=1` (the store answers `Content-Disposition:
    /// attachment` with the pathname's last segment, which is the filename for Hub keys).
    /// Public blob URLs do not expire: `ttl` cannot be honoured.
    pub async fn presign_download(
        &self,
        key: &str,
        _filename: &str,
        _ttl: Duration,
    ) -> Result<String, StorageError> {
        Ok(format!(
            "{}/{}?download=1",
            self.public_url,
            encode_pathname(key)
        ))
    }

    async fn get_api(&self, query: &str) -> Result<(StatusCode, bytes::Bytes), StorageError> {
        let response = self
            .http()
            .get(format!("{}?{query}", self.api_url))
            .bearer_auth(self.read_write_token.expose())
            .header("x-api-version", API_VERSION)
            .header("x-vercel-blob-store-id", &self.store_id)
            .send()
            .await
            .map_err(|e| StorageError::Unavailable(format!("Blob API request failed: {e}")))?;
        let status = StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = response
            .bytes()
            .await
            .map_err(|e| StorageError::Unavailable(format!("Blob API answer cut off: {e}")))?;
        Ok((status, body))
    }

    fn api_failure(status: StatusCode, body: &[u8]) -> StorageError {
        let e = serde_json::from_slice::<ApiErrorBody>(body)
            .unwrap_or_default()
            .error;
        StorageError::Unavailable(format!(
            "Blob API answered {status} {}: {}",
            if e.code.is_empty() {
                "(no code)"
            } else {
                &e.code
            },
            e.message
        ))
    }

    /// The metadata lookup. Blob reports size and pathname, never a sha256.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("url", key)
            .finish();
        let (status, body) = self.get_api(&query).await?;
        if status == StatusCode::NOT_FOUND {
            let code = serde_json::from_slice::<ApiErrorBody>(&body)
                .unwrap_or_default()
                .error
                .code;
            // `store_not_found` and the like are configuration problems, not a missing object.
            if code.is_empty() || code == "not_found" {
                return Ok(None);
            }
        }
        if !status.is_success() {
            return Err(Self::api_failure(status, &body));
        }
        let meta: BlobMetadata = serde_json::from_slice(&body).map_err(|e| {
            StorageError::Unavailable(format!("Blob metadata answer is not understood: {e}"))
        })?;
        Ok(Some(ObjectInfo {
            size: meta.size,
            sha256_base64: None,
            reports_sha256: false,
            pathname: Some(meta.pathname),
        }))
    }

    /// Lists one blob: the token is accepted and the store exists.
    pub async fn check(&self) -> Result<(), StorageError> {
        let (status, body) = self.get_api("limit=1").await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::api_failure(status, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: &str = "vercel_blob_rw_AtlasKat0000Store_secretSecretSecret0123456789";

    fn kat_payload() -> ClientTokenPayload {
        ClientTokenPayload {
            pathname: "releases/launcher/1.2.3/linux-x86_64/appimage/Atlas-1.2.3.AppImage".into(),
            maximum_size_in_bytes: Some(123_456),
            allowed_content_types: Some(vec!["application/octet-stream".into()]),
            add_random_suffix: Some(false),
            allow_overwrite: Some(false),
            valid_until: 1_767_225_600_000,
        }
    }

    /// `generateClientTokenFromReadWriteToken` from @vercel/blob 2.8.0 with RW and the fields
    /// of `kat_payload`, in that order.
    const KAT_TOKEN: &str = "vercel_blob_client_AtlasKat0000Store_MjU2MGMyNTFjNjQwMjM1NzM5MWJlZDkyYWE0Y2M3YzlhYWNkOTNmMzk3YWUwMmVmY2Q5YWNlMDU2NjQ1MmNiNi5leUp3WVhSb2JtRnRaU0k2SW5KbGJHVmhjMlZ6TDJ4aGRXNWphR1Z5THpFdU1pNHpMMnhwYm5WNExYZzRObDgyTkM5aGNIQnBiV0ZuWlM5QmRHeGhjeTB4TGpJdU15NUJjSEJKYldGblpTSXNJbTFoZUdsdGRXMVRhWHBsU1c1Q2VYUmxjeUk2TVRJek5EVTJMQ0poYkd4dmQyVmtRMjl1ZEdWdWRGUjVjR1Z6SWpwYkltRndjR3hwWTJGMGFXOXVMMjlqZEdWMExYTjBjbVZoYlNKZExDSmhaR1JTWVc1a2IyMVRkV1ptYVhnaU9tWmhiSE5sTENKaGJHeHZkMDkyWlhKM2NtbDBaU0k2Wm1Gc2MyVXNJblpoYkdsa1ZXNTBhV3dpT2pFM05qY3lNalUyTURBd01EQjk=";

    #[test]
    fn keys_blob_would_refuse_are_refused_first() {
        let blob = BlobStorage {
            read_write_token: Secret::new(RW.to_owned()),
            store_id: "AtlasKat0000Store".into(),
            api_url: "http://127.0.0.1:9".into(),
            public_url: "http://127.0.0.1:9".into(),
            http: OnceLock::new(),
        };
        let code = |key: &str| match blob.check_key(key) {
            Ok(()) => "ok",
            Err(StorageError::Refused { code, .. }) => code.as_str(),
            Err(StorageError::Unavailable(_)) => "unavailable",
        };
        assert_eq!(code(&"k".repeat(MAX_PATHNAME_LEN)), "ok");
        assert_eq!(
            code(&"k".repeat(MAX_PATHNAME_LEN + 1)),
            "storage_key_too_long"
        );
        assert_eq!(code("releases//x"), "storage_key_invalid");
    }

    #[test]
    fn client_tokens_match_the_official_package_byte_for_byte() {
        assert_eq!(
            client_token(RW, "AtlasKat0000Store", &kat_payload()),
            KAT_TOKEN
        );
        assert_eq!(verify_client_token(KAT_TOKEN, RW).unwrap(), kat_payload());
    }

    #[test]
    fn a_changed_payload_key_or_store_is_refused() {
        let token = client_token(RW, "AtlasKat0000Store", &kat_payload());
        // Another payload under the same signature.
        let inner =
            String::from_utf8(STANDARD.decode(token.rsplit('_').next().unwrap()).unwrap()).unwrap();
        let (sig, _) = inner.split_once('.').unwrap();
        let mut wider = kat_payload();
        wider.allow_overwrite = Some(true);
        let forged_payload = STANDARD.encode(serde_json::to_string(&wider).unwrap());
        let forged = format!(
            "{CLIENT_TOKEN_PREFIX}AtlasKat0000Store_{}",
            STANDARD.encode(format!("{sig}.{forged_payload}"))
        );
        assert_eq!(
            verify_client_token(&forged, RW),
            Err(ClientTokenError::BadSignature)
        );
        // Signed with another store's secret.
        let other = "vercel_blob_rw_AtlasKat0000Store_anotherSecret";
        assert_eq!(
            verify_client_token(
                &client_token(other, "AtlasKat0000Store", &kat_payload()),
                RW
            ),
            Err(ClientTokenError::BadSignature)
        );
        // Issued for another store.
        assert_eq!(
            verify_client_token(&client_token(RW, "OtherStore", &kat_payload()), RW),
            Err(ClientTokenError::OtherStore("OtherStore".into()))
        );
        for bad in [
            "",
            "vercel_blob_client_AtlasKat0000Store",
            "vercel_blob_client_AtlasKat0000Store_!!!",
            "vercel_blob_rw_AtlasKat0000Store_secret",
        ] {
            assert!(
                matches!(
                    verify_client_token(bad, RW),
                    Err(ClientTokenError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn read_write_tokens_name_their_store() {
        assert_eq!(store_id_of_read_write_token(RW), Ok("AtlasKat0000Store"));
        for bad in [
            "",
            "vercel_blob_rw_",
            "vercel_blob_rw_SeCrEt",
            "vercel_blob_rw__SeCrEt",
            "vercel_blob_rw_st-ore_SeCrEt",
            "vercel_blob_rw_store_",
            "vercel_blob_rw_store_Se Cr Et",
            "vercel_blob_client_store_SeCrEt",
            "blob_rw_store_SeCrEt",
        ] {
            let err = store_id_of_read_write_token(bad).unwrap_err();
            // The message never echoes the token.
            assert!(!err.contains("SeCrEt") && !err.contains("Se Cr"), "{err}");
        }
    }

    #[test]
    fn content_types_and_expiry_are_checked_as_the_payload_says() {
        let p = kat_payload();
        assert!(p.allows_content_type("application/octet-stream"));
        assert!(!p.allows_content_type("text/html"));
        let mut any_image = kat_payload();
        any_image.allowed_content_types = Some(vec!["image/*".into()]);
        assert!(any_image.allows_content_type("image/png"));
        assert!(!any_image.allows_content_type("text/plain"));
        assert!(!p.is_expired(p.valid_until - 1));
        assert!(p.is_expired(p.valid_until));
    }

    #[test]
    fn pathnames_are_encoded_per_segment() {
        assert_eq!(
            encode_pathname("releases/cli/1.0.0+build.5/linux-x86_64/tar.gz/cli 1.tar.gz"),
            "releases/cli/1.0.0%2Bbuild.5/linux-x86_64/tar.gz/cli%201.tar.gz"
        );
    }
}
