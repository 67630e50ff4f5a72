//! Tauri v2 updater endpoints: the dynamic server (200 with an update or 204) and the static
//! `latest.json` manifest.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::types::Type;

use super::releases::{Latest, LatestArtifact, RolloutClient, lookup_channel};
use crate::db::Sql;
use crate::domain::ids::{Arch, Os, Slug, Version, parse_channel, parse_kind};
use crate::domain::rollout;
use crate::http::respond;
use crate::http::{ApiError, ApiRequest, ApiResult, quoted};
use crate::state::AppState;

/// Tauri's dynamic update response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UpdaterResponse)]
pub(crate) struct Update<'a> {
    /// The version offered.
    version: &'a str,
    /// Release notes; absent when the release has none (as the client libraries model it).
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'a str>,
    /// RFC 3339.
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

/// `{{target}}`: `linux`, `windows`, `darwin` (Tauri) or `macos` (cargo-packager-updater).
fn target(s: &str) -> Result<Os, ApiError> {
    match s {
        "linux" | "darwin" | "macos" | "windows" => Os::parse(s),
        _ => Err(ApiError::invalid(format!(
            "target {} is not valid: expected linux, darwin (or macos) or windows",
            quoted(s)
        ))),
    }
}

/// `bundleType`: a kind, or Tauri's `unknown` (a client that cannot tell its bundle type).
fn bundle_type(req: &ApiRequest) -> Result<Option<String>, ApiError> {
    Ok(req
        .query("bundleType")
        .map(|b| parse_kind(&b.to_ascii_lowercase()))
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

/// `GET /api/v1/updater/{product}/{target}/{arch}/{currentVersion}?channel=&bundleType=&clientId=`.
pub async fn dynamic(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let product = Slug::parse("product", req.param("product"))?;
    let os = target(req.param("target"))?;
    let arch = Arch::parse(req.param("arch"))?;
    let current = Version::parse_field("currentVersion", req.param("currentVersion"))?;
    let channel = parse_channel(req.query("channel").as_deref().unwrap_or("stable"))?;
    let bundle = bundle_type(&req)?;
    let client = RolloutClient::of(&req, true)?;

    let served = lookup_channel(&state, product.as_str(), channel, os, arch).await?;
    let update = served
        .for_client(product.as_str(), &client)
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
    let status = if body.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(respond::cached(
        &req,
        status,
        "application/json",
        body,
        client.cache(&state, served.staged()),
    ))
}

/// One release's signed artifacts, as the manifest lists them.
struct ManifestRelease {
    version: String,
    notes: String,
    published_at: time::OffsetDateTime,
    /// (os, arch, kind, download id, signature, primary), primary first per platform.
    artifacts: Vec<(String, String, String, String, String, bool)>,
}

/// `GET /api/v1/updater/{product}/{channel}/latest.json?bundleType=&clientId=`: Tauri's
/// static manifest for the release this client gets from the channel, with `platforms`
/// keyed `{os}-{arch}` and `{os}-{arch}-{kind}` (and `macos-{arch}` beside `darwin-{arch}`:
/// cargo-packager-updater looks up `{target}-{arch}` with target `macos`). Every entry carries `format`, so a client that
/// parses the whole document (cargo-packager-updater) accepts it: kinds without a format
/// (`deb`, `rpm`, …) are listed only for a client that asks for them with `bundleType`
/// (Tauri: `latest.json?bundleType={{bundle_type}}`).
///
/// A static manifest is cached by the CDN for everyone, so during a staged rollout a
/// client without a client id (`?clientId=` or `x-atlas-client-id`) cannot be bucketed and
/// gets the previous release until the rollout reaches 100%.
///
/// The route names the channel segment `{target}`: Vercel's file-system routing needs one
/// name for the dynamic folder it shares with the dynamic updater's `{target}`.
pub async fn manifest(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let product = Slug::parse("product", req.param("product"))?;
    let channel = parse_channel(req.param("target"))?;
    let bundle = bundle_type(&req)?;
    let client = RolloutClient::of(&req, false)?;
    let conn = state.db.conn().await?;
    let rows = conn
        .query(
            "SELECT s.slot, c.rollout_percent, r.version, r.notes, r.published_at, a.os, a.arch,
                    a.kind, a.download_id, a.signature, a.is_primary
             FROM products p
             JOIN channels c ON c.product_id = p.id AND c.name = $2
             CROSS JOIN LATERAL (VALUES ('current', c.release_id),
                 ('previous', CASE WHEN c.rollout_percent < 100 THEN c.previous_release_id END))
                 AS s(slot, release_id)
             JOIN releases r ON r.id = s.release_id AND r.yanked_at IS NULL
             JOIN artifacts a ON a.release_id = r.id AND a.signature IS NOT NULL
             WHERE p.slug = $1
             ORDER BY s.slot, a.os, a.arch, a.is_primary DESC, a.kind",
            &[(&product.as_str(), Type::TEXT), (&channel, Type::TEXT)],
        )
        .await?;
    drop(conn);
    let mut percent = 100;
    let (mut current, mut previous): (Option<ManifestRelease>, Option<ManifestRelease>) =
        (None, None);
    for r in &rows {
        percent = r.get("rollout_percent");
        let slot = if r.get::<_, &str>("slot") == "current" {
            &mut current
        } else {
            &mut previous
        };
        slot.get_or_insert_with(|| ManifestRelease {
            version: r.get("version"),
            notes: r.get("notes"),
            published_at: r.get("published_at"),
            artifacts: Vec::new(),
        })
        .artifacts
        .push((
            r.get("os"),
            r.get("arch"),
            r.get("kind"),
            r.get("download_id"),
            r.get("signature"),
            r.get("is_primary"),
        ));
    }
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
    let mut platforms: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (os, arch, kind, download_id, signature, _) in &release.artifacts {
        let format = update_format(kind);
        if format.is_none() && bundle.as_deref() != Some(kind.as_str()) {
            continue;
        }
        let mut entry = json!({
            "signature": signature,
            "url": format!("{hub}/api/v1/download/{download_id}"),
        });
        if let Some(f) = format {
            entry["format"] = json!(f);
        }
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
    let mut body = json!({
        "version": release.version,
        "pub_date": release.published_at.format(&Rfc3339).unwrap_or_default(),
        "platforms": platforms,
    });
    if let Some(n) = notes(&release.notes) {
        body["notes"] = json!(n);
    }
    respond::cached_json(&req, &body, client.cache(&state, staged))
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
