//! Tauri v2 updater endpoints: the dynamic server (200 with an update or 204) and the static
//! `latest.json` manifest.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::types::Type;

use super::releases::{Latest, LatestArtifact, lookup_channel, public_cache};
use crate::db::Sql;
use crate::domain::ids::{Arch, Os, Slug, Version, parse_channel, parse_kind};
use crate::domain::rollout;
use crate::http::respond::{self, CachePolicy};
use crate::http::{ApiError, ApiRequest, ApiResult, quoted};
use crate::state::AppState;

/// The header launchers send to identify an installation for staged rollouts.
pub const CLIENT_ID_HEADER: &str = "x-atlas-client-id";

/// Tauri's dynamic update response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UpdaterResponse)]
pub(crate) struct Update<'a> {
    version: &'a str,
    notes: &'a str,
    pub_date: String,
    url: &'a str,
    signature: &'a str,
}

fn target(s: &str) -> Result<Os, ApiError> {
    match s {
        "linux" | "darwin" | "windows" => Os::parse(s),
        _ => Err(ApiError::invalid(format!(
            "target {} is not valid: expected linux, darwin or windows",
            quoted(s)
        ))),
    }
}

/// The signed artifact to offer: the requested bundle type, else the primary signed one.
fn pick<'a>(release: &'a Latest, bundle: Option<&str>) -> Option<&'a LatestArtifact> {
    let signed = |a: &&LatestArtifact| a.signature.is_some();
    match bundle {
        Some(kind) => release
            .artifacts
            .iter()
            .filter(signed)
            .find(|a| a.kind == kind),
        None => release
            .artifacts
            .iter()
            .filter(signed)
            .find(|a| a.primary)
            .or_else(|| release.artifacts.iter().find(signed)),
    }
}

fn newer(candidate: &str, current: &semver::Version) -> bool {
    semver::Version::parse(candidate).is_ok_and(|v| v.cmp_precedence(current) == Ordering::Greater)
}

/// `GET /api/v1/updater/{product}/{target}/{arch}/{currentVersion}?channel=&bundleType=`.
pub async fn dynamic(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let product = Slug::parse("product", req.param("product"))?;
    let os = target(req.param("target"))?;
    let arch = Arch::parse(req.param("arch"))?;
    let current = Version::parse_field("currentVersion", req.param("currentVersion"))?;
    let channel = parse_channel(req.query("channel").as_deref().unwrap_or("stable"))?;
    let bundle = req
        .query("bundleType")
        .map(|b| parse_kind(&b.to_ascii_lowercase()))
        .transpose()?;
    let client_id = req
        .header(CLIENT_ID_HEADER)
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .map(str::to_owned);

    let served = lookup_channel(&state, product.as_str(), channel, os, arch).await?;

    let staged = served.current.is_some() && served.rollout_percent < 100;
    let offered_release = match &served.current {
        Some(release) if staged => {
            let who = client_id
                .clone()
                .or_else(|| req.client_ip.map(|ip| ip.to_string()))
                .unwrap_or_default();
            let b = rollout::bucket(product.as_str(), &release.version, &who);
            if rollout::offered(served.rollout_percent, b) {
                Some(release)
            } else {
                served.previous.as_ref()
            }
        }
        other => other.as_ref(),
    };
    let update = offered_release
        .filter(|r| newer(&r.version, current.semver()))
        .and_then(|r| pick(r, bundle.as_deref()).map(|a| (r, a)));

    let body = match update {
        Some((release, artifact)) => Some(
            serde_json::to_vec(&Update {
                version: &release.version,
                notes: &release.notes,
                pub_date: release.published_at.format(&Rfc3339).unwrap_or_default(),
                url: &artifact.download_url,
                signature: artifact.signature.as_deref().unwrap_or_default(),
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
    let mut response = respond::cached(
        &req,
        status,
        "application/json",
        body,
        CachePolicy {
            s_maxage: state.config.cache_s_maxage,
            vary: Some(CLIENT_ID_HEADER),
        },
    );
    if staged && client_id.is_none() {
        // The answer depends on the client's address: a shared cache must not keep it.
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    Ok(response)
}

/// `GET /api/v1/updater/{product}/{channel}/latest.json`: Tauri's static manifest for the
/// channel's release, with `platforms` keyed `{os}-{arch}` and `{os}-{arch}-{bundle}`.
/// The route names the channel segment `{target}`: Vercel's file-system routing needs one
/// name for the dynamic folder it shares with the dynamic updater's `{target}`.
pub async fn manifest(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let product = Slug::parse("product", req.param("product"))?;
    let channel = parse_channel(req.param("target"))?;
    let conn = state.db.conn().await?;
    let rows = conn
        .query(
            "SELECT r.version, r.notes, r.published_at, a.os, a.arch, a.kind, a.download_id,
                    a.signature, a.is_primary
             FROM products p
             JOIN channels c ON c.product_id = p.id AND c.name = $2
             JOIN releases r ON r.id = c.release_id AND r.yanked_at IS NULL
             JOIN artifacts a ON a.release_id = r.id AND a.signature IS NOT NULL
             WHERE p.slug = $1
             ORDER BY a.os, a.arch, a.is_primary DESC, a.kind",
            &[(&product.as_str(), Type::TEXT), (&channel, Type::TEXT)],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Err(ApiError::not_found(format!(
            "{product} has no signed release on {channel}"
        )));
    };
    let hub = &state.config.hub_url;
    let mut platforms: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for r in &rows {
        let (os, arch, kind): (String, String, String) =
            (r.get("os"), r.get("arch"), r.get("kind"));
        let entry = json!({
            "signature": r.get::<_, String>("signature"),
            "url": format!("{hub}/api/v1/download/{}", r.get::<_, String>("download_id")),
        });
        if r.get::<_, bool>("is_primary") || !platforms.contains_key(&format!("{os}-{arch}")) {
            platforms
                .entry(format!("{os}-{arch}"))
                .or_insert(entry.clone());
        }
        platforms.insert(format!("{os}-{arch}-{kind}"), entry);
    }
    let published: time::OffsetDateTime = first.get("published_at");
    let body = json!({
        "version": first.get::<_, String>("version"),
        "notes": first.get::<_, String>("notes"),
        "pub_date": published.format(&Rfc3339).unwrap_or_default(),
        "platforms": platforms,
    });
    respond::cached_json(&req, &body, public_cache(&state))
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
