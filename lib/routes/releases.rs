//! Release reads (latest, history, detail) and yank / unyank.

use std::sync::Arc;

use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::consumers::{LatestPath, LatestQuery, RolloutClient, resolve_latest};
use super::openapi::doc;
use super::public_cache;
use crate::domain::audit::{self, Actor};
use crate::domain::ids::{Slug, Version};
use crate::domain::lookup::LatestArtifact;
use crate::domain::page::PageQuery;
use crate::domain::releases::{self, ReleaseView};
use crate::domain::signature;
use crate::domain::tokens::Scope;
use crate::domain::{channels, products};
use crate::error::{ApiError, Code};
use crate::http::extract::{Caller, Client, NoBody, NoQuery, Path, Query};
use crate::http::{ApiResult, respond};
use crate::state::AppState;

/// `{product}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProductPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub product: Slug,
}

/// `{product}/{version}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReleasePath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub product: Slug,
    /// SemVer version (a leading `v` is accepted).
    #[param(value_type = String, pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$", max_length = 129)]
    pub version: Version,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What a channel serves for a platform: the release this client gets (staged rollouts)
/// and its artifact (`kind`, else the primary one).
#[utoipa::path(
    get,
    path = "/api/v1/releases/{product}/latest/{os}/{arch}",
    operation_id = "latestRelease",
    tag = "releases",
    summary = "What a channel serves for a platform.",
    params(LatestPath, LatestQuery, ("x-atlas-client-id" = Option<String>, Header, description = "The installation id for staged rollouts (see `clientId`).", pattern = "^[\\x21-\\x7e]{1,200}$")),
    responses((status = 200, description = "The release and its artifact.", body = doc::LatestRelease)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn latest(
    State(state): State<Arc<AppState>>,
    Client(address): Client,
    headers: HeaderMap,
    Path(path): Path<LatestPath>,
    Query(query): Query<LatestQuery>,
) -> ApiResult {
    let client = RolloutClient::of(&headers, query.client_id.as_deref(), address, true)?;
    let (channel, latest, artifact, staged) =
        resolve_latest(&state, &path, &query, &client).await?;
    /// Serialized straight from borrowed data (no intermediate `serde_json::Value`).
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        product: &'a str,
        channel: &'a str,
        version: &'a str,
        notes: &'a str,
        published_at: String,
        artifact: &'a LatestArtifact,
        artifacts: &'a [LatestArtifact],
    }
    let body = Body {
        product: path.product.as_str(),
        channel,
        version: &latest.version,
        notes: &latest.notes,
        published_at: rfc3339(latest.published_at),
        artifact: &artifact,
        artifacts: &latest.artifacts,
    };
    respond::cached_json(&body, client.cache(&state, staged))
}

/// A product's releases, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{product}",
    operation_id = "listReleases",
    tag = "releases",
    summary = "Release history, newest first.",
    params(ProductPath, PageQuery),
    responses((status = 200, description = "A page of releases.", body = doc::ReleaseList)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ProductPath>,
    Query(page): Query<PageQuery>,
) -> ApiResult {
    let (cursor, limit) = page.parse()?;
    let conn = state.db.conn().await?;
    let product = products::get(&conn, path.product.as_str()).await?;
    let page = releases::page(&conn, product.id, cursor, limit).await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|(r, _)| r.id.to_string()))
        .flatten();
    let items: Vec<_> = page
        .iter()
        .map(|(r, count)| {
            json!({
                "version": r.version, "notes": r.notes, "publishedAt": rfc3339(r.published_at),
                "yanked": r.yanked_at.is_some(), "artifactCount": count,
            })
        })
        .collect();
    respond::cached_json(
        &json!({
            "product": product.slug,
            "updaterPublicKey": product.updater_public_key.as_deref().map(signature::tauri_pubkey),
            "releases": items, "nextCursor": next,
        }),
        public_cache(&state),
    )
}

/// One release with every artifact and its yank state.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{product}/{version}",
    operation_id = "getRelease",
    tag = "releases",
    summary = "One release with its artifacts and yank state.",
    params(ReleasePath),
    responses((status = 200, description = "The release.", body = ReleaseView)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn detail(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ReleasePath>,
    _: Query<NoQuery>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let product = products::get(&conn, path.product.as_str()).await?;
    let release =
        releases::get(&conn, product.id, &product.slug, &path.version.to_string()).await?;
    let artifacts = releases::artifacts(&conn, release.id).await?;
    respond::cached_json(
        &ReleaseView::new(&state.config.hub_url, &product.slug, &release, &artifacts),
        public_cache(&state),
    )
}

async fn set_yanked(
    state: &AppState,
    caller: &Caller,
    path: &ReleasePath,
    yanked: bool,
) -> ApiResult {
    let Caller(principal) = caller;
    principal.require_app(path.product.as_str(), Scope::Yank, None)?;
    let version = path.version.to_string();
    let mut conn = state.db.conn().await?;
    let product = products::get(&conn, path.product.as_str()).await?;
    let tx = conn.transaction().await?;
    let release = releases::get_for_update(&tx, product.id, &product.slug, &version).await?;
    if yanked {
        let pointing = channels::pointing_at(&tx, release.id).await?;
        if !pointing.is_empty() {
            return Err(ApiError::conflict(
                Code::ChannelPointsHere,
                format!(
                    "{} {version} is served by channel {}; move the channel first",
                    product.slug,
                    pointing.join(", ")
                ),
            )
            .with_extra(json!({ "channels": pointing })));
        }
    }
    let changed = release.yanked_at.is_some() != yanked;
    let release = releases::set_yanked(&tx, release.id, yanked).await?;
    if changed {
        let action = if yanked {
            "release.yank"
        } else {
            "release.unyank"
        };
        audit::record(
            &tx,
            &Actor::from(principal),
            action,
            &format!("{}@{version}", product.slug),
            json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    let artifacts = releases::artifacts(&conn, release.id).await?;
    respond::json(
        StatusCode::OK,
        &ReleaseView::new(&state.config.hub_url, &product.slug, &release, &artifacts),
    )
}

/// Withdraws a release from latest lookups, the updater and channel targets; pinned
/// download links keep working. Refused while a channel serves it.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{product}/{version}/yank",
    operation_id = "yankRelease",
    tag = "ci",
    summary = "Yank: drop out of latest, updater and channel targets.",
    params(ReleasePath),
    responses((status = 200, description = "The release, yanked.", body = ReleaseView)),
    security(("appToken" = [])),
    extensions(("x-problems" = json!([409, 413, 415]))),
)]
pub async fn yank(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<ReleasePath>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    set_yanked(&state, &caller, &path, true).await
}

/// Brings a yanked release back.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{product}/{version}/unyank",
    operation_id = "unyankRelease",
    tag = "ci",
    summary = "Undo a yank.",
    params(ReleasePath),
    responses((status = 200, description = "The release, not yanked.", body = ReleaseView)),
    security(("appToken" = [])),
    extensions(("x-problems" = json!([409, 413, 415]))),
)]
pub async fn unyank(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<ReleasePath>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    set_yanked(&state, &caller, &path, false).await
}
