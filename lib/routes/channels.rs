//! Channel reads and pointer moves (promote / roll back).

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::publish::rollout;
use super::releases::public_cache;
use crate::domain::audit::Actor;
use crate::domain::channels::{self, Move};
use crate::domain::ids::{Slug, Version, parse_channel};
use crate::domain::tokens::{self, Scope};
use crate::domain::{products, releases};
use crate::http::{ApiRequest, ApiResult, respond};
use crate::state::AppState;

/// `GET /api/v1/releases/{product}/channels`.
pub async fn list(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let slug = Slug::parse("product", req.param("product"))?;
    let conn = state.db.conn().await?;
    let product = products::get(&conn, slug.as_str()).await?;
    let list = channels::list(&conn, product.id).await?;
    respond::cached_json(
        &req,
        &json!({ "product": product.slug, "channels": list }),
        public_cache(&state),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ChannelMove)]
pub(crate) struct MoveBody {
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

/// `expectedVersion`: absent = no check; `null` = the channel must be empty.
fn expected_version<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PUT /api/v1/releases/{product}/channels/{channel}`: promote or roll back.
pub async fn put(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let mut conn = state.db.conn().await?;
    // Credentials first: without valid ones, the body is not even parsed.
    let principal = tokens::authenticate_request(&conn, &state.config, &req).await?;
    let slug = Slug::parse("product", req.param("product"))?;
    let channel = parse_channel(req.param("channel"))?;
    let body: MoveBody = req.json()?;
    let version = Version::parse(&body.version)?.to_string();
    let expected = body
        .expected_version
        .map(|e| {
            e.map(|v| Version::parse_field("expectedVersion", &v).map(|v| v.to_string()))
                .transpose()
        })
        .transpose()?;
    let rollout_percent = rollout(body.rollout_percent)?;

    principal.require_app(slug.as_str(), Scope::Promote, Some(channel))?;
    let product = products::get(&conn, slug.as_str()).await?;
    let tx = conn.transaction().await?;
    let target = releases::get(&tx, product.id, &product.slug, &version).await?;
    let actor = Actor {
        name: principal.actor(),
        token_id: Some(principal.token_id),
    };
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
        &actor,
    )
    .await?;
    tx.commit().await?;
    respond::json(
        StatusCode::OK,
        &json!({ "product": product.slug, "channel": view }),
    )
}
