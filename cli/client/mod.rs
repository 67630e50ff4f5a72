//! The release client: what CI pipelines and operators run against a Hub over HTTP —
//! `release publish|promote|rollback|yank|status`, `pack deploy` and `verify`. It never
//! touches the database; everything goes through the public API with a deploy token.

pub mod admin;
pub mod files;
pub mod hub;
pub mod oidc;
pub mod pack;
pub mod release;
pub mod stats;
pub mod table;
pub mod upload;
pub mod verify;

use serde::Deserialize;

use hub::{ClientError, Hub};

/// Where the Hub is and how hard to try.
#[derive(clap::Args)]
pub struct HubArgs {
    /// The Hub's base URL, e.g. https://hub.example.com (http://127.0.0.1:8080 for `atlas-hub serve`).
    #[arg(long = "hub", env = "ATLAS_HUB_URL", value_name = "URL")]
    pub hub: Option<String>,
    /// Attempts per request when it fails transiently (connection errors, 5xx, 429), with
    /// exponential backoff in between.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub attempts: u32,
}

/// A channel as `GET /api/v1/releases/{product}/channels` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// `stable`, `beta` or `dev`.
    pub name: String,
    /// The release it points at.
    pub version: Option<String>,
    /// The release it pointed at before (the rollback target).
    pub previous_version: Option<String>,
    /// Share of clients offered `version`.
    pub rollout_percent: i16,
    #[serde(default)]
    pub updated_at: String,
}

/// Every channel of a product.
pub async fn channels(hub: &Hub, product: &str) -> Result<Vec<Channel>, ClientError> {
    let body = hub
        .get_json(
            &format!("/api/v1/releases/{product}/channels"),
            &format!("read the channels of {product}"),
        )
        .await?;
    serde_json::from_value(body["channels"].clone())
        .map_err(|e| ClientError::Transport(format!("unexpected channel list from the Hub: {e}")))
}

/// An artifact of a release, as the Hub shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInfo {
    pub os: String,
    pub arch: String,
    pub kind: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub signature: Option<String>,
}

impl ArtifactInfo {
    /// `os-arch`.
    pub fn platform(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}

/// A release with its artifacts (`GET /api/v1/releases/{product}/{version}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInfo {
    pub version: String,
    /// When it was published.
    #[serde(default)]
    pub published_at: String,
    #[serde(default)]
    pub yanked: bool,
    pub artifacts: Vec<ArtifactInfo>,
}

/// One release of a product.
pub async fn release(hub: &Hub, product: &str, version: &str) -> Result<ReleaseInfo, ClientError> {
    let body = hub
        .get_json(
            &format!("/api/v1/releases/{product}/{version}"),
            &format!("read {product} {version}"),
        )
        .await?;
    serde_json::from_value(body)
        .map_err(|e| ClientError::Transport(format!("unexpected release from the Hub: {e}")))
}
