//! `GET /api/health`: database reachability and schema version; `?deep=1` checks storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::migrate;
use crate::http::extract::{Meta, Query};
use crate::http::{ApiError, ApiResult, respond};
use crate::state::AppState;

/// `GET /api/health`'s query.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// Also check storage (`1` or `true`).
    #[param(pattern = "^(1|true|0|false)$")]
    deep: Option<String>,
}

/// 200 when the database answers and its schema is not behind the code, else 503.
#[utoipa::path(
    get,
    path = "/api/health",
    operation_id = "health",
    tag = "operations",
    summary = "Database reachability and schema version; `deep=1` also checks storage.",
    params(HealthQuery),
    responses(
        (status = 200, description = "Healthy.", body = Health),
        (status = 503, description = "The database or storage is unreachable, or the schema is behind the code.", body = Health),
    ),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    Query(query): Query<HealthQuery>,
) -> ApiResult {
    let deep = match query.deep.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(ApiError::invalid("deep must be 1, true, 0 or false")),
    };
    let expected = migrate::expected_version();
    let checked = match state.db.raw_conn().await {
        Ok(conn) => migrate::current_version(&conn).await,
        Err(e) => Err(e),
    };
    let (database, current) = match checked {
        Ok(v) => ("ok".to_owned(), Some(v)),
        Err(e) => {
            eprintln!(
                "{}",
                json!({"level": "error", "requestId": meta.request_id, "check": "database",
                       "code": e.code, "cause": e.cause.as_deref().unwrap_or(&e.detail)})
            );
            (format!("error: {}", e.code), None)
        }
    };
    let mut healthy = current.is_some_and(|v| v >= expected);
    let schema = match current {
        Some(v) if v < expected => "behind",
        Some(_) => "ok",
        None => "unknown",
    };
    let mut checks = BTreeMap::from([("database", database), ("schema", schema.to_owned())]);
    if deep {
        let storage = match state.storage.check().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => {
                healthy = false;
                let cause = e.cause();
                eprintln!(
                    "{}",
                    json!({"level": "error", "requestId": meta.request_id, "check": "storage", "cause": cause})
                );
                "error: storage_unavailable".to_owned()
            }
        };
        checks.insert("storage", storage);
    }
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        version: crate::VERSION,
        schema: SchemaVersions { current, expected },
        checks,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond::json(status, &body)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    version: &'static str,
    schema: SchemaVersions,
    /// `database`, `schema` and (deep) `storage`: `ok` or `error: <code>`.
    checks: BTreeMap<&'static str, String>,
}

/// Applied and expected migration versions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SchemaVersions {
    current: Option<i32>,
    expected: i32,
}
