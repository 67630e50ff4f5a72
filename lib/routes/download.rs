//! Download redirects: 302 to a short-lived presigned GET. The Hub never proxies bytes.
//! Downloads are counted per artifact and day after the response, never delaying or failing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use http::Method;
use serde::Deserialize;

use super::consumers::{
    ClientIdHeader, LatestPath, LatestQuery, RolloutClient, record_latest, resolve_latest,
};
use crate::domain::ids::parse_filename;
use crate::domain::releases;
use crate::http::extract::{Client, Meta, NoQuery, Path, Query};
use crate::http::{ApiError, ApiResult, RequestMeta, quoted, respond};
use crate::state::AppState;

/// Counts one download in the background. Increments are batched per instance
/// (`db::tally`): the request that finds no write in flight writes everything pending, one
/// statement per batch, until nothing is left; the others only add to the batch.
fn count(state: &Arc<AppState>, method: &Method, meta: &RequestMeta, artifact_id: i64) {
    if method != Method::GET || !state.db.tally().add(artifact_id) {
        return;
    }
    let state = state.clone();
    let request_id = meta.request_id.clone();
    meta.background.run(async move {
        loop {
            let (ids, counts) = state.db.tally().take();
            if ids.is_empty() {
                break;
            }
            let result = async {
                let conn = state.db.conn().await?;
                releases::count_downloads(&conn, &ids, &counts).await?;
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
    });
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
    method: &Method,
    meta: &RequestMeta,
    artifact_id: i64,
    key: &str,
    filename: &str,
) -> ApiResult {
    let url = presigned_url(state, key, filename).await?;
    count(state, method, meta, artifact_id);
    respond::redirect(&url)
}

/// `{downloadId}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct DownloadPath {
    /// Artifact download id.
    #[param(pattern = "^[A-Za-z0-9_]{1,64}$")]
    download_id: String,
}

/// A 302 to a short-lived presigned GET of the artifact (`Content-Disposition: attachment`);
/// works for yanked releases too, so pinned links keep working.
#[utoipa::path(
    get,
    path = "/api/v1/download/{downloadId}",
    operation_id = "download",
    tag = "downloads",
    summary = "Redirect to a short-lived presigned GET of the artifact.",
    params(DownloadPath),
    responses((status = 302, description = "Download from `Location`.", headers(("Location" = String, description = "The presigned URL.")))),
)]
pub async fn by_id(
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    method: Method,
    Path(path): Path<DownloadPath>,
    _: Query<NoQuery>,
) -> ApiResult {
    let id = path.download_id.as_str();
    let not_found = || ApiError::not_found(format!("no download {}", quoted(id)));
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(not_found());
    }
    let conn = state.db.conn().await?;
    let (artifact_id, storage_key, filename) =
        releases::download(&conn, id).await?.ok_or_else(not_found)?;
    redirect(
        &state,
        &method,
        &meta,
        artifact_id,
        &storage_key,
        &parse_filename(&filename)?,
    )
    .await
}

/// A 302 to the artifact of the release this client gets from the channel (the rollout
/// rule), e.g. `/download/runner/latest/linux/x86_64`.
#[utoipa::path(
    get,
    path = "/download/{product}/latest/{os}/{arch}",
    operation_id = "downloadLatest",
    tag = "downloads",
    summary = "Redirect to the artifact of the channel's release for a platform.",
    params(LatestPath, LatestQuery, ("x-atlas-client-id" = Option<String>, Header, description = "The installation id for staged rollouts (see `clientId`).", pattern = "^[\\x21-\\x7e]{1,200}$")),
    responses((status = 302, description = "Download from `Location`.", headers(("Location" = String, description = "The presigned URL.")))),
)]
pub async fn latest(
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    Client(address): Client,
    method: Method,
    client_id: ClientIdHeader,
    Path(path): Path<LatestPath>,
    Query(query): Query<LatestQuery>,
) -> ApiResult {
    let client = RolloutClient::of(&client_id, query.client_id.as_deref(), address, true)?;
    let (channel, latest, artifact, _) = resolve_latest(&state, &path, &query, &client).await?;
    if method == Method::GET {
        record_latest(&state, &meta, &path, channel, &latest, &artifact, &client);
    }
    redirect(
        &state,
        &method,
        &meta,
        artifact.artifact_id,
        &artifact.storage_key,
        &artifact.filename,
    )
    .await
}
