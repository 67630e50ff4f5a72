//! S3-compatible storage with static credentials (Cloudflare R2 first): presigning by hand
//! ([`super::sigv4`]), object inspection (HEAD) with `aws-sdk-s3`.

use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::ChecksumMode;
use time::OffsetDateTime;

use super::sigv4::Presigner;
use super::{ObjectInfo, PresignedUpload, StorageError, UploadSpec, content_disposition};
use crate::config::S3Config;

/// Bounds on every call to storage (only HEADs reach the network: presigning is local). A
/// storage that refuses connections, or accepts them and never answers, costs a request at
/// most `operation_timeout` and is answered 503 `storage_unavailable` instead of hanging
/// (tests/it/faults.rs). Attempts that time out or fail to connect are retried within it.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(9))
        .build()
}

/// An S3 bucket reached with static credentials.
pub struct S3Storage {
    /// Built on the first HEAD: building it loads the TLS roots and the SDK's runtime
    /// components (milliseconds), which a function that only presigns or only reads the
    /// database never needs; so a cold start pays for it only where it is used.
    client: std::sync::OnceLock<aws_sdk_s3::Client>,
    config: S3Config,
    bucket: String,
    presigner: Presigner,
}

impl S3Storage {
    /// The provider from static settings: no credential chain, no network I/O, and no SDK
    /// client until one is needed.
    pub fn new(c: &S3Config) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            config: c.clone(),
            bucket: c.bucket.clone(),
            presigner: Presigner::new(c),
        }
    }

    /// The SDK client (HEAD requests), built once.
    fn client(&self) -> &aws_sdk_s3::Client {
        self.client.get_or_init(|| {
            let c = &self.config;
            let http_client = aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let mut b = aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(c.region.clone()))
                .credentials_provider(Credentials::new(
                    c.access_key_id.clone(),
                    c.secret_access_key.expose().to_owned(),
                    None,
                    None,
                    "atlas-static",
                ))
                .force_path_style(c.force_path_style)
                .retry_config(RetryConfig::standard().with_max_attempts(3))
                .timeout_config(timeouts())
                .http_client(http_client);
            if let Some(endpoint) = &c.endpoint {
                b = b.endpoint_url(endpoint.clone());
            }
            aws_sdk_s3::Client::from_conf(b.build())
        })
    }

    /// Presigned PUT binding `content-length`, `content-type`, `x-amz-checksum-sha256` and
    /// `if-none-match: *`: storage rejects another body, another length or an overwrite.
    pub async fn presign_upload(
        &self,
        spec: &UploadSpec<'_>,
        ttl: Duration,
    ) -> Result<PresignedUpload, StorageError> {
        let checksum = super::sha256_hex_to_base64(spec.sha256_hex)
            .ok_or_else(|| StorageError::Unavailable("sha256 is not 64 hex digits".into()))?;
        let now = OffsetDateTime::now_utc();
        let headers = vec![
            ("content-length", spec.size.to_string()),
            ("content-type", spec.content_type.to_owned()),
            ("if-none-match", "*".to_owned()),
            ("x-amz-checksum-sha256", checksum),
        ];
        let url = self
            .presigner
            .presign("PUT", spec.key, &[], &headers, ttl, now);
        Ok(PresignedUpload {
            method: "PUT",
            url,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            expires_at: now + ttl,
        })
    }

    /// Presigned GET that saves as `filename`.
    pub async fn presign_download(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let disposition = content_disposition(filename);
        Ok(self.presigner.presign(
            "GET",
            key,
            &[("response-content-disposition", &disposition)],
            &[],
            ttl,
            OffsetDateTime::now_utc(),
        ))
    }

    /// HEAD with checksum mode, so S3 reports the stored sha256.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let result = self
            .client()
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                sha256_base64: out.checksum_sha256().map(str::to_owned),
                reports_sha256: true,
                pathname: None,
            })),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(StorageError::Unavailable(describe(&e))),
        }
    }

    /// HEAD on the bucket.
    pub async fn check(&self) -> Result<(), StorageError> {
        self.client()
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Unavailable(describe(&e)))
    }
}

fn describe<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        // HEAD answers have no body: the HTTP status is often all there is to say.
        SdkError::ServiceError(s) => format!(
            "S3 answered HTTP {} ({}): {}",
            s.raw().status().as_u16(),
            s.err().code().unwrap_or("no error code"),
            s.err().message().unwrap_or("no message")
        ),
        other => format!("S3 request failed: {other:?}"),
    }
}
