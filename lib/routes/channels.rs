//! Channel reads and pointer moves (promote / roll back).

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::public_cache;
use super::publish::rollout;
use super::releases::ProductPath;
use crate::domain::audit::Actor;
use crate::domain::channels::{self, ChannelView, Move};
use crate::domain::ids::{Slug, Version, parse_channel};
use crate::domain::tokens::Scope;
use crate::domain::{products, releases};
use crate::http::extract::{Caller, Json, NoQuery, Path, Query};
use crate::http::{ApiError, ApiResult, respond};
use crate::state::AppState;

/// Every channel of a product: version, previous version, rollout, last move.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{product}/channels",
    operation_id = "listChannels",
    tag = "releases",
    summary = "Every channel of a product.",
    params(ProductPath),
    responses((status = 200, description = "The channels.", body = ChannelList)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ProductPath>,
    _: Query<NoQuery>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let product = products::get(&conn, path.product.as_str()).await?;
    let channels = channels::list(&conn, product.id).await?;
    let body = ChannelList {
        product: product.slug,
        channels,
    };
    respond::cached_json(&body, public_cache(&state))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    product: String,
    channels: Vec<ChannelView>,
}

/// `{product}/channels/{channel}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    product: Slug,
    /// Channel name (`stable`, `beta` or `dev`; any other is 404).
    channel: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ChannelMove)]
pub struct MoveBody {
    /// Release to point at.
    #[schema(pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$", max_length = 129)]
    version: String,
    #[serde(default, deserialize_with = "expected_version")]
    /// Compare-and-swap: the version the channel must point at now (`null`: empty).
    expected_version: Option<Option<String>>,
    /// Share of clients offered the release (updater).
    #[schema(minimum = 0, maximum = 100)]
    rollout_percent: Option<i16>,
    #[serde(default)]
    /// Move even when platforms are missing (audited).
    force: bool,
}

/// A channel move's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MoveQuery {
    /// `true` (or `1`): check the move without making it. Every check of a real move runs
    /// (compare-and-swap, yank state, platform coverage, scopes) and the answer is the
    /// channel as the move would leave it, but nothing changes and nothing is audited.
    #[param(pattern = "^(1|true|0|false)$")]
    dry_run: Option<String>,
}

/// `expectedVersion`: absent = no check; `null` = the channel must be empty.
fn expected_version<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Promote or roll back: points a channel at a published release, with compare-and-swap on
/// `expectedVersion` and the platform coverage check (`force` skips it, audited). With
/// `dryRun` the move runs in its transaction exactly as it would (the same statements, so the
/// database's own checks too) and is rolled back: what a console shows before an operator
/// confirms is what the real move would do.
#[utoipa::path(
    put,
    path = "/api/v1/releases/{product}/channels/{channel}",
    operation_id = "moveChannel",
    tag = "ci",
    summary = "Promote or roll back: point a channel at a release (compare-and-swap).",
    params(ChannelPath, MoveQuery),
    request_body = MoveBody,
    responses((status = 200, description = "The channel, moved (with `dryRun`: as it would be, unchanged).", body = ChannelMoved)),
    security(("appToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn put(
    Caller(principal): Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<ChannelPath>,
    Query(query): Query<MoveQuery>,
    Json(body): Json<MoveBody>,
) -> ApiResult {
    let dry_run = match query.dry_run.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(ApiError::invalid("dryRun must be true, 1, false or 0")),
    };
    let channel = parse_channel(&path.channel)?;
    let version = Version::parse(&body.version)?.to_string();
    let expected = body
        .expected_version
        .map(|e| {
            e.map(|v| Version::parse_field("expectedVersion", &v).map(|v| v.to_string()))
                .transpose()
        })
        .transpose()?;
    let rollout_percent = rollout(body.rollout_percent)?;

    principal.require_app(path.product.as_str(), Scope::Promote, Some(channel))?;
    let mut conn = state.db.conn().await?;
    let product = products::get(&conn, path.product.as_str()).await?;
    let tx = conn.transaction().await?;
    let target = releases::get(&tx, product.id, &product.slug, &version).await?;
    let view = channels::move_pointer(
        &tx,
        &product,
        &Move {
            channel,
            target: &target,
            expected,
            rollout_percent,
            force: body.force,
        },
        &Actor::from(&principal),
    )
    .await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    let body = ChannelMoved {
        product: product.slug,
        channel: view,
        dry_run,
    };
    respond::json(StatusCode::OK, &body)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMoved {
    product: String,
    /// The channel after the move (with `dryRun`: as the move would leave it).
    channel: ChannelView,
    /// `true` when this was a dry run: nothing changed and nothing was audited.
    dry_run: bool,
}
