//! Object storage behind one interface. The Hub only presigns and inspects: artifact bytes
//! go straight between clients and storage.

pub mod blob;
pub mod s3;
pub mod sigv4;

use std::time::Duration;

use base64::Engine;
use http::StatusCode;
use time::OffsetDateTime;

use crate::config::StorageConfig;
use crate::error::{ApiError, Code};

/// A presigned upload the client performs itself.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
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
    pub size: u64,
    /// The stored sha256 checksum, base64 (as S3 reports it), when storage keeps one.
    pub sha256_base64: Option<String>,
    /// Whether this provider reports sha256 checksums at all. `false` (Vercel Blob, whose
    /// metadata has none) means a missing `sha256_base64` says nothing about the content:
    /// only size and pathname can be verified.
    pub reports_sha256: bool,
    /// The pathname the provider's metadata names, when it reports one (Vercel Blob). S3's
    /// HEAD answers for the key asked and does not echo it.
    pub pathname: Option<String>,
}

/// What a successful [`ObjectInfo::verify`] compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Size and the stored sha256 (S3).
    SizeAndSha256,
    /// Size and pathname; the provider reports no sha256 (Vercel Blob).
    SizeAndPathname,
}

impl ObjectInfo {
    /// Compares the stored object with what was declared for `key`. A provider that reports
    /// sha256 checksums must hold the declared one; one that cannot is held to size and
    /// pathname. On a difference, says how it differs ("is …, not …").
    pub fn verify(&self, key: &str, size: u64, sha256_hex: &str) -> Result<Verified, String> {
        if let Some(p) = &self.pathname
            && p != key
        {
            return Err(format!("is stored under pathname {p}, not {key}"));
        }
        if !self.reports_sha256 {
            return if self.size == size {
                Ok(Verified::SizeAndPathname)
            } else {
                Err(format!(
                    "is {} bytes, not the declared {size} bytes (this storage reports no sha256)",
                    self.size
                ))
            };
        }
        if self.size == size && self.sha256_base64 == sha256_hex_to_base64(sha256_hex) {
            Ok(Verified::SizeAndSha256)
        } else {
            Err(format!(
                "is {} bytes with sha256 {}, not the declared {size} bytes / {sha256_hex}",
                self.size,
                self.sha256_base64.as_deref().unwrap_or("(none)"),
            ))
        }
    }
}

/// An object a publish or deploy is about to reference, as the client declared it.
pub struct Declared<'a> {
    pub key: &'a str,
    pub size: u64,
    /// Declared lower-case hex sha256.
    pub sha256_hex: &'a str,
    /// How problems name it (`linux/x86_64/appimage (app.AppImage)`).
    pub label: String,
}

/// Checks, with concurrent HEADs, that every declared object is stored as declared, before
/// any database write: 422 `object_missing` or `object_mismatch` naming the first that is not.
pub async fn verify_declared(storage: &Storage, declared: &[Declared<'_>]) -> Result<(), ApiError> {
    let heads = futures_util::future::join_all(declared.iter().map(|d| storage.head(d.key))).await;
    for (d, head) in declared.iter().zip(heads) {
        let Some(object) = head? else {
            return Err(ApiError::unprocessable(
                Code::ObjectMissing,
                format!(
                    "{} is not in storage: PUT it to the presigned URL first",
                    d.label
                ),
            ));
        };
        if let Err(difference) = object.verify(d.key, d.size, d.sha256_hex) {
            return Err(ApiError::unprocessable(
                Code::ObjectMismatch,
                format!("{} in storage {difference}", d.label),
            ));
        }
    }
    Ok(())
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
    Blob(blob::BlobStorage),
}

/// Storage failures the handlers map to problems.
#[derive(Debug)]
pub enum StorageError {
    /// Storage could not be reached or refused the Hub's credentials.
    Unavailable(String),
    /// The provider cannot take this request for a reason the client can fix (e.g. a key
    /// longer than it accepts): a precise 4xx.
    Refused {
        /// HTTP status of the problem.
        status: StatusCode,
        code: Code,
        detail: String,
    },
}

impl StorageError {
    /// What to log.
    pub fn cause(&self) -> &str {
        match self {
            StorageError::Unavailable(cause) => cause,
            StorageError::Refused { detail, .. } => detail,
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => ApiError::storage_unavailable(cause),
            StorageError::Refused {
                status,
                code,
                detail,
            } => ApiError::new(status, code, detail),
        }
    }
}

impl Storage {
    /// Builds the provider; no network I/O happens here.
    pub fn new(config: &StorageConfig) -> Self {
        match config {
            StorageConfig::S3(c) => Storage::S3(s3::S3Storage::new(c)),
            StorageConfig::VercelBlob(c) => Storage::Blob(blob::BlobStorage::new(c)),
        }
    }

    /// Refuses a key the provider would refuse, before the Hub records anything for it.
    pub fn check_key(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Storage::S3(_) => Ok(()),
            Storage::Blob(b) => b.check_key(key),
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
            Storage::Blob(b) => b.presign_upload(spec, ttl).await,
        }
    }

    /// A presigned GET that downloads as `filename` (Vercel Blob: the public blob URL, which
    /// does not expire and names the file after the key's last segment).
    pub async fn presign_download(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        match self {
            Storage::S3(s) => s.presign_download(key, filename, ttl).await,
            Storage::Blob(b) => b.presign_download(key, filename, ttl).await,
        }
    }

    /// What is stored under `key`, or `None`.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self {
            Storage::S3(s) => s.head(key).await,
            Storage::Blob(b) => b.head(key).await,
        }
    }

    /// Whether storage answers with the configured credentials (deep health check).
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Storage::S3(s) => s.check().await,
            Storage::Blob(b) => b.check().await,
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

    const EMPTY_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EMPTY_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn s3_object(size: u64, sha256_base64: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            size,
            sha256_base64: sha256_base64.map(str::to_owned),
            reports_sha256: true,
            pathname: None,
        }
    }

    #[test]
    fn s3_objects_verify_size_and_sha256() {
        let good = s3_object(5, Some(EMPTY_B64));
        assert_eq!(good.verify("k", 5, EMPTY_HEX), Ok(Verified::SizeAndSha256));
        assert!(good.verify("k", 6, EMPTY_HEX).is_err());
        let other_hex = EMPTY_HEX.replace('e', "f");
        let err = good.verify("k", 5, &other_hex).unwrap_err();
        assert!(err.contains(EMPTY_B64) && err.contains(&other_hex), "{err}");
        // An S3 object stored without a checksum cannot pass.
        let err = s3_object(5, None).verify("k", 5, EMPTY_HEX).unwrap_err();
        assert!(err.contains("(none)"), "{err}");
    }

    #[test]
    fn objects_without_a_sha256_verify_size_and_pathname_and_say_so() {
        let blob = ObjectInfo {
            size: 5,
            sha256_base64: None,
            reports_sha256: false,
            pathname: Some("releases/a".into()),
        };
        assert_eq!(
            blob.verify("releases/a", 5, EMPTY_HEX),
            Ok(Verified::SizeAndPathname)
        );
        let err = blob.verify("releases/a", 4, EMPTY_HEX).unwrap_err();
        assert!(err.contains("reports no sha256"), "{err}");
        let err = blob.verify("releases/b", 5, EMPTY_HEX).unwrap_err();
        assert!(err.contains("releases/a"), "{err}");
    }
}
