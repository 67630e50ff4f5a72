//! Download redirects: 302 to a short-lived presigned GET. The Hub never proxies bytes.
//! Downloads are counted per artifact and day after the response, never delaying or failing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;

use super::releases::LatestQuery;
use crate::db::Sql;
use crate::domain::ids::parse_filename;
use crate::http::{ApiError, ApiRequest, ApiResult, quoted, respond};
use crate::state::AppState;

/// Counts one download in the background. Increments are batched per instance
/// (`db::tally`): the request that finds no write in flight writes everything pending, one
/// statement per batch, until nothing is left; the others only add to the batch.
fn count(state: &Arc<AppState>, req: &ApiRequest, artifact_id: i64) {
    if req.method != http::Method::GET || !state.db.tally().add(artifact_id) {
        return;
    }
    let state = state.clone();
    let request_id = req.request_id().to_owned();
    (req.meta.background)(Box::pin(async move {
        loop {
            let (ids, counts) = state.db.tally().take();
            if ids.is_empty() {
                break;
            }
            let result = async {
                let conn = state.db.conn().await?;
                conn.query(
                    "INSERT INTO download_counts (artifact_id, day, count)
                     SELECT a, current_date, n FROM unnest($1::int8[], $2::int8[]) AS t(a, n)
                     ON CONFLICT (artifact_id, day) DO UPDATE SET count = download_counts.count + EXCLUDED.count",
                    &[(&ids, Type::INT8_ARRAY), (&counts, Type::INT8_ARRAY)],
                )
                .await?;
                Ok::<_, ApiError>(())
            }
            .await;
            if let Err(e) = result {
                eprintln!(
                    "{}",
                    serde_json::json!({"level": "warn", "requestId": request_id, "event": "download_count_failed",
                                       "downloads": counts.iter().sum::<i64>(), "code": e.code, "cause": e.cause})
                );
            }
        }
    }));
}

/// Download URLs presigned in this instance (one per process) in the last few seconds, by
/// object and file name. Presigning costs ~30 µs of CPU (most of a download redirect), and
/// a hot artifact is asked for many times a second: a URL is reused while at least 90% of
/// its lifetime is left (for a tenth of `ATLAS_DOWNLOAD_URL_TTL_SECS`, at most 30 s).
/// Download URLs are not secrets (the route needs no token), so sharing one is harmless.
struct RecentUrls {
    urls: Mutex<HashMap<String, (String, Instant)>>,
}

/// Bound on remembered URLs; past it, expired ones are dropped (all, if none is expired).
const RECENT_URLS_MAX: usize = 8192;

async fn presigned_url(state: &AppState, key: &str, filename: &str) -> Result<String, ApiError> {
    static RECENT: OnceLock<RecentUrls> = OnceLock::new();
    let recent = RECENT.get_or_init(|| RecentUrls {
        urls: Mutex::new(HashMap::new()),
    });
    let ttl = state.config.download_url_ttl;
    let reuse = (ttl / 10).min(Duration::from_secs(30));
    let id = format!("{key}\n{filename}");
    if let Some((url, at)) = recent
        .urls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        && at.elapsed() < reuse
    {
        return Ok(url.clone());
    }
    let url = state.storage.presign_download(key, filename, ttl).await?;
    let mut urls = recent.urls.lock().unwrap_or_else(|e| e.into_inner());
    if urls.len() >= RECENT_URLS_MAX {
        urls.retain(|_, (_, at)| at.elapsed() < reuse);
        if urls.len() >= RECENT_URLS_MAX {
            urls.clear();
        }
    }
    urls.insert(id, (url.clone(), Instant::now()));
    Ok(url)
}

async fn redirect(
    state: &Arc<AppState>,
    req: &ApiRequest,
    artifact_id: i64,
    key: &str,
    filename: &str,
) -> ApiResult {
    let url = presigned_url(state, key, filename).await?;
    count(state, req, artifact_id);
    respond::redirect(&url)
}

/// `GET|HEAD /api/v1/download/{downloadId}`: works for yanked releases too.
pub async fn by_id(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let id = req.param("downloadId");
    let not_found = || ApiError::not_found(format!("no download {}", quoted(id)));
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
    let (_, artifact, _) = q.resolve(&state).await?;
    redirect(
        &state,
        &req,
        artifact.artifact_id,
        &artifact.storage_key,
        &artifact.filename,
    )
    .await
}
