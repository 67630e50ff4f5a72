//! Uploads the Hub presigned: the key it derived and what the client declared.

use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::Sql;
use crate::error::{ApiError, Code};

/// A recorded upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Upload id, returned by presign and accepted by publish.
    pub id: Uuid,
    pub storage_key: String,
    /// Product (release uploads).
    pub product_id: Option<i64>,
    /// Version (release uploads).
    pub version: Option<String>,
    /// Pack (pack uploads).
    pub pack_id: Option<i64>,
    /// Build (pack uploads).
    pub build: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub kind: Option<String>,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
}

const COLUMNS: &str = "id, storage_key, product_id, version, pack_id, build, os, arch, kind, \
                       filename, size, sha256, content_type";

fn from_row(r: &Row) -> Upload {
    Upload {
        id: r.get("id"),
        storage_key: r.get("storage_key"),
        product_id: r.get("product_id"),
        version: r.get("version"),
        pack_id: r.get("pack_id"),
        build: r.get("build"),
        os: r.get("os"),
        arch: r.get("arch"),
        kind: r.get("kind"),
        filename: r.get("filename"),
        size: r.get("size"),
        sha256: r.get("sha256"),
        content_type: r.get("content_type"),
    }
}

/// The upload recorded for `key`.
pub async fn by_key(db: &impl Sql, key: &str) -> Result<Option<Upload>, ApiError> {
    Ok(db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM uploads WHERE storage_key = $1"),
            &[(&key, Type::TEXT)],
        )
        .await?
        .map(|r| from_row(&r)))
}

/// The upload with `id`.
pub async fn by_id(db: &impl Sql, id: Uuid) -> Result<Option<Upload>, ApiError> {
    Ok(db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM uploads WHERE id = $1"),
            &[(&id, Type::UUID)],
        )
        .await?
        .map(|r| from_row(&r)))
}

/// Records an upload; returns the stored row (an existing one when the key raced).
pub async fn record(db: &impl Sql, u: &Upload, created_by: &str) -> Result<Upload, ApiError> {
    let row = db
        .query_opt(
            &format!(
                "INSERT INTO uploads (id, storage_key, product_id, version, os, arch, kind, filename, size, sha256, content_type, created_by, pack_id, build)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (storage_key) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                (&u.id, Type::UUID),
                (&u.storage_key, Type::TEXT),
                (&u.product_id, Type::INT8),
                (&u.version, Type::TEXT),
                (&u.os, Type::TEXT),
                (&u.arch, Type::TEXT),
                (&u.kind, Type::TEXT),
                (&u.filename, Type::TEXT),
                (&u.size, Type::INT8),
                (&u.sha256, Type::TEXT),
                (&u.content_type, Type::TEXT),
                (&created_by, Type::TEXT),
                (&u.pack_id, Type::INT8),
                (&u.build, Type::TEXT),
            ],
        )
        .await?;
    match row {
        Some(r) => Ok(from_row(&r)),
        None => by_key(db, &u.storage_key)
            .await?
            .ok_or_else(|| ApiError::internal("upload row vanished after a key conflict")),
    }
}

/// Replaces the upload `old` (same key, a declaration that was never stored) with `u`,
/// under a new id: a publish holding the old id no longer matches it.
pub async fn replace(
    db: &impl Sql,
    old: Uuid,
    u: &Upload,
    created_by: &str,
) -> Result<Upload, ApiError> {
    db.query_opt(
        &format!(
            "UPDATE uploads SET id = $3, size = $4, content_type = $5, created_by = $6, created_at = now()
             WHERE storage_key = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
        &[
            (&u.storage_key, Type::TEXT),
            (&old, Type::UUID),
            (&u.id, Type::UUID),
            (&u.size, Type::INT8),
            (&u.content_type, Type::TEXT),
            (&created_by, Type::TEXT),
        ],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or_else(|| {
        ApiError::conflict(
            Code::UploadConflict,
            format!("{} was presigned again meanwhile; retry", u.storage_key),
        )
    })
}

/// How long an unpublished upload row is kept after its presign (the longest upload URL
/// lives an hour; a publish after a day presigns again and finds its bytes stored).
pub const UNPUBLISHED_KEPT: &str = "1 day";

/// Deletes up to 1000 upload rows presigned more than [`UNPUBLISHED_KEPT`] ago that no
/// artifact uses; returns how many. (The objects of unpublished uploads are storage's to
/// expire, with a lifecycle rule on the bucket.)
pub async fn prune(db: &impl Sql) -> Result<u64, ApiError> {
    let rows = db
        .query(
            &format!(
                "WITH gone AS (
                    DELETE FROM uploads WHERE id IN (
                        SELECT u.id FROM uploads u
                        WHERE u.created_at < now() - interval '{UNPUBLISHED_KEPT}'
                          AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.storage_key = u.storage_key)
                        ORDER BY u.created_at LIMIT 1000)
                    RETURNING 1)
                 SELECT count(*) FROM gone"
            ),
            &[],
        )
        .await?;
    Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
}

/// Whose upload an artifact must be: a release's (product and version) or a pack build's.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// An artifact of `product_id`'s release `version`.
    Release {
        product_id: i64,
        /// The version, as presigned.
        version: &'a str,
    },
    /// A file of `pack_id`'s build `build`.
    Pack {
        pack_id: i64,
        /// The build id, as presigned.
        build: &'a str,
    },
}

/// The upload an artifact of a publish or deploy names (`uploadId` or `key`, not both),
/// which must have been presigned for `owner`: the one rule, for releases and packs alike,
/// that a caller can only publish what was presigned for what it publishes. `field` is the
/// artifact's place in the body (`artifacts[2]`), `label` how errors name it.
pub async fn resolve(
    db: &impl Sql,
    owner: Owner<'_>,
    upload_id: Option<Uuid>,
    key: Option<&str>,
    field: &str,
    label: &str,
) -> Result<Upload, ApiError> {
    let upload = match (upload_id, key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "{field}: give uploadId or key from presign, not both"
            )));
        }
        (Some(id), None) => by_id(db, id).await?,
        (None, Some(key)) => {
            let key = crate::domain::ids::parse_storage_key(&format!("{field}.key"), key)?;
            by_key(db, &key).await?
        }
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "{label} needs uploadId or key from presign"
            )));
        }
    };
    let (belongs, what) = match owner {
        Owner::Release {
            product_id,
            version,
        } => (
            upload.as_ref().is_some_and(|u| {
                u.product_id == Some(product_id) && u.version.as_deref() == Some(version)
            }),
            format!("version {version}"),
        ),
        Owner::Pack { pack_id, build } => (
            upload
                .as_ref()
                .is_some_and(|u| u.pack_id == Some(pack_id) && u.build.as_deref() == Some(build)),
            format!("build {build}"),
        ),
    };
    match upload {
        Some(u) if belongs => Ok(u),
        _ => Err(ApiError::unprocessable(
            Code::UploadUnknown,
            format!(
                "{label}: no presigned upload of this {what} matches; call /api/v1/storage/presign first"
            ),
        )),
    }
}
