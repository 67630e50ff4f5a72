//! Distribution products (launcher, cli, runner, …) and their channel rows.

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::ids::{CHANNELS, Platform};
use crate::db::Sql;
use crate::error::{ApiError, Code};

/// A product as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    #[serde(skip)]
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// Platforms every channel release must cover (`linux-x86_64`, …).
    pub required_platforms: Vec<String>,
    /// Largest artifact accepted, in bytes.
    pub max_artifact_size: Option<i64>,
    /// The minisign key (stored as its key line) updater signatures must be made with;
    /// serialized the way Tauri's `pubkey` setting takes it (base64 of the `.pub` file).
    #[serde(serialize_with = "as_tauri_pubkey")]
    #[schema(value_type = Option<String>)]
    pub updater_public_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn as_tauri_pubkey<S: serde::Serializer>(line: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match line {
        Some(line) => s.serialize_some(&super::signature::tauri_pubkey(line)),
        None => s.serialize_none(),
    }
}

const COLUMNS: &str = "id, slug, name, required_platforms, max_artifact_size, updater_public_key, created_at, updated_at";

fn from_row(r: &Row) -> Product {
    Product {
        id: r.get("id"),
        slug: r.get("slug"),
        name: r.get("name"),
        required_platforms: r.get("required_platforms"),
        max_artifact_size: r.get("max_artifact_size"),
        updater_public_key: r.get("updater_public_key"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// The product with `slug`, or 404.
pub async fn get(db: &impl Sql, slug: &str) -> Result<Product, ApiError> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM products WHERE slug = $1"),
        &[(&slug, Type::TEXT)],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or_else(|| ApiError::not_found(format!("no product {slug:?}")))
}

/// Every product, by slug.
pub async fn list(db: &impl Sql) -> Result<Vec<Product>, ApiError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM products ORDER BY slug"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Settable fields.
#[derive(Debug, Default)]
pub struct ProductFields {
    pub name: Option<String>,
    /// Required platforms (canonical).
    pub required_platforms: Option<Vec<Platform>>,
    /// Maximum artifact size; `Some(None)` clears it.
    pub max_artifact_size: Option<Option<i64>>,
    /// Updater key line; `Some(None)` clears it.
    pub updater_public_key: Option<Option<String>>,
}

fn platform_strings(p: &[Platform]) -> Vec<String> {
    let mut v: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// Creates a product and its three channels (inside the caller's transaction); 409 if it exists.
pub async fn create(db: &impl Sql, slug: &str, f: &ProductFields) -> Result<Product, ApiError> {
    let platforms = platform_strings(f.required_platforms.as_deref().unwrap_or(&[]));
    let row = db
        .query_opt(
            &format!(
                "INSERT INTO products (slug, name, required_platforms, max_artifact_size, updater_public_key)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                (&slug, Type::TEXT),
                (&f.name.as_deref().unwrap_or(slug), Type::TEXT),
                (&platforms, Type::TEXT_ARRAY),
                (&f.max_artifact_size.flatten(), Type::INT8),
                (&f.updater_public_key.clone().flatten(), Type::TEXT),
            ],
        )
        .await?
        .ok_or_else(|| ApiError::conflict(Code::ProductExists, format!("product {slug:?} already exists")))?;
    let product = from_row(&row);
    let names: Vec<String> = CHANNELS.iter().map(|c| c.to_string()).collect();
    db.query(
        "INSERT INTO channels (product_id, name) SELECT $1, unnest($2::text[])",
        &[(&product.id, Type::INT8), (&names, Type::TEXT_ARRAY)],
    )
    .await?;
    Ok(product)
}

/// Updates the given fields; 404 if the product does not exist.
pub async fn update(db: &impl Sql, slug: &str, f: &ProductFields) -> Result<Product, ApiError> {
    let platforms = f.required_platforms.as_deref().map(platform_strings);
    let row = db
        .query_opt(
            &format!(
                "UPDATE products SET
                    name = coalesce($2, name),
                    required_platforms = coalesce($3, required_platforms),
                    max_artifact_size = CASE WHEN $4 THEN $5 ELSE max_artifact_size END,
                    updater_public_key = CASE WHEN $6 THEN $7 ELSE updater_public_key END,
                    updated_at = now()
                 WHERE slug = $1 RETURNING {COLUMNS}"
            ),
            &[
                (&slug, Type::TEXT),
                (&f.name, Type::TEXT),
                (&platforms, Type::TEXT_ARRAY),
                (&f.max_artifact_size.is_some(), Type::BOOL),
                (&f.max_artifact_size.flatten(), Type::INT8),
                (&f.updater_public_key.is_some(), Type::BOOL),
                (&f.updater_public_key.clone().flatten(), Type::TEXT),
            ],
        )
        .await?;
    row.map(|r| from_row(&r))
        .ok_or_else(|| ApiError::not_found(format!("no product {slug:?}")))
}
