//! Download redirects: 302 to a short-lived presigned GET. The Hub never proxies bytes.
//! Downloads are counted per artifact and day after the response, never delaying or failing it.

use std::sync::Arc;

use tokio_postgres::types::Type;

use super::releases::LatestQuery;
use crate::db::Sql;
use crate::domain::ids::parse_filename;
use crate::http::{ApiError, ApiRequest, ApiResult, respond};
use crate::state::AppState;

/// Counts one download in the background.
fn count(state: &Arc<AppState>, req: &ApiRequest, artifact_id: i64) {
    if req.method != http::Method::GET {
        return;
    }
    let state = state.clone();
    let request_id = req.request_id().to_owned();
    (req.meta.background)(Box::pin(async move {
        let result = async {
            let conn = state.db.conn().await?;
            conn.query(
                "INSERT INTO download_counts (artifact_id, day, count) VALUES ($1, current_date, 1)
                 ON CONFLICT (artifact_id, day) DO UPDATE SET count = download_counts.count + 1",
                &[(&artifact_id, Type::INT8)],
            )
            .await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = result {
            eprintln!(
                "{}",
                serde_json::json!({"level": "warn", "requestId": request_id, "event": "download_count_failed",
                                   "code": e.code, "cause": e.cause})
            );
        }
    }));
}

async fn redirect(
    state: &Arc<AppState>,
    req: &ApiRequest,
    artifact_id: i64,
    key: &str,
    filename: &str,
) -> ApiResult {
    let url = state
        .storage
        .presign_download(key, filename, state.config.download_url_ttl)
        .await?;
    count(state, req, artifact_id);
    respond::redirect(&url)
}

/// `GET|HEAD /api/v1/download/{downloadId}`: works for yanked releases too.
pub async fn by_id(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let id = req.param("downloadId");
    let not_found = || ApiError::not_found(format!("no download {id:?}"));
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(not_found());
    }
    let conn = state.db.conn().await?;
    let row = conn
        .query_opt(
            "SELECT id, storage_key, filename FROM artifacts WHERE download_id = $1",
            &[(&id, Type::TEXT)],
        )
        .await?
        .ok_or_else(not_found)?;
    let filename: String = row.get("filename");
    redirect(
        &state,
        &req,
        row.get("id"),
        row.get("storage_key"),
        &parse_filename(&filename)?,
    )
    .await
}

/// `GET|HEAD /download/{product}/latest/{os}/{arch}?channel=&kind=`.
pub async fn latest(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let q = LatestQuery::parse(&req)?;
    let conn = state.db.conn().await?;
    let (_, artifact) = q.resolve(&state, &conn).await?;
    drop(conn);
    redirect(
        &state,
        &req,
        artifact.artifact_id,
        &artifact.storage_key,
        &artifact.filename,
    )
    .await
}
