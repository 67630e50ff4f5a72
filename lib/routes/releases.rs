//! Release reads (latest, history, detail) and yank / unyank.

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::consumers::{
    ClientIdHeader, LatestPath, LatestQuery, RolloutClient, record_latest, resolve_latest,
};
use super::public_cache;
use crate::domain::audit::{self, Actor};
use crate::domain::ids::{Slug, Version, is_hidden_control};
use crate::domain::lookup::LatestArtifact;
use crate::domain::page::PageQuery;
use crate::domain::releases::{self, ReleaseView};
use crate::domain::signature;
use crate::domain::tokens::Scope;
use crate::domain::{channels, products};
use crate::error::{ApiError, Code};
use crate::http::extract::{Caller, Client, Meta, NoBody, NoQuery, OptionalJson, Path, Query};
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

/// What a channel serves for a platform: the release this client gets (staged rollouts)
/// and its artifact (`kind`, else the primary one).
#[utoipa::path(
    get,
    path = "/api/v1/releases/{product}/latest/{os}/{arch}",
    operation_id = "latestRelease",
    tag = "releases",
    summary = "What a channel serves for a platform.",
    params(LatestPath, LatestQuery, ("x-atlas-client-id" = Option<String>, Header, description = "The installation id for staged rollouts (see `clientId`).", pattern = "^[\\x21-\\x7e]{1,200}$")),
    responses((status = 200, description = "The release and its artifact.", body = LatestRelease)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn latest(
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    Client(address): Client,
    client_id: ClientIdHeader,
    Path(path): Path<LatestPath>,
    Query(query): Query<LatestQuery>,
) -> ApiResult {
    let client = RolloutClient::of(&client_id, query.client_id.as_deref(), address, true)?;
    let (channel, latest, artifact, staged) =
        resolve_latest(&state, &path, &query, &client).await?;
    record_latest(&state, &meta, &path, channel, &latest, &artifact, &client);
    let body = LatestRelease {
        product: path.product.as_str(),
        channel,
        version: &latest.version,
        notes: &latest.notes,
        published_at: latest.published_at,
        artifact: &artifact,
        artifacts: &latest.artifacts,
    };
    respond::cached_json(&body, client.cache(&state, staged))
}

/// What a channel serves for a platform.
// Serialized straight from borrowed data (no intermediate `serde_json::Value`): this is
// the hottest answer.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestRelease<'a> {
    product: &'a str,
    channel: &'a str,
    version: &'a str,
    notes: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    published_at: time::OffsetDateTime,
    /// The requested kind, else the platform's primary artifact.
    artifact: &'a LatestArtifact,
    /// Every artifact of the release for the platform, primary first.
    artifacts: &'a [LatestArtifact],
}

/// A product's releases, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{product}",
    operation_id = "listReleases",
    tag = "releases",
    summary = "Release history, newest first.",
    params(ProductPath, PageQuery),
    responses((status = 200, description = "A page of releases.", body = ReleaseList)),
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
    let next_cursor = (page.len() as i64 == limit)
        .then(|| page.last().map(|(r, _)| r.id.to_string()))
        .flatten();
    let releases = page
        .iter()
        .map(|(r, count)| ReleaseSummary {
            version: &r.version,
            notes: &r.notes,
            published_at: r.published_at,
            yanked: r.yanked_at.is_some(),
            yank_reason: r.yank_reason.as_deref(),
            artifact_count: *count,
        })
        .collect();
    let body = ReleaseList {
        product: &product.slug,
        updater_public_key: product
            .updater_public_key
            .as_deref()
            .map(signature::tauri_pubkey),
        releases,
        next_cursor,
    };
    respond::cached_json(&body, public_cache(&state))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseList<'a> {
    product: &'a str,
    /// The key the product's updater signatures are made with, as Tauri's `pubkey`
    /// setting takes it (base64 of the minisign `.pub` file); `null` when none is set.
    /// `atlas-hub release publish` checks each `.sig` against it before uploading.
    updater_public_key: Option<String>,
    releases: Vec<ReleaseSummary<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// A release in the history.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary<'a> {
    version: &'a str,
    notes: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    published_at: time::OffsetDateTime,
    yanked: bool,
    /// Why it was yanked, as the yank said (`null`: not yanked, or no reason given).
    yank_reason: Option<&'a str>,
    artifact_count: i64,
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

/// The body a yank may carry (none at all is a yank without a reason).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = YankBody)]
pub struct YankBody {
    /// Why it is withdrawn, shown with the release and in the audit log: one line of 1 to
    /// 500 characters, no control characters. Yanking a yanked release again with a reason
    /// replaces it; without one it keeps the one it has.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    reason: Option<String>,
}

/// A yank's reason: trimmed, 1 to 500 characters, on one line and without the control or
/// bidirectional control characters that would make it read as something else.
fn parse_reason(s: &str) -> Result<String, ApiError> {
    let reason = s.trim();
    let count = reason.chars().count();
    if count == 0 || count > 500 {
        return Err(ApiError::invalid(format!(
            "reason must be 1 to 500 characters, not {count}"
        )));
    }
    if let Some(c) = reason.chars().find(|c| is_hidden_control(*c)) {
        return Err(ApiError::invalid(format!(
            "reason contains the control character U+{:04X}; give it as one line of plain text",
            c as u32
        )));
    }
    Ok(reason.to_owned())
}

async fn set_yanked(
    state: &AppState,
    caller: &Caller,
    path: &ReleasePath,
    yanked: bool,
    reason: Option<String>,
) -> ApiResult {
    let Caller(principal) = caller;
    principal.require_app(path.product.as_str(), Scope::Yank, None)?;
    let reason = reason.as_deref().map(parse_reason).transpose()?;
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
    // A new reason for a release already yanked is a change too, audited like the yank.
    let changed = release.yanked_at.is_some() != yanked
        || (yanked && reason.is_some() && reason != release.yank_reason);
    let release = releases::set_yanked(&tx, release.id, yanked, reason.as_deref()).await?;
    if changed {
        let (action, detail) = if yanked {
            ("release.yank", json!({ "reason": release.yank_reason }))
        } else {
            ("release.unyank", json!({}))
        };
        audit::record(
            &tx,
            &Actor::from(principal),
            action,
            &format!("{}@{version}", product.slug),
            detail,
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
/// download links keep working. Refused while a channel serves it. The body is optional (no
/// body, `{}`, or `{"reason": …}`), so scripts that yank without one keep working.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{product}/{version}/yank",
    operation_id = "yankRelease",
    tag = "ci",
    summary = "Yank: drop out of latest, updater and channel targets.",
    params(ReleasePath),
    request_body(content = Option<YankBody>, description = "Optional: why (no body is a yank without a reason)."),
    responses((status = 200, description = "The release, yanked.", body = ReleaseView)),
    security(("appToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415]))),
)]
pub async fn yank(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<ReleasePath>,
    _: Query<NoQuery>,
    OptionalJson(body): OptionalJson<YankBody>,
) -> ApiResult {
    let reason = body.and_then(|b| b.reason);
    set_yanked(&state, &caller, &path, true, reason).await
}

/// Brings a yanked release back (and clears its yank's reason).
#[utoipa::path(
    post,
    path = "/api/v1/releases/{product}/{version}/unyank",
    operation_id = "unyankRelease",
    tag = "ci",
    summary = "Undo a yank.",
    params(ReleasePath),
    responses((status = 200, description = "The release, not yanked.", body = ReleaseView)),
    security(("appToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415]))),
)]
pub async fn unyank(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<ReleasePath>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    set_yanked(&state, &caller, &path, false, None).await
}
