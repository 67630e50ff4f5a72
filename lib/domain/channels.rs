//! Channel pointers: `stable`, `beta`, `dev` per product, moved with compare-and-swap and
//! never onto a release that drops a platform the channel serves (unless forced, audited).

use std::collections::BTreeSet;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::audit::{self, Actor};
use super::products::Product;
use super::releases::Release;
use crate::db::Sql;
use crate::error::{ApiError, Code};

/// A channel as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub name: String,
    /// Version it points at (`null` before the first release).
    pub version: Option<String>,
    /// Version it pointed at before (rollback target; served outside the rollout bucket).
    pub previous_version: Option<String>,
    /// Share of clients offered `version` (the rest keep `previousVersion`).
    pub rollout_percent: i16,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const SELECT: &str = "SELECT c.name, c.release_id, r.version, p.version AS previous_version,
        c.rollout_percent, c.updated_at
    FROM channels c
    LEFT JOIN releases r ON r.id = c.release_id
    LEFT JOIN releases p ON p.id = c.previous_release_id";

fn view(r: &Row) -> ChannelView {
    ChannelView {
        name: r.get("name"),
        version: r.get("version"),
        previous_version: r.get("previous_version"),
        rollout_percent: r.get("rollout_percent"),
        updated_at: r.get("updated_at"),
    }
}

/// Every channel of a product.
pub async fn list(db: &impl Sql, product_id: i64) -> Result<Vec<ChannelView>, ApiError> {
    let rows = db
        .query(
            &format!("{SELECT} WHERE c.product_id = $1 ORDER BY array_position(ARRAY['stable','beta','dev'], c.name)"),
            &[(&product_id, Type::INT8)],
        )
        .await?;
    Ok(rows.iter().map(view).collect())
}

/// A requested pointer move.
pub struct Move<'a> {
    /// Channel name (already validated).
    pub channel: &'a str,
    pub target: &'a Release,
    /// Compare-and-swap: the version the caller believes is current (`Some(None)`: empty).
    pub expected: Option<Option<String>>,
    /// Rollout percent for the target (default 100).
    pub rollout_percent: Option<i16>,
    /// Skip the platform-coverage check (audited).
    pub force: bool,
}

/// `{os}-{arch}` platforms a release has artifacts for.
async fn platforms_of(db: &impl Sql, release_id: i64) -> Result<BTreeSet<String>, ApiError> {
    let rows = db
        .query(
            "SELECT DISTINCT os || '-' || arch FROM artifacts WHERE release_id = $1",
            &[(&release_id, Type::INT8)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Moves the pointer inside the caller's transaction: locks the channel row, checks the
/// expected version, yank state and platform coverage, updates, and audits.
pub async fn move_pointer(
    db: &impl Sql,
    product: &Product,
    m: &Move<'_>,
    actor: &Actor,
) -> Result<ChannelView, ApiError> {
    let (current_id, current_version, _) = locked_row(db, product, m.channel).await?;

    if let Some(expected) = &m.expected
        && expected != &current_version
    {
        return Err(ApiError::conflict(
            Code::ChannelMoved,
            format!(
                "{}/{} points at {} now, not {}; re-read the channel and retry",
                product.slug,
                m.channel,
                current_version.as_deref().unwrap_or("nothing"),
                expected.as_deref().unwrap_or("nothing"),
            ),
        )
        .with_extra(serde_json::json!({ "currentVersion": current_version })));
    }
    if m.target.yanked_at.is_some() {
        return Err(ApiError::conflict(
            Code::ReleaseYanked,
            format!(
                "{} {} is yanked; unyank it before pointing a channel at it",
                product.slug, m.target.version
            ),
        ));
    }

    let mut served: BTreeSet<String> = product.required_platforms.iter().cloned().collect();
    if let Some(id) = current_id {
        served.extend(platforms_of(db, id).await?);
    }
    let offered = platforms_of(db, m.target.id).await?;
    let missing: Vec<String> = served.difference(&offered).cloned().collect();
    if !missing.is_empty() && !m.force {
        return Err(ApiError::unprocessable(
            Code::PlatformsMissing,
            format!(
                "{} {} has no artifact for {} which {}/{} serves today; publish them or pass force",
                product.slug,
                m.target.version,
                missing.join(", "),
                product.slug,
                m.channel
            ),
        )
        .with_extra(serde_json::json!({ "missing": missing })));
    }

    let rollout = m.rollout_percent.unwrap_or(100);
    let row = db
        .query_one(
            &format!(
                "WITH moved AS (
                    UPDATE channels SET
                        previous_release_id = CASE WHEN release_id IS DISTINCT FROM $3 THEN release_id ELSE previous_release_id END,
                        release_id = $3, rollout_percent = $4, updated_at = now(), updated_by = $5
                    WHERE product_id = $1 AND name = $2
                    RETURNING *)
                 {} WHERE true",
                SELECT.replace("FROM channels c", "FROM moved c")
            ),
            &[
                (&product.id, Type::INT8),
                (&m.channel, Type::TEXT),
                (&m.target.id, Type::INT8),
                (&rollout, Type::INT2),
                (&actor.name, Type::TEXT),
            ],
        )
        .await?;
    audit::record(
        db,
        actor,
        "channel.move",
        &format!("{}/{}", product.slug, m.channel),
        serde_json::json!({
            "from": current_version,
            "to": m.target.version,
            "rolloutPercent": rollout,
            "forced": m.force && !missing.is_empty(),
            "missingPlatforms": if m.force { missing } else { Vec::new() },
        }),
    )
    .await?;
    Ok(view(&row))
}

/// Locks a channel's row until the caller's transaction ends and reads what it serves: the
/// release id and version, and the rollout (`None`: the channel has no release yet).
///
/// Two statements on purpose. Under READ COMMITTED a `FOR UPDATE` that waited for a
/// concurrent move re-reads the locked row, but a table joined to it is still read with the
/// statement's older snapshot: a release published and pointed at by that same concurrent
/// move would join as NULL. The second statement takes a fresh snapshot, after the lock.
async fn locked_row(
    db: &impl Sql,
    product: &Product,
    channel: &str,
) -> Result<(Option<i64>, Option<String>, i16), ApiError> {
    let row = db
        .query_opt(
            "SELECT release_id, rollout_percent FROM channels WHERE product_id = $1 AND name = $2 FOR UPDATE",
            &[(&product.id, Type::INT8), (&channel, Type::TEXT)],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} has no channel {channel}", product.slug)))?;
    let release_id: Option<i64> = row.get(0);
    let version = match release_id {
        Some(id) => db
            .query_opt(
                "SELECT version FROM releases WHERE id = $1",
                &[(&id, Type::INT8)],
            )
            .await?
            .map(|r| r.get(0)),
        None => None,
    };
    Ok((release_id, version, row.get(1)))
}

/// The version a channel serves and its rollout, with the channel row locked until the
/// caller's transaction ends (`None` version: the channel has no release yet).
pub async fn lock(
    db: &impl Sql,
    product: &Product,
    channel: &str,
) -> Result<(Option<String>, i16), ApiError> {
    let (_, version, rollout) = locked_row(db, product, channel).await?;
    Ok((version, rollout))
}

/// Channels that serve `release_id` (as current, or as the previous release during a rollout).
pub async fn pointing_at(db: &impl Sql, release_id: i64) -> Result<Vec<String>, ApiError> {
    let rows = db
        .query(
            "SELECT name FROM channels WHERE release_id = $1
                OR (previous_release_id = $1 AND rollout_percent < 100) ORDER BY name",
            &[(&release_id, Type::INT8)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
