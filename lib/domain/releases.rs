//! Releases: immutable sets of artifacts under a SemVer version.

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::ids::Version;
use crate::db::Sql;
use crate::error::ApiError;

/// A release as stored.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: i64,
    pub version: String,
    pub notes: String,
    pub published_at: OffsetDateTime,
    pub published_by: String,
    /// Yanked, when.
    pub yanked_at: Option<OffsetDateTime>,
    /// Why it was yanked, when the yank said so (cleared by unyank).
    pub yank_reason: Option<String>,
    /// Digest of artifacts + notes (identical re-publish detection).
    pub content_digest: String,
}

const RELEASE_COLUMNS: &str =
    "id, version, notes, published_at, published_by, yanked_at, yank_reason, content_digest";

fn release_from_row(r: &Row) -> Release {
    Release {
        id: r.get("id"),
        version: r.get("version"),
        notes: r.get("notes"),
        published_at: r.get("published_at"),
        published_by: r.get("published_by"),
        yanked_at: r.get("yanked_at"),
        yank_reason: r.get("yank_reason"),
        content_digest: r.get("content_digest"),
    }
}

/// A stored artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub id: i64,
    /// Public download id.
    pub download_id: String,
    pub os: String,
    pub arch: String,
    pub kind: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    /// Tauri signature (.sig content, base64).
    pub signature: Option<String>,
    /// The platform's primary artifact.
    pub primary: bool,
}

fn artifact_from_row(r: &Row) -> Artifact {
    Artifact {
        id: r.get("id"),
        download_id: r.get("download_id"),
        os: r.get("os"),
        arch: r.get("arch"),
        kind: r.get("kind"),
        filename: r.get("filename"),
        size: r.get("size"),
        sha256: r.get("sha256"),
        signature: r.get("signature"),
        primary: r.get("is_primary"),
    }
}

/// The release `version` of product `product_id`, if published.
pub async fn find(
    db: &impl Sql,
    product_id: i64,
    version: &str,
) -> Result<Option<Release>, ApiError> {
    Ok(db
        .query_opt(
            &format!(
                "SELECT {RELEASE_COLUMNS} FROM releases WHERE product_id = $1 AND version = $2"
            ),
            &[(&product_id, Type::INT8), (&version, Type::TEXT)],
        )
        .await?
        .map(|r| release_from_row(&r)))
}

/// Like [`find`], but 404 when missing.
pub async fn get(
    db: &impl Sql,
    product_id: i64,
    product: &str,
    version: &str,
) -> Result<Release, ApiError> {
    find(db, product_id, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{product} has no release {version}")))
}

/// The release locked for update (yank), or 404.
pub async fn get_for_update(
    db: &impl Sql,
    product_id: i64,
    product: &str,
    version: &str,
) -> Result<Release, ApiError> {
    db.query_opt(
        &format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE product_id = $1 AND version = $2 FOR UPDATE"
        ),
        &[(&product_id, Type::INT8), (&version, Type::TEXT)],
    )
    .await?
    .map(|r| release_from_row(&r))
    .ok_or_else(|| ApiError::not_found(format!("{product} has no release {version}")))
}

/// Artifacts of a release, by platform then kind.
pub async fn artifacts(db: &impl Sql, release_id: i64) -> Result<Vec<Artifact>, ApiError> {
    let rows = db
        .query(
            "SELECT id, download_id, os, arch, kind, filename, size, sha256, signature, is_primary
             FROM artifacts WHERE release_id = $1 ORDER BY os, arch, is_primary DESC, kind",
            &[(&release_id, Type::INT8)],
        )
        .await?;
    Ok(rows.iter().map(artifact_from_row).collect())
}

/// A page of releases, newest first, with ids below `before`.
pub async fn page(
    db: &impl Sql,
    product_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<(Release, i64)>, ApiError> {
    let rows = db
        .query(
            &format!(
                "SELECT {RELEASE_COLUMNS}, (SELECT count(*) FROM artifacts a WHERE a.release_id = r.id) AS artifact_count
                 FROM releases r WHERE product_id = $1 AND ($2::int8 IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3"
            ),
            &[
                (&product_id, Type::INT8),
                (&before, Type::INT8),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (release_from_row(r), r.get("artifact_count")))
        .collect())
}

/// An artifact about to be published, resolved from its upload.
#[derive(Debug, Clone, Serialize)]
pub struct NewArtifact {
    /// Storage key (from the upload).
    pub storage_key: String,
    pub os: String,
    pub arch: String,
    pub kind: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub signature: Option<String>,
    /// Primary for its platform.
    pub primary: bool,
    pub content_type: String,
}

/// sha256 over notes and the artifact list in a canonical order.
pub fn content_digest(notes: &str, artifacts: &[NewArtifact]) -> String {
    let mut sorted: Vec<&NewArtifact> = artifacts.iter().collect();
    sorted.sort_by(|a, b| (&a.os, &a.arch, &a.kind).cmp(&(&b.os, &b.arch, &b.kind)));
    let canonical = serde_json::json!({ "notes": notes, "artifacts": sorted });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// A new public download id: 128 random bits, URL-safe.
pub fn new_download_id() -> String {
    format!("dl_{}", uuid::Uuid::new_v4().simple())
}

/// Inserts the release and its artifacts; `None` when the version already exists
/// (a concurrent publish won: the caller compares digests).
pub async fn insert(
    db: &impl Sql,
    product_id: i64,
    version: &Version,
    notes: &str,
    digest: &str,
    published_by: &str,
    artifacts: &[NewArtifact],
) -> Result<Option<Release>, ApiError> {
    let v = version.semver();
    let (major, minor, patch) = (
        v.major.to_string(),
        v.minor.to_string(),
        v.patch.to_string(),
    );
    let pre = (!v.pre.is_empty()).then(|| v.pre.as_str().to_owned());
    let row = db
        .query_opt(
            &format!(
                "INSERT INTO releases (product_id, version, major, minor, patch, prerelease, notes, content_digest, published_by)
                 VALUES ($1, $2, $3::text::numeric, $4::text::numeric, $5::text::numeric, $6, $7, $8, $9)
                 ON CONFLICT (product_id, version) DO NOTHING RETURNING {RELEASE_COLUMNS}"
            ),
            &[
                (&product_id, Type::INT8),
                (&version.to_string(), Type::TEXT),
                (&major, Type::TEXT),
                (&minor, Type::TEXT),
                (&patch, Type::TEXT),
                (&pre, Type::TEXT),
                (&notes, Type::TEXT),
                (&digest, Type::TEXT),
                (&published_by, Type::TEXT),
            ],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let release = release_from_row(&row);
    for a in artifacts {
        db.query(
            "INSERT INTO artifacts (download_id, release_id, os, arch, kind, filename, size, sha256, signature, is_primary, content_type, storage_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                (&new_download_id(), Type::TEXT),
                (&release.id, Type::INT8),
                (&a.os, Type::TEXT),
                (&a.arch, Type::TEXT),
                (&a.kind, Type::TEXT),
                (&a.filename, Type::TEXT),
                (&a.size, Type::INT8),
                (&a.sha256, Type::TEXT),
                (&a.signature, Type::TEXT),
                (&a.primary, Type::BOOL),
                (&a.content_type, Type::TEXT),
                (&a.storage_key, Type::TEXT),
            ],
        )
        .await?;
    }
    Ok(Some(release))
}

/// Sets or clears `yanked_at` and the reason. Yanking again keeps the first yank's time, and
/// its reason unless a new one is given; unyanking clears both, so a later yank never shows
/// an earlier one's reason.
pub async fn set_yanked(
    db: &impl Sql,
    release_id: i64,
    yanked: bool,
    reason: Option<&str>,
) -> Result<Release, ApiError> {
    db.query_one(
        &format!(
            "UPDATE releases SET yanked_at = CASE WHEN $2 THEN coalesce(yanked_at, now()) ELSE NULL END,
                yank_reason = CASE WHEN $2 THEN coalesce($3, yank_reason) ELSE NULL END
             WHERE id = $1 RETURNING {RELEASE_COLUMNS}"
        ),
        &[
            (&release_id, Type::INT8),
            (&yanked, Type::BOOL),
            (&reason, Type::TEXT),
        ],
    )
    .await
    .map(|r| release_from_row(&r))
}

/// An artifact as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    pub download_id: String,
    /// Hub download URL (redirects to storage).
    pub download_url: String,
    pub os: String,
    pub arch: String,
    pub kind: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub signature: Option<String>,
    /// Primary for its platform.
    pub primary: bool,
}

impl ArtifactView {
    /// The view of `a`, with download URLs under `hub_url`.
    pub fn new(hub_url: &str, a: &Artifact) -> Self {
        ArtifactView {
            download_url: format!("{hub_url}/api/v1/download/{}", a.download_id),
            download_id: a.download_id.clone(),
            os: a.os.clone(),
            arch: a.arch.clone(),
            kind: a.kind.clone(),
            filename: a.filename.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            signature: a.signature.clone(),
            primary: a.primary,
        }
    }
}

/// A release with its artifacts as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub product: String,
    pub version: String,
    pub notes: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Yanked releases stay downloadable by id but drop out of latest and channels.
    pub yanked: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub yanked_at: Option<OffsetDateTime>,
    /// Why it was yanked, as the yank said (`null`: not yanked, or no reason given).
    pub yank_reason: Option<String>,
    pub artifacts: Vec<ArtifactView>,
}

impl ReleaseView {
    pub fn new(hub_url: &str, product: &str, r: &Release, artifacts: &[Artifact]) -> Self {
        ReleaseView {
            product: product.to_owned(),
            version: r.version.clone(),
            notes: r.notes.clone(),
            published_at: r.published_at,
            yanked: r.yanked_at.is_some(),
            yanked_at: r.yanked_at,
            yank_reason: r.yank_reason.clone(),
            artifacts: artifacts
                .iter()
                .map(|a| ArtifactView::new(hub_url, a))
                .collect(),
        }
    }
}

/// The artifact behind a download id (yanked releases' included: pinned links keep
/// working): its id, storage key and file name.
pub async fn download(
    db: &impl Sql,
    download_id: &str,
) -> Result<Option<(i64, String, String)>, ApiError> {
    Ok(db
        .query_opt(
            "SELECT id, storage_key, filename FROM artifacts WHERE download_id = $1",
            &[(&download_id, Type::TEXT)],
        )
        .await?
        .map(|r| (r.get("id"), r.get("storage_key"), r.get("filename"))))
}

/// Adds `counts[i]` downloads of artifact `ids[i]` to today's counters, one statement.
pub async fn count_downloads(db: &impl Sql, ids: &[i64], counts: &[i64]) -> Result<(), ApiError> {
    db.query(
        "INSERT INTO download_counts (artifact_id, day, count)
         SELECT a, current_date, n FROM unnest($1::int8[], $2::int8[]) AS t(a, n)
         ON CONFLICT (artifact_id, day) DO UPDATE SET count = download_counts.count + EXCLUDED.count",
        &[(&ids, Type::INT8_ARRAY), (&counts, Type::INT8_ARRAY)],
    )
    .await?;
    Ok(())
}
