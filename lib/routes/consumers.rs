//! What the consumer routes share (the latest lookup, the latest download, the updater):
//! whom a staged rollout buckets ([`RolloutClient`]), and the latest release of a channel
//! for a platform ([`LatestPath`], [`LatestQuery`], [`resolve_latest`]).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::HeaderValue;
use http::request::Parts;
use serde::Deserialize;

use crate::domain::ids::{Arch, Kind, Os, Slug, parse_channel, platform_str};
use crate::domain::lookup::{Latest, LatestArtifact};
use crate::domain::usage::{self, Seen};
use crate::http::respond::CachePolicy;
use crate::http::{ApiError, RequestMeta};
use crate::state::AppState;

/// The header launchers send to identify an installation for staged rollouts.
pub const CLIENT_ID_HEADER: &str = "x-atlas-client-id";

/// The `x-atlas-client-id` header as sent (checked by [`RolloutClient::of`]): only this
/// value is taken from the request, not a copy of every header.
pub struct ClientIdHeader(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIdHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIdHeader(parts.headers.get(CLIENT_ID_HEADER).cloned()))
    }
}

/// Whom a consumer route buckets in a staged rollout ([`crate::domain::rollout::choose`]):
/// the client id the client sends (`x-atlas-client-id`, or `?clientId=` for clients that
/// cannot set headers), else, where the route allows it, the client's address.
pub struct RolloutClient {
    key: Option<String>,
    /// The key is part of the URL, so a shared cache (keyed by URL) keeps each client's
    /// answer apart.
    in_url: bool,
}

impl RolloutClient {
    /// The client of a request: its `x-atlas-client-id` header, its `clientId` query
    /// parameter (`from_query`), else with `by_address` its address.
    pub fn of(
        header: &ClientIdHeader,
        from_query: Option<&str>,
        address: Option<IpAddr>,
        by_address: bool,
    ) -> Result<Self, ApiError> {
        let valid = |what: &str, v: &str| {
            if (1..=200).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(v.to_owned())
            } else {
                Err(ApiError::invalid(format!(
                    "{what} must be 1 to 200 visible ASCII characters (an installation id)"
                )))
            }
        };
        let header = match &header.0 {
            Some(v) => Some(valid(
                CLIENT_ID_HEADER,
                v.to_str().map_err(|_| {
                    ApiError::invalid(format!("{CLIENT_ID_HEADER} must be visible ASCII"))
                })?,
            )?),
            None => None,
        };
        let query = from_query.map(|v| valid("clientId", v)).transpose()?;
        if let (Some(h), Some(q)) = (&header, &query)
            && h != q
        {
            return Err(ApiError::invalid(format!(
                "clientId and {CLIENT_ID_HEADER} name different clients; send one of them"
            )));
        }
        let in_url = header.is_none() && query.is_some();
        let key = header.or(query).or_else(|| {
            by_address
                .then(|| address.map(|ip| ip.to_string()))
                .flatten()
        });
        Ok(RolloutClient { key, in_url })
    }

    /// The bucketing key, if the client can be bucketed.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// How an answer for this client may be cached: an answer that depends on its bucket
    /// (`staged`, and a client with a key) only by a shared cache that keys it by URL
    /// (`?clientId=`); else never by a shared one. `Vary: x-atlas-client-id` always, since
    /// the header can change the answer.
    pub fn cache(&self, state: &AppState, staged: bool) -> CachePolicy {
        CachePolicy {
            s_maxage: state.config.cache_s_maxage,
            vary: Some(CLIENT_ID_HEADER),
            private: staged && self.key.is_some() && !self.in_url,
        }
    }
}

/// Records what a consumer request was (`domain::usage`): added to this instance's batch, and
/// written after the answer by a writer the request that finds none running starts: it waits
/// until `ATLAS_STATS_WRITE_SECS` have passed since the last write, writes what is pending, and
/// ends. A failed write is logged, never answered.
pub fn record(state: &Arc<AppState>, meta: &RequestMeta, seen: Seen<'_>) {
    if !state.usage.record(&seen) {
        return;
    }
    let state = state.clone();
    let request_id = meta.request_id.clone();
    meta.background.run(async move {
        tokio::time::sleep(state.usage.wait()).await;
        if let Some(batch) = state.usage.take() {
            let written = async {
                let mut conn = state.db.conn().await?;
                let tx = conn.transaction().await?;
                usage::write(&tx, &batch).await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = written {
                eprintln!(
                    "{}",
                    serde_json::json!({"level": "warn", "requestId": request_id,
                        "event": "usage_write_failed", "requests": batch.requests(),
                        "code": e.code, "cause": e.cause})
                );
            }
            if batch.dropped > 0 {
                eprintln!(
                    "{}",
                    serde_json::json!({"level": "warn", "requestId": request_id,
                        "event": "usage_dropped", "observations": batch.dropped})
                );
            }
        }
    });
}

/// Records a latest lookup or latest download ([`record`]).
pub fn record_latest(
    state: &Arc<AppState>,
    meta: &RequestMeta,
    path: &LatestPath,
    channel: &str,
    latest: &Latest,
    artifact: &LatestArtifact,
    client: &RolloutClient,
) {
    record(
        state,
        meta,
        Seen {
            product: path.product.as_str(),
            event: usage::Event::Latest,
            channel,
            platform: platform_str(path.os, path.arch),
            bundle: &artifact.kind,
            version: &latest.version,
            offered: "",
            client: client.key(),
        },
    );
}

/// `{product}/latest/{os}/{arch}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LatestPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub product: Slug,
    /// Operating system: `linux`, `windows`, `darwin` (`macos` means `darwin`).
    #[param(value_type = String, pattern = "^(linux|windows|darwin|macos)$")]
    pub os: Os,
    /// Architecture (`amd64` means `x86_64`, `arm64` means `aarch64`).
    #[param(value_type = String, pattern = "^(x86_64|amd64|aarch64|arm64|i686|armv7|riscv64)$")]
    pub arch: Arch,
}

/// `?channel=&kind=&clientId=` of the latest lookup and download.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct LatestQuery {
    /// Release channel (default `stable`).
    #[param(value_type = Option<String>, pattern = "^(stable|beta|dev)$")]
    pub channel: Option<String>,
    /// Artifact kind; without it, the platform's primary artifact.
    #[param(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9.-]{0,31}$")]
    pub kind: Option<Kind>,
    /// An installation id for staged rollouts (the same as the `x-atlas-client-id` header,
    /// for clients that cannot set headers). While a channel's `rolloutPercent` is under
    /// 100, a client gets the channel's release only if its stable hash bucket (of product,
    /// version and this id; without an id, the client's address) is inside the rollout, else
    /// the previous release; `rolloutPercent` 0 halts the rollout. The same id lands in the
    /// same bucket on every route. Ids are chosen by clients, so a client can pick its
    /// bucket: a rollout limits exposure, it is not access control.
    #[param(pattern = "^[\\x21-\\x7e]{1,200}$")]
    pub client_id: Option<String>,
}

/// The release a client gets from the channel (the rollout rule) and its artifact (`kind`,
/// else primary), or 404; and whether the answer depended on the client's rollout bucket.
pub async fn resolve_latest(
    state: &Arc<AppState>,
    path: &LatestPath,
    query: &LatestQuery,
    client: &RolloutClient,
) -> Result<(&'static str, Latest, LatestArtifact, bool), ApiError> {
    let channel = parse_channel(query.channel.as_deref().unwrap_or("stable"))?;
    let kind = query.kind.as_ref().map(|k| k.0.as_str());
    let not_found = || {
        ApiError::not_found(format!(
            "{} has no release on {channel} for {}/{}{}",
            path.product,
            path.os.as_str(),
            path.arch.as_str(),
            kind.map(|k| format!(" of kind {k}")).unwrap_or_default()
        ))
    };
    let served = state
        .lookups
        .lookup(path.product.as_str(), channel, path.os, path.arch)
        .await?;
    let staged = served.staged();
    let latest = served
        .for_client(path.product.as_str(), client.key())
        .cloned()
        .ok_or_else(not_found)?;
    let artifact = match kind {
        Some(kind) => latest.artifacts.iter().find(|a| a.kind == kind),
        None => latest
            .artifacts
            .iter()
            .find(|a| a.primary)
            .or(latest.artifacts.first()),
    }
    .cloned()
    .ok_or_else(not_found)?;
    Ok((channel, latest, artifact, staged))
}
