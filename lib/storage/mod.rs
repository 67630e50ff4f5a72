//! Object storage behind one interface. The Hub only presigns and inspects: artifact bytes
//! go straight between clients and storage.

pub mod s3;

use std::time::Duration;

use base64::Engine;
use time::OffsetDateTime;

use crate::config::StorageConfig;
use crate::http::ApiError;

/// A presigned upload the client performs itself.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
    /// Always `PUT`.
    pub method: &'static str,
    /// Where to send the bytes.
    pub url: String,
    /// Headers the client must send exactly (they are part of the signature).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
}

/// What storage says about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bytes stored.
    pub size: u64,
    /// The stored sha256 checksum, base64 (as S3 reports it), when storage keeps one.
    pub sha256_base64: Option<String>,
}

/// Everything the Hub needs to know about an upload to presign it.
#[derive(Debug, Clone)]
pub struct UploadSpec<'a> {
    /// Object key, derived by the Hub.
    pub key: &'a str,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the content.
    pub sha256_hex: &'a str,
    /// MIME type the client will send.
    pub content_type: &'a str,
}

/// The configured provider.
pub enum Storage {
    /// Any S3-compatible API.
    S3(s3::S3Storage),
}

/// Storage failures the handlers map to problems.
#[derive(Debug)]
pub enum StorageError {
    /// Storage could not be reached or refused the Hub's credentials.
    Unavailable(String),
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => ApiError::storage_unavailable(cause),
        }
    }
}

impl Storage {
    /// Builds the provider; no network I/O happens here.
    pub fn new(config: &StorageConfig) -> Self {
        match config {
            StorageConfig::S3(c) => Storage::S3(s3::S3Storage::new(c)),
        }
    }

    /// A presigned PUT that storage itself checks: length, sha256, no overwrite.
    pub async fn presign_upload(
        &self,
        spec: &UploadSpec<'_>,
        ttl: Duration,
    ) -> Result<PresignedUpload, StorageError> {
        match self {
            Storage::S3(s) => s.presign_upload(spec, ttl).await,
        }
    }

    /// A presigned GET that downloads as `filename`.
    pub async fn presign_download(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        match self {
            Storage::S3(s) => s.presign_download(key, filename, ttl).await,
        }
    }

    /// What is stored under `key`, or `None`.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self {
            Storage::S3(s) => s.head(key).await,
        }
    }

    /// Whether storage answers with the configured credentials (deep health check).
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Storage::S3(s) => s.check().await,
        }
    }
}

/// Base64 (standard, padded) of the bytes a lower-case hex sha256 names.
pub fn sha256_hex_to_base64(hex_digest: &str) -> Option<String> {
    let bytes = hex::decode(hex_digest).ok().filter(|b| b.len() == 32)?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `attachment; filename="…"` with the name made header-safe.
pub fn content_disposition(filename: &str) -> String {
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("attachment; filename=\"{safe}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_sha256_converts_to_the_base64_s3_expects() {
        // sha256("") in both encodings.
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            sha256_hex_to_base64(hex).unwrap(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(sha256_hex_to_base64("abcd").is_none());
    }
}
