//! `POST /api/v1/storage/presign`: the Hub derives the key, records the upload, and hands
//! out a PUT that storage itself checks (length, sha256, no overwrite). Release artifacts
//! are authorised by app tokens; pack artifacts by pack tokens or GitHub OIDC.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::packs::parse_build;
use crate::db::Conn;
use crate::domain::ids::{
    Arch, Os, Slug, Version, parse_content_type, parse_filename, parse_kind, parse_sha256,
    parse_size,
};
use crate::domain::limits::{self, Action};
use crate::domain::packs::PackCredential;
use crate::domain::tokens::{self, Scope};
use crate::domain::uploads::{self, Upload};
use crate::domain::{packs, products, releases};
use crate::error::{ApiError, Code};
use crate::http::extract::{CiCaller, Json, Meta, NoQuery, Query};
use crate::http::{ApiResult, RequestMeta, respond};
use crate::state::AppState;
use crate::storage::UploadSpec;

/// The largest object one presigned PUT may carry (S3's single-PUT limit).
pub const MAX_SINGLE_PUT: i64 = 5 * 1024 * 1024 * 1024;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresignBody {
    /// Product slug (release uploads).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    product: Option<String>,
    /// SemVer version (release uploads; a leading `v` is accepted).
    #[schema(pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$", max_length = 129)]
    version: Option<String>,
    /// `linux`, `windows` or `darwin` (`macos`) (release uploads).
    #[schema(pattern = "^(linux|windows|darwin|macos)$")]
    os: Option<String>,
    /// `x86_64` (`amd64`), `aarch64` (`arm64`), `i686`, `armv7` or `riscv64` (release uploads).
    #[schema(pattern = "^(x86_64|amd64|aarch64|arm64|i686|armv7|riscv64)$")]
    arch: Option<String>,
    /// Artifact kind (`appimage`, `deb`, `nsis`, `tar.gz`, …) (release uploads).
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{0,31}$")]
    kind: Option<String>,
    /// Pack slug (pack uploads).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pack: Option<String>,
    /// Build id (pack uploads).
    build: Option<String>,
    /// File name: letters, digits, `.`, `-`, `_`, `+`; not starting with `.`.
    #[schema(
        pattern = "^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$",
        example = "launcher-1.0.0-x86_64.AppImage"
    )]
    filename: String,
    #[schema(minimum = 1)]
    size: i64,
    /// Hex sha256 of the content.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: String,
    /// MIME type (default `application/octet-stream`).
    content_type: Option<String>,
}

fn required<'a>(v: &'a Option<String>, field: &str, what: &str) -> Result<&'a str, ApiError> {
    v.as_deref()
        .ok_or_else(|| ApiError::invalid(format!("{field} is required for a {what} upload")))
}

/// The storage key of a release artifact: derived, never chosen by the client, and
/// content-addressed. The sha256 in the key means a key can only ever hold the bytes it
/// names: a presign with a made-up sha256 that is never uploaded (a squatter's, or a CI run
/// that died and rebuilt different bytes) occupies a key nobody else needs, instead of
/// locking the version's file name for ever.
pub fn release_key(
    product: &str,
    version: &str,
    os: &str,
    arch: &str,
    kind: &str,
    sha256: &str,
    filename: &str,
) -> String {
    format!("releases/{product}/{version}/{os}-{arch}/{kind}/{sha256}/{filename}")
}

/// The storage key of a pack build artifact (content-addressed, as [`release_key`]).
pub fn pack_key(pack: &str, build: &str, sha256: &str, filename: &str) -> String {
    format!("packs/{pack}/{build}/{sha256}/{filename}")
}

/// Fields every upload declares.
struct Declared {
    filename: String,
    size: i64,
    sha256: String,
    content_type: String,
}

fn declared(body: &PresignBody) -> Result<Declared, ApiError> {
    parse_size("size", body.size)?;
    Ok(Declared {
        filename: parse_filename(&body.filename)?,
        size: body.size,
        sha256: parse_sha256(&body.sha256)?,
        content_type: parse_content_type(
            body.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )?,
    })
}

fn too_large(size: i64, owner: &str, limit: i64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::ArtifactTooLarge,
        format!("{size} bytes is over {owner}'s limit of {limit} bytes per artifact"),
    )
}

/// A presigned PUT for one artifact: the Hub derives the key (content-addressed) and
/// records the upload; the signature binds the length, the sha256 and no-overwrite, so
/// storage itself refuses anything else.
#[utoipa::path(
    post,
    path = "/api/v1/storage/presign",
    operation_id = "presignUpload",
    tag = "ci",
    summary = "A presigned PUT for one artifact; the Hub derives the key.",
    request_body = PresignBody,
    responses((status = 200, description = "Upload with `url` and exactly `uploadHeaders`.", body = PresignAnswer)),
    security(("appToken" = []), ("packToken" = []), ("githubOidc" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn post(
    CiCaller(credential): CiCaller,
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    _: Query<NoQuery>,
    Json(body): Json<PresignBody>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let answer = if body.pack.is_some() {
        pack_upload(&state, &conn, credential, &body).await
    } else {
        release_upload(&state, &conn, credential, &body).await
    };
    if answer.is_ok() {
        prune_uploads(&state, &meta);
    }
    answer
}

/// Deletes old unpublished upload rows ([`uploads::prune`]) after the response, at most once
/// a minute per instance: presigns are what create them, so presigns clean up after them.
fn prune_uploads(state: &Arc<AppState>, meta: &RequestMeta) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    if now < last + 60
        || LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let state = state.clone();
    let request_id = meta.request_id.clone();
    meta.background.run(async move {
        let pruned = async { uploads::prune(&state.db.conn().await?).await }.await;
        if let Err(e) = pruned {
            eprintln!(
                "{}",
                json!({"level": "warn", "requestId": request_id, "event": "upload_prune_failed",
                       "code": e.code, "cause": e.cause})
            );
        }
    });
}

async fn release_upload(
    state: &AppState,
    conn: &Conn,
    credential: PackCredential,
    body: &PresignBody,
) -> ApiResult {
    let what = "release";
    if body.build.is_some() {
        return Err(ApiError::invalid(
            "build is for pack uploads (with pack); a release upload takes product and version",
        ));
    }
    let product = Slug::parse("product", required(&body.product, "product", what)?)?;
    let version = Version::parse(required(&body.version, "version", what)?)?;
    let os = Os::parse(required(&body.os, "os", what)?)?;
    let arch = Arch::parse(required(&body.arch, "arch", what)?)?;
    let kind = parse_kind(required(&body.kind, "kind", what)?)?;
    let d = declared(body)?;

    let PackCredential::Token(principal) = credential else {
        return Err(tokens::scope_denied(
            "a GitHub OIDC token deploys packs only; release uploads need an app deploy token"
                .into(),
        ));
    };
    principal.require_app(product.as_str(), Scope::Upload, None)?;
    // One round trip for both: the connection pipelines them.
    let limits = &state.config.limits;
    let actor = principal.key();
    let ((), product) = tokio::try_join!(
        limits::take(conn, limits, Action::Presign, &actor),
        products::get(conn, product.as_str()),
    )?;
    let limit = product
        .max_artifact_size
        .unwrap_or(MAX_SINGLE_PUT)
        .min(MAX_SINGLE_PUT);
    if d.size > limit {
        return Err(too_large(d.size, &product.slug, limit));
    }

    let version = version.to_string();
    let key = release_key(
        &product.slug,
        &version,
        os.as_str(),
        arch.as_str(),
        &kind,
        &d.sha256,
        &d.filename,
    );
    if let Some(release) = releases::find(conn, product.id, &version).await? {
        let published = releases::artifacts(conn, release.id).await?;
        let same = published.iter().any(|a| {
            a.os == os.as_str()
                && a.arch == arch.as_str()
                && a.kind == kind
                && a.filename == d.filename
                && a.sha256 == d.sha256
        });
        if !same {
            return Err(ApiError::conflict(
                Code::VersionExists,
                format!(
                    "{} {version} is already published without this artifact; publish a new version",
                    product.slug
                ),
            ));
        }
    }
    let wanted = Upload {
        id: Uuid::new_v4(),
        storage_key: key,
        product_id: Some(product.id),
        version: Some(version),
        pack_id: None,
        build: None,
        os: Some(os.as_str().to_owned()),
        arch: Some(arch.as_str().to_owned()),
        kind: Some(kind),
        filename: d.filename,
        size: d.size,
        sha256: d.sha256,
        content_type: d.content_type,
    };
    presign_recorded(state, conn, wanted, &principal.actor()).await
}

async fn pack_upload(
    state: &AppState,
    conn: &Conn,
    credential: PackCredential,
    body: &PresignBody,
) -> ApiResult {
    let what = "pack";
    if body.product.is_some() || body.version.is_some() {
        return Err(ApiError::invalid(
            "send either product and version (a release upload) or pack and build, not both",
        ));
    }
    if body.os.is_some() || body.arch.is_some() || body.kind.is_some() {
        return Err(ApiError::invalid(
            "os, arch and kind are for release uploads; a pack upload takes pack, build and the file",
        ));
    }
    let slug = Slug::parse("pack", required(&body.pack, "pack", what)?)?;
    let build = parse_build(required(&body.build, "build", what)?)?;
    let d = declared(body)?;
    if d.size > MAX_SINGLE_PUT {
        return Err(too_large(d.size, slug.as_str(), MAX_SINGLE_PUT));
    }

    let pack = packs::get(conn, slug.as_str()).await?;
    let actor = packs::authorize(
        conn,
        &state.config.limits,
        credential,
        &pack,
        Some(Action::Presign),
    )
    .await?;
    let key = pack_key(&pack.slug, &build, &d.sha256, &d.filename);
    if let Some(existing) = packs::find_build(conn, pack.id, &build).await? {
        let stored = packs::build_artifacts(conn, existing.id).await?;
        if !stored
            .iter()
            .any(|a| a.filename == d.filename && a.sha256 == d.sha256)
        {
            return Err(ApiError::conflict(
                Code::BuildExists,
                format!(
                    "build {build} of {} is already deployed without this file; deploy a new build",
                    pack.slug
                ),
            ));
        }
    }
    let wanted = Upload {
        id: Uuid::new_v4(),
        storage_key: key,
        product_id: None,
        version: None,
        pack_id: Some(pack.id),
        build: Some(build),
        os: None,
        arch: None,
        kind: None,
        filename: d.filename,
        size: d.size,
        sha256: d.sha256,
        content_type: d.content_type,
    };
    presign_recorded(state, conn, wanted, &actor.name).await
}

/// Records the upload (or finds the one recorded for its key), then presigns the PUT.
async fn presign_recorded(state: &AppState, conn: &Conn, wanted: Upload, actor: &str) -> ApiResult {
    let key = wanted.storage_key.clone();
    state.storage.check_key(&key)?;
    let mut upload = match uploads::by_key(conn, &key).await? {
        Some(existing) => existing,
        None => uploads::record(conn, &wanted, actor).await?,
    };
    if upload.sha256 != wanted.sha256 || upload.size != wanted.size {
        // The key names the sha256, so only the size can differ, and real bytes have one
        // size: one of the two declarations is made up. Storage decides: an upload that was
        // never stored (or whose bytes fit this declaration) gives way to this one.
        let stored = state.storage.head(&key).await?;
        let fits = stored
            .as_ref()
            .is_some_and(|o| o.verify(&key, wanted.size as u64, &wanted.sha256).is_ok());
        if stored.is_some() && !fits {
            return Err(ApiError::conflict(
                Code::UploadConflict,
                format!(
                    "{key} holds other content ({} bytes); stored artifacts are immutable: \
                     publish a new version",
                    upload.size
                ),
            ));
        }
        upload = uploads::replace(conn, upload.id, &wanted, actor).await?;
    }
    // A retry: say so when storage already holds exactly these bytes.
    let already_uploaded = if upload.id != wanted.id {
        // Where storage reports no sha256 (Vercel Blob), size and pathname decide.
        state
            .storage
            .head(&key)
            .await?
            .is_some_and(|o| o.verify(&key, wanted.size as u64, &wanted.sha256).is_ok())
    } else {
        false
    };
    let presigned = state
        .storage
        .presign_upload(
            &UploadSpec {
                key: &key,
                size: wanted.size as u64,
                sha256_hex: &wanted.sha256,
                content_type: &wanted.content_type,
            },
            state.config.upload_url_ttl,
        )
        .await?;
    let body = PresignAnswer {
        upload_id: upload.id,
        key: &key,
        method: presigned.method,
        url: &presigned.url,
        upload_headers: presigned.headers.iter().cloned().collect(),
        expires_at: presigned.expires_at,
        already_uploaded,
    };
    respond::json(StatusCode::OK, &body)
}

/// `POST /api/v1/storage/presign`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PresignedUpload)]
pub struct PresignAnswer<'a> {
    upload_id: Uuid,
    /// The storage key the Hub derived.
    key: &'a str,
    method: &'static str,
    url: &'a str,
    /// Send exactly these headers with the upload.
    upload_headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
    /// The object is already stored with this sha256: skip the upload.
    already_uploaded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::MAX_VERSION_LEN;
    use crate::storage::blob::MAX_PATHNAME_LEN;

    #[test]
    fn the_longest_derivable_keys_fit_every_provider() {
        let sha256 = "0".repeat(64);
        let release = release_key(
            &"p".repeat(63),
            &"1".repeat(MAX_VERSION_LEN),
            "windows",
            "riscv64",
            &"k".repeat(32),
            &sha256,
            &"f".repeat(200),
        );
        let pack = pack_key(&"p".repeat(63), &"b".repeat(64), &sha256, &"f".repeat(200));
        assert!(release.len() <= MAX_PATHNAME_LEN, "{}", release.len());
        assert!(pack.len() <= MAX_PATHNAME_LEN, "{}", pack.len());
    }
}
