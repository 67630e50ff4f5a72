//! Tauri v2 updater endpoints: the dynamic server (200 with an update or 204) and the static
//! `latest.json` manifest.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::consumers::{ClientIdHeader, RolloutClient, record};
use crate::domain::ids::{Arch, Os, Slug, Version, parse_channel, parse_kind_field, platform_str};
use crate::domain::lookup::{self, Latest, LatestArtifact};
use crate::domain::rollout;
use crate::domain::usage::{Event, Seen};
use crate::http::extract::{Client, Meta, Path, Query};
use crate::http::{ApiError, ApiResult, respond};
use crate::state::AppState;

/// Tauri's dynamic update response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UpdaterResponse)]
pub struct Update<'a> {
    version: &'a str,
    /// Release notes; absent when the release has none (as the client libraries model it).
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'a str>,
    pub_date: String,
    /// The Hub's download URL (a redirect to storage).
    url: &'a str,
    /// The `.sig` file's content.
    signature: &'a str,
    /// The bundle format in cargo-packager-updater's vocabulary (`appimage`, `nsis`, `wix`,
    /// `app`), which it requires; absent for kinds it has no format for. Tauri ignores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(appimage|nsis|wix|app)$")]
    format: Option<&'static str>,
}

/// The update format of an artifact kind, as cargo-packager-updater names it (its
/// `UpdateFormat`); `None` for kinds it cannot install (deb, rpm, dmg, …).
pub fn update_format(kind: &str) -> Option<&'static str> {
    match kind {
        "appimage" => Some("appimage"),
        "nsis" => Some("nsis"),
        "msi" => Some("wix"),
        "app" => Some("app"),
        _ => None,
    }
}

/// `{product}/{target}/{arch}/{currentVersion}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct CheckPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    product: Slug,
    /// `{{target}}`: `linux`, `windows`, `darwin` (Tauri) or `macos` (cargo-packager-updater).
    #[param(value_type = String, pattern = "^(linux|windows|darwin|macos)$")]
    target: Os,
    /// Architecture (`amd64` means `x86_64`, `arm64` means `aarch64`).
    #[param(value_type = String, pattern = "^(x86_64|amd64|aarch64|arm64|i686|armv7|riscv64)$")]
    arch: Arch,
    /// The running version, percent-encoded SemVer (a leading `v` is accepted).
    #[param(value_type = String, pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$", max_length = 129)]
    current_version: Version,
}

/// `?channel=&bundleType=&clientId=` of the dynamic check.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// Release channel (default `stable`).
    #[param(pattern = "^(stable|beta|dev)$")]
    channel: Option<String>,
    /// Tauri bundle type (`appimage`, `deb`, `rpm`, `nsis`, `msi`, `app`, or `unknown`).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$")]
    bundle_type: Option<String>,
    /// An installation id for staged rollouts (see the latest lookup's `clientId`).
    #[param(pattern = "^[\\x21-\\x7e]{1,200}$")]
    client_id: Option<String>,
}

/// `{product}/{channel}/latest.json` (the segment is named `target` in the path).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ManifestPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    product: Slug,
    /// Release channel (`stable`, `beta` or `dev`).
    target: String,
}

/// `?bundleType=&clientId=` of the static manifest.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ManifestQuery {
    /// A Tauri bundle type whose entries to list although they have no update format
    /// (`deb`, `rpm`); `unknown` lists none.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$")]
    bundle_type: Option<String>,
    /// An installation id for staged rollouts (see the latest lookup's `clientId`); without
    /// one, a staged rollout's previous release is listed.
    #[param(pattern = "^[\\x21-\\x7e]{1,200}$")]
    client_id: Option<String>,
}

/// `bundleType`: a kind, or Tauri's `unknown` (a client that cannot tell its bundle type).
fn bundle_type(value: Option<&str>) -> Result<Option<String>, ApiError> {
    Ok(value
        .map(|b| parse_kind_field("bundleType", &b.to_ascii_lowercase()))
        .transpose()?
        .filter(|b| b != "unknown"))
}

/// The signed artifact to offer: the requested bundle type if the release has it signed,
/// else (no bundle type, Tauri's `unknown`, or one the release lacks) the platform's
/// primary signed artifact, as Tauri v2 expects, except that one with an update format
/// comes first: a client that names no bundle (cargo-packager-updater) needs `format`.
/// Artifacts are listed primary first.
fn pick<'a>(release: &'a Latest, bundle: Option<&str>) -> Option<&'a LatestArtifact> {
    let signed = || release.artifacts.iter().filter(|a| a.signature.is_some());
    bundle
        .and_then(|kind| signed().find(|a| a.kind == kind))
        .or_else(|| signed().find(|a| update_format(&a.kind).is_some()))
        .or_else(|| signed().next())
}

fn newer(candidate: &str, current: &semver::Version) -> bool {
    semver::Version::parse(candidate).is_ok_and(|v| v.cmp_precedence(current) == Ordering::Greater)
}

/// Notes as the updater clients model them: absent rather than empty.
fn notes(text: &str) -> Option<&str> {
    Some(text).filter(|n| !n.is_empty())
}

/// Tauri's dynamic update check: 200 with the update this client gets (the rollout rule),
/// or 204 when there is none.
#[utoipa::path(
    get,
    path = "/api/v1/updater/{product}/{target}/{arch}/{currentVersion}",
    operation_id = "updaterCheck",
    tag = "updater",
    summary = "Tauri v2 dynamic updater: the update, or 204 when there is none.",
    params(CheckPath, CheckQuery, ("x-atlas-client-id" = Option<String>, Header, description = "The installation id for staged rollouts (see `clientId`).", pattern = "^[\\x21-\\x7e]{1,200}$")),
    responses(
        (status = 200, description = "An update.", body = Update),
        (status = 204, description = "No update."),
    ),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn dynamic(
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    Client(address): Client,
    client_id: ClientIdHeader,
    Path(path): Path<CheckPath>,
    Query(query): Query<CheckQuery>,
) -> ApiResult {
    let product = path.product;
    let (os, arch, current) = (path.target, path.arch, path.current_version);
    let channel = parse_channel(query.channel.as_deref().unwrap_or("stable"))?;
    let bundle = bundle_type(query.bundle_type.as_deref())?;
    let client = RolloutClient::of(&client_id, query.client_id.as_deref(), address, true)?;

    let served = state
        .lookups
        .lookup(product.as_str(), channel, os, arch)
        .await?;
    let update = served
        .for_client(product.as_str(), client.key())
        .filter(|r| newer(&r.version, current.semver()))
        .and_then(|r| pick(r, bundle.as_deref()).map(|a| (r, a)));

    let body = match update {
        Some((release, artifact)) => Some(
            serde_json::to_vec(&Update {
                version: &release.version,
                notes: notes(&release.notes),
                pub_date: release.published_at.format(&Rfc3339).unwrap_or_default(),
                url: &artifact.download_url,
                signature: artifact.signature.as_deref().unwrap_or_default(),
                format: update_format(&artifact.kind),
            })
            .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    record(
        &state,
        &meta,
        Seen {
            product: product.as_str(),
            event: Event::Check,
            channel,
            platform: platform_str(os, arch),
            bundle: bundle.as_deref().unwrap_or_default(),
            version: &current.to_string(),
            offered: update.map_or("", |(r, _)| r.version.as_str()),
            client: client.key(),
        },
    );
    let status = if body.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(respond::cached(
        status,
        "application/json",
        body,
        client.cache(&state, served.staged()),
    ))
}

/// Tauri's static manifest for the release this client gets from the channel, with
/// `platforms` keyed `{os}-{arch}` and `{os}-{arch}-{kind}` (and `macos-{arch}` beside
/// `darwin-{arch}`: cargo-packager-updater looks up `{target}-{arch}` with target `macos`).
/// Every entry carries `format`, so a client that parses the whole document
/// (cargo-packager-updater) accepts it: kinds without a format (`deb`, `rpm`, …) are listed
/// only for a client that asks for them with `bundleType` (Tauri:
/// `latest.json?bundleType={{bundle_type}}`).
///
/// A static manifest is cached by the CDN for everyone, so during a staged rollout a
/// client without a client id (`?clientId=` or `x-atlas-client-id`) cannot be bucketed and
/// gets the previous release until the rollout reaches 100%.
///
/// The route names the channel segment `{target}`: Vercel's file-system routing needs one
/// name for the dynamic folder it shares with the dynamic updater's `{target}`.
#[utoipa::path(
    get,
    path = "/api/v1/updater/{product}/{target}/latest.json",
    operation_id = "updaterManifest",
    tag = "updater",
    summary = "Tauri static manifest of a channel (`{target}` is the channel name). Every entry carries `format`; kinds without one (`deb`, `rpm`) are listed only with `bundleType` naming them. During a staged rollout, a client without a client id gets the previous release.",
    params(ManifestPath, ManifestQuery, ("x-atlas-client-id" = Option<String>, Header, description = "The installation id for staged rollouts (see `clientId`).", pattern = "^[\\x21-\\x7e]{1,200}$")),
    responses((status = 200, description = "The manifest.", body = UpdaterManifest)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn manifest(
    State(state): State<Arc<AppState>>,
    Meta(meta): Meta,
    client_id: ClientIdHeader,
    Path(path): Path<ManifestPath>,
    Query(query): Query<ManifestQuery>,
) -> ApiResult {
    let product = path.product;
    let channel = parse_channel(&path.target)?;
    let bundle = bundle_type(query.bundle_type.as_deref())?;
    let client = RolloutClient::of(&client_id, query.client_id.as_deref(), None, false)?;
    let conn = state.db.conn().await?;
    let lookup::Manifest {
        rollout_percent: percent,
        current,
        previous,
    } = lookup::manifest(&conn, product.as_str(), channel).await?;
    drop(conn);
    let staged = current.is_some() && percent < 100;
    let Some(release) = rollout::choose(
        product.as_str(),
        percent,
        current.as_ref().map(|c| (c.version.as_str(), c)),
        previous.as_ref(),
        client.key(),
    ) else {
        return Err(ApiError::not_found(format!(
            "{product} has no signed release on {channel}"
        )));
    };

    let hub = &state.config.hub_url;
    let mut platforms = BTreeMap::new();
    for (os, arch, kind, download_id, signature, _) in &release.artifacts {
        let format = update_format(kind);
        if format.is_none() && bundle.as_deref() != Some(kind.as_str()) {
            continue;
        }
        let entry = ManifestEntry {
            signature,
            url: format!("{hub}/api/v1/download/{download_id}"),
            format,
        };
        // Primary first per platform: the first listed entry is the platform's own key.
        let mut keys = vec![format!("{os}-{arch}-{kind}"), format!("{os}-{arch}")];
        if os == "darwin" {
            keys.push(format!("macos-{arch}"));
        }
        for key in keys {
            platforms.entry(key).or_insert_with(|| entry.clone());
        }
    }
    if platforms.is_empty() {
        return Err(ApiError::not_found(format!(
            "{product} {} on {channel} has no signed artifact an updater can install{}",
            release.version,
            if bundle.is_some() {
                ""
            } else {
                " (bundles such as deb are listed with ?bundleType=deb)"
            }
        )));
    }
    // The static manifest names no platform and not the version the client runs.
    record(
        &state,
        &meta,
        Seen {
            product: product.as_str(),
            event: Event::Check,
            channel,
            platform: "",
            bundle: bundle.as_deref().unwrap_or_default(),
            version: "",
            offered: &release.version,
            client: client.key(),
        },
    );
    let body = UpdaterManifest {
        version: &release.version,
        notes: notes(&release.notes),
        pub_date: release.published_at,
        platforms,
    };
    respond::cached_json(&body, client.cache(&state, staged))
}

/// Tauri's static manifest.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UpdaterManifest<'a> {
    version: &'a str,
    /// Absent when the release has no notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    pub_date: time::OffsetDateTime,
    /// Keyed `{os}-{arch}` (the platform's primary artifact among those listed) and
    /// `{os}-{arch}-{bundle}`; `darwin-…` entries also as `macos-…`.
    platforms: BTreeMap<String, ManifestEntry<'a>>,
}

/// One platform of the static manifest.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct ManifestEntry<'a> {
    /// The `.sig` file content.
    signature: &'a str,
    /// Hub download URL.
    url: String,
    /// cargo-packager-updater's format (`appimage`, `nsis`, `wix`, `app`); absent only
    /// for kinds listed because `bundleType` asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(appimage|nsis|wix|app)$")]
    format: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_semver_including_prereleases_and_ignoring_build() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert!(newer("1.2.0", &v("1.1.9")));
        assert!(newer("1.2.0", &v("1.2.0-beta.2")));
        assert!(newer("1.2.0-beta.2", &v("1.2.0-beta.1")));
        assert!(!newer("1.2.0", &v("1.2.0+build.5")));
        assert!(!newer("1.2.0-rc.1", &v("1.2.0")));
    }
}
