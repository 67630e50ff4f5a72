//! `POST /api/v1/storage/presign`: the Hub derives the key, records the upload, and hands
//! out a PUT that storage itself checks (length, sha256, no overwrite).

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::domain::ids::{
    Arch, Os, Slug, Version, parse_content_type, parse_filename, parse_kind, parse_sha256,
};
use crate::domain::tokens::{self, Scope};
use crate::domain::uploads::{self, Upload};
use crate::domain::{products, releases};
use crate::http::{ApiError, ApiRequest, ApiResult, respond};
use crate::state::AppState;
use crate::storage::UploadSpec;

/// The largest object one presigned PUT may carry (S3's single-PUT limit).
pub const MAX_SINGLE_PUT: i64 = 5 * 1024 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PresignBody {
    product: Option<String>,
    version: Option<String>,
    os: Option<String>,
    arch: Option<String>,
    kind: Option<String>,
    pack: Option<String>,
    build: Option<String>,
    filename: String,
    size: i64,
    sha256: String,
    content_type: Option<String>,
}

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    v.as_deref()
        .ok_or_else(|| ApiError::invalid(format!("{field} is required for a release upload")))
}

/// The storage key of a release artifact: derived, never chosen by the client.
pub fn release_key(
    product: &str,
    version: &str,
    os: &str,
    arch: &str,
    kind: &str,
    filename: &str,
) -> String {
    format!("releases/{product}/{version}/{os}-{arch}/{kind}/{filename}")
}

/// Presigns one release artifact upload.
pub async fn post(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let body: PresignBody = req.json()?;
    if body.pack.is_some() || body.build.is_some() {
        return Err(ApiError::unprocessable(
            "packs_unsupported",
            "pack uploads are not available on this Hub yet",
        ));
    }
    let product = Slug::parse("product", required(&body.product, "product")?)?;
    let version = Version::parse(required(&body.version, "version")?)?;
    let os = Os::parse(required(&body.os, "os")?)?;
    let arch = Arch::parse(required(&body.arch, "arch")?)?;
    let kind = parse_kind(required(&body.kind, "kind")?)?;
    let filename = parse_filename(&body.filename)?;
    let sha256 = parse_sha256(&body.sha256)?;
    let content_type = parse_content_type(
        body.content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    )?;
    if body.size < 1 {
        return Err(ApiError::invalid(
            "size must be the artifact's size in bytes (at least 1)",
        ));
    }

    let conn = state.db.conn().await?;
    let principal = tokens::authenticate_request(&conn, &state.config.token_pepper, &req).await?;
    principal.require_app(product.as_str(), Scope::Upload, None)?;
    let product = products::get(&conn, product.as_str()).await?;
    let limit = product
        .max_artifact_size
        .unwrap_or(MAX_SINGLE_PUT)
        .min(MAX_SINGLE_PUT);
    if body.size > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "artifact_too_large",
            format!(
                "{} bytes is over {}'s limit of {limit} bytes per artifact",
                body.size, product.slug
            ),
        ));
    }

    let version_str = version.to_string();
    let key = release_key(
        &product.slug,
        &version_str,
        os.as_str(),
        arch.as_str(),
        &kind,
        &filename,
    );
    if let Some(release) = releases::find(&conn, product.id, &version_str).await? {
        let published = releases::artifacts(&conn, release.id).await?;
        let same = published.iter().any(|a| {
            a.os == os.as_str()
                && a.arch == arch.as_str()
                && a.kind == kind
                && a.filename == filename
                && a.sha256 == sha256
        });
        if !same {
            return Err(ApiError::conflict(
                "version_exists",
                format!(
                    "{} {version_str} is already published without this artifact; publish a new version",
                    product.slug
                ),
            ));
        }
    }

    let wanted = Upload {
        id: Uuid::new_v4(),
        storage_key: key.clone(),
        product_id: Some(product.id),
        version: Some(version_str.clone()),
        os: Some(os.as_str().to_owned()),
        arch: Some(arch.as_str().to_owned()),
        kind: Some(kind.clone()),
        filename: filename.clone(),
        size: body.size,
        sha256: sha256.clone(),
        content_type: content_type.clone(),
    };
    let upload = match uploads::by_key(&conn, &key).await? {
        Some(existing) => existing,
        None => uploads::record_release_upload(&conn, &wanted, &principal.actor()).await?,
    };
    if upload.sha256 != sha256 || upload.size != body.size {
        return Err(ApiError::conflict(
            "upload_conflict",
            format!(
                "{key} was already presigned for different content (sha256 {}, {} bytes); \
                 stored artifacts are immutable: publish a new version",
                upload.sha256, upload.size
            ),
        ));
    }

    let already_uploaded = if upload.id != wanted.id {
        let expected = crate::storage::sha256_hex_to_base64(&sha256);
        state
            .storage
            .head(&key)
            .await?
            .is_some_and(|o| o.size == body.size as u64 && o.sha256_base64 == expected)
    } else {
        false
    };
    let presigned = state
        .storage
        .presign_upload(
            &UploadSpec {
                key: &key,
                size: body.size as u64,
                sha256_hex: &sha256,
                content_type: &content_type,
            },
            state.config.upload_url_ttl,
        )
        .await?;
    let headers: serde_json::Map<String, serde_json::Value> = presigned
        .headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    respond::json(
        StatusCode::OK,
        &json!({
            "uploadId": upload.id,
            "key": key,
            "method": presigned.method,
            "url": presigned.url,
            "uploadHeaders": headers,
            "expiresAt": presigned.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "alreadyUploaded": already_uploaded,
        }),
    )
}
