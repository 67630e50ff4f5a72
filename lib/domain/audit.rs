//! The audit log: every publish, deploy, channel move, yank and token change.

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::{Sql, Tx};
use crate::error::ApiError;

/// Who did something.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Display form (`token:ci (uuid)`, `cli:root`).
    pub name: String,
    /// The token, when a token acted.
    pub token_id: Option<Uuid>,
}

/// Appends one audit row (inside the caller's transaction).
pub async fn record(
    db: &impl Sql,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    db.query(
        "INSERT INTO audit_log (actor, token_id, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        &[
            (&actor.name, Type::TEXT),
            (&actor.token_id, Type::UUID),
            (&action, Type::TEXT),
            (&subject, Type::TEXT),
            (&detail, Type::JSONB),
        ],
    )
    .await?;
    Ok(())
}

/// Appends the audit row and commits: a write and its entry land together or not at all.
pub async fn commit(
    tx: Tx<'_>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    record(&tx, actor, action, subject, detail).await?;
    tx.commit().await
}

/// One audit entry as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Sequence number (also the pagination cursor).
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub token_id: Option<Uuid>,
    /// What (`release.publish`, `channel.move`, …).
    pub action: String,
    /// On what (`launcher@1.2.0`, `launcher/stable`, …).
    pub subject: String,
    pub detail: serde_json::Value,
}

/// A page of entries, newest first, with ids below `before` when given.
pub async fn page(db: &impl Sql, before: Option<i64>, limit: i64) -> Result<Vec<Entry>, ApiError> {
    let rows = db
        .query(
            "SELECT id, at, actor, token_id, action, subject, detail FROM audit_log
             WHERE ($1::int8 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            &[(&before, Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            id: r.get("id"),
            at: r.get("at"),
            actor: r.get("actor"),
            token_id: r.get("token_id"),
            action: r.get("action"),
            subject: r.get("subject"),
            detail: r.get("detail"),
        })
        .collect())
}
