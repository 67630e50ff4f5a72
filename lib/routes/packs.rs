//! Packs: deploys (GitHub OIDC or a pack deploy token), runner resolution of pack channels,
//! and pointer moves with compare-and-swap.

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::admin::PackPath;
use super::public_cache;
use crate::db::Sql;
use crate::domain::audit;
use crate::domain::ids::{Slug, parse_filename, parse_sha256, parse_size};
use crate::domain::limits::Action;
use crate::domain::packs::{self, Build, NewBuildArtifact, Pack};
use crate::domain::uploads;
use crate::error::{ApiError, Code, quoted};
use crate::http::extract::{Json, NoQuery, PackCaller, Path, Query};
use crate::http::{ApiResult, respond};
use crate::state::AppState;
use crate::storage::{Declared, verify_declared};

/// A build id: `[A-Za-z0-9][A-Za-z0-9._+-]{0,63}` (a commit, a tag, a date…).
pub fn parse_build(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "build {} is not valid: letters, digits, '.', '_', '+' and '-', at most 64 characters",
            quoted(s)
        )))
    }
}

/// A pack channel name: free-form, `[a-z0-9][a-z0-9._-]{0,62}`.
pub fn parse_pack_channel(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "pack channel {} is not valid: lower-case letters, digits, '.', '_' and '-', at most 63",
            quoted(s)
        )))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PackDeployBody)]
pub struct DeployBody {
    build: String,
    /// Pack channel to point at the build.
    channel: String,
    #[schema(min_items = 1)]
    artifacts: Vec<DeployArtifact>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PackDeployArtifact)]
pub struct DeployArtifact {
    /// `uploadId` from presign (or `key`).
    upload_id: Option<Uuid>,
    /// Storage `key` from presign (or `uploadId`).
    key: Option<String>,
    /// File name (default: from the upload).
    filename: Option<String>,
    #[schema(minimum = 1)]
    size: i64,
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: String,
}

async fn resolve(
    db: &impl Sql,
    pack: &Pack,
    build: &str,
    body: &[DeployArtifact],
) -> Result<Vec<NewBuildArtifact>, ApiError> {
    if body.is_empty() || body.len() > 256 {
        return Err(ApiError::invalid("artifacts must list 1 to 256 files"));
    }
    let mut out: Vec<NewBuildArtifact> = Vec::with_capacity(body.len());
    for (i, a) in body.iter().enumerate() {
        let sha256 = parse_sha256(&a.sha256)?;
        parse_size(&format!("artifacts[{i}].size"), a.size)?;
        if let Some(filename) = &a.filename {
            parse_filename(filename)?;
        }
        let upload = uploads::resolve(
            db,
            uploads::Owner::Pack {
                pack_id: pack.id,
                build,
            },
            a.upload_id,
            a.key.as_deref(),
            &format!("artifacts[{i}]"),
            &format!("artifact {i}"),
        )
        .await?;
        if upload.size != a.size
            || upload.sha256 != sha256
            || a.filename.as_ref().is_some_and(|f| f != &upload.filename)
        {
            return Err(ApiError::unprocessable(
                Code::ArtifactMismatch,
                format!(
                    "artifact {i} does not match its presigned upload {} (filename, size, sha256 must be equal)",
                    upload.storage_key
                ),
            ));
        }
        if out.iter().any(|o| o.filename == upload.filename) {
            return Err(ApiError::invalid(format!(
                "{} is listed twice",
                upload.filename
            )));
        }
        out.push(NewBuildArtifact {
            storage_key: upload.storage_key,
            filename: upload.filename,
            size: upload.size,
            sha256,
            content_type: upload.content_type,
        });
    }
    Ok(out)
}

fn build_view<'a>(
    state: &AppState,
    pack: &'a str,
    channel: &'a str,
    b: &'a Build,
    artifacts: &'a [packs::BuildArtifact],
) -> PackBuild<'a> {
    let hub = &state.config.hub_url;
    let artifacts = artifacts
        .iter()
        .map(|a| PackArtifact {
            download_url: format!("{hub}/api/v1/download/{}", a.download_id),
            artifact: a,
        })
        .collect();
    PackBuild {
        pack,
        channel,
        build: &b.build,
        deployed_at: b.deployed_at,
        artifacts,
    }
}

/// A pack build (deploy answer).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackBuild<'a> {
    pack: &'a str,
    channel: &'a str,
    build: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    deployed_at: time::OffsetDateTime,
    artifacts: Vec<PackArtifact<'a>>,
}

/// A pack artifact with its download URL.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackArtifact<'a> {
    #[serde(flatten)]
    artifact: &'a packs::BuildArtifact,
    download_url: String,
}

/// A pack channel and its build.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackChannel<'a> {
    #[serde(flatten)]
    build: PackBuild<'a>,
    previous_build: Option<String>,
    /// When the channel last moved (reads only).
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    updated_at: Option<time::OffsetDateTime>,
}

/// Deploys uploaded files as a pack build and points the pack channel at it: 201 created,
/// 200 an identical re-deploy, 409 different files under the same build id.
#[utoipa::path(
    post,
    path = "/api/v1/packs/{pack}/deploy",
    operation_id = "deployPack",
    tag = "packs",
    summary = "Deploy uploaded files as a pack build onto a channel.",
    params(PackPath),
    request_body = DeployBody,
    responses(
        (status = 201, description = "Deployed.", body = PackBuild),
        (status = 200, description = "Already deployed with these exact files.", body = PackBuild),
    ),
    security(("packToken" = []), ("githubOidc" = []), ("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn deploy(
    PackCaller(credential): PackCaller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<PackPath>,
    _: Query<NoQuery>,
    Json(body): Json<DeployBody>,
) -> ApiResult {
    let build = parse_build(&body.build)?;
    let channel = parse_pack_channel(&body.channel)?;
    let mut conn = state.db.conn().await?;
    let pack = packs::get(&conn, path.pack.as_str()).await?;
    let actor = packs::authorize(
        &conn,
        &state.config.limits,
        credential,
        &pack,
        Some(Action::Publish),
    )
    .await?;
    let artifacts = resolve(&conn, &pack, &build, &body.artifacts).await?;
    let digest = packs::content_digest(&artifacts);

    let existing = packs::find_build(&conn, pack.id, &build).await?;
    if existing.is_none() {
        let declared: Vec<Declared> = artifacts
            .iter()
            .map(|a| Declared {
                key: &a.storage_key,
                size: a.size as u64,
                sha256_hex: &a.sha256,
                label: a.filename.clone(),
            })
            .collect();
        verify_declared(&state.storage, &declared).await?;
    }
    let tx = conn.transaction().await?;
    let (stored, status) = match existing {
        Some(b) => (b, StatusCode::OK),
        None => match packs::insert_build(&tx, pack.id, &build, &digest, &actor.name, &artifacts)
            .await?
        {
            Some(b) => (b, StatusCode::CREATED),
            None => (
                packs::find_build(&tx, pack.id, &build)
                    .await?
                    .ok_or_else(|| ApiError::internal("pack build vanished after a conflict"))?,
                StatusCode::OK,
            ),
        },
    };
    if stored.content_digest != digest {
        return Err(ApiError::conflict(
            Code::BuildExists,
            format!(
                "build {build} of {} is already deployed with other files; builds are immutable: deploy a new build id",
                pack.slug
            ),
        ));
    }
    let previous =
        packs::move_channel(&tx, pack.id, &channel, stored.id, None, &actor.name).await?;
    if status == StatusCode::CREATED || previous.as_deref() != Some(build.as_str()) {
        audit::record(
            &tx,
            &actor,
            "pack.deploy",
            &format!("{}@{build}", pack.slug),
            json!({"channel": channel, "previousBuild": previous, "artifacts": artifacts.len(), "created": status == StatusCode::CREATED}),
        )
        .await?;
    }
    tx.commit().await?;
    let stored_artifacts = packs::build_artifacts(&conn, stored.id).await?;
    respond::json(
        status,
        &build_view(&state, &pack.slug, &channel, &stored, &stored_artifacts),
    )
}

/// `{pack}/channels/{channel}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PackChannelPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pack: Slug,
    /// Pack channel: free-form, `[a-z0-9][a-z0-9._-]{0,62}`.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
    channel: String,
}

/// The build a pack channel points to, with its artifacts and download URLs.
#[utoipa::path(
    get,
    path = "/api/v1/packs/{pack}/channels/{channel}",
    operation_id = "getPackChannel",
    tag = "packs",
    summary = "The build a pack channel points to.",
    params(PackChannelPath),
    responses((status = 200, description = "The channel and its build.", body = PackChannel)),
    extensions(("x-problems" = json!([304]))),
)]
pub async fn get_channel(
    State(state): State<Arc<AppState>>,
    Path(path): Path<PackChannelPath>,
    _: Query<NoQuery>,
) -> ApiResult {
    let channel = parse_pack_channel(&path.channel)?;
    let conn = state.db.conn().await?;
    let pack = packs::get(&conn, path.pack.as_str()).await?;
    let c = packs::channel(&conn, pack.id, &channel)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("pack {} has no channel {channel}", pack.slug))
        })?;
    let artifacts = packs::build_artifacts(&conn, c.build.id).await?;
    let view = PackChannel {
        build: build_view(&state, &pack.slug, &channel, &c.build, &artifacts),
        previous_build: c.previous_build.clone(),
        updated_at: Some(c.updated_at),
    };
    respond::cached_json(&view, public_cache(&state))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PackChannelMove)]
pub struct MoveBody {
    /// Build to point at.
    build: String,
    #[serde(default, deserialize_with = "expected_build")]
    /// Compare-and-swap: the build the channel must point at now (`null`: empty).
    expected_build: Option<Option<String>>,
}

fn expected_build<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Promote or roll back a pack channel: point it at a deployed build, with
/// compare-and-swap on `expectedBuild`.
#[utoipa::path(
    put,
    path = "/api/v1/packs/{pack}/channels/{channel}",
    operation_id = "movePackChannel",
    tag = "packs",
    summary = "Point a pack channel at a build (compare-and-swap).",
    params(PackChannelPath),
    request_body = MoveBody,
    responses((status = 200, description = "The channel, moved.", body = PackChannel)),
    security(("packToken" = []), ("githubOidc" = []), ("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn put_channel(
    PackCaller(credential): PackCaller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<PackChannelPath>,
    _: Query<NoQuery>,
    Json(body): Json<MoveBody>,
) -> ApiResult {
    let channel = parse_pack_channel(&path.channel)?;
    let build = parse_build(&body.build)?;
    let expected_build = body
        .expected_build
        .map(|e| e.as_deref().map(parse_build).transpose())
        .transpose()?;
    let mut conn = state.db.conn().await?;
    let pack = packs::get(&conn, path.pack.as_str()).await?;
    let actor = packs::authorize(&conn, &state.config.limits, credential, &pack, None).await?;
    let tx = conn.transaction().await?;
    let target = packs::find_build(&tx, pack.id, &build)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pack {} has no build {build}", pack.slug)))?;
    let expected = expected_build.as_ref().map(|e| e.as_deref());
    let previous =
        packs::move_channel(&tx, pack.id, &channel, target.id, expected, &actor.name).await?;
    audit::commit(
        tx,
        &actor,
        "pack.channel.move",
        &format!("{}/{channel}", pack.slug),
        json!({"from": previous, "to": build}),
    )
    .await?;
    let artifacts = packs::build_artifacts(&conn, target.id).await?;
    let view = PackChannel {
        build: build_view(&state, &pack.slug, &channel, &target, &artifacts),
        previous_build: previous,
        updated_at: None,
    };
    respond::json(StatusCode::OK, &view)
}

/// Properties of the pack identifiers and of the trusted publisher's ref patterns.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::packs::glob_match;
    use crate::test_support::{hostile_string, refusal};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn builds_and_pack_channels_accept_only_safe_names(s in prop_oneof![
            hostile_string(70), "[A-Za-z0-9][A-Za-z0-9._+-]{0,70}", "[a-z0-9][a-z0-9._-]{0,70}"
        ]) {
            match parse_build(&s) {
                Ok(b) => {
                    prop_assert!(!b.is_empty() && b.len() <= 64 && b.is_ascii());
                    prop_assert!(!b.contains(['/', '\\', '\0', ' ', '%', '\'', '"', ';']));
                    prop_assert!(b.as_bytes()[0].is_ascii_alphanumeric());
                    prop_assert_eq!(parse_build(&b).unwrap(), b);
                }
                Err(e) => prop_assert_eq!(refusal(&e), (400, "invalid_input")),
            }
            match parse_pack_channel(&s) {
                Ok(c) => {
                    prop_assert!(!c.is_empty() && c.len() <= 63);
                    prop_assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
                    prop_assert_eq!(parse_pack_channel(&c).unwrap(), c);
                }
                Err(e) => prop_assert_eq!(refusal(&e), (400, "invalid_input")),
            }
        }

        #[test]
        fn ref_patterns_without_a_star_are_equality(pattern in "[a-z/.]{0,20}", value in "[a-z/.]{0,20}") {
            prop_assert_eq!(glob_match(&pattern, &value), pattern == value);
            prop_assert!(glob_match(&pattern, &pattern));
        }

        #[test]
        fn ref_patterns_glob_prefixes_and_suffixes(prefix in hostile_string(10), middle in hostile_string(10),
                                                  suffix in hostile_string(10), value in hostile_string(30)) {
            let prefix = prefix.replace('*', "");
            let suffix = suffix.replace('*', "");
            prop_assert!(glob_match("*", &value));
            let (pattern, matching) = (format!("{prefix}*{suffix}"), format!("{prefix}{middle}{suffix}"));
            prop_assert!(glob_match(&pattern, &matching));
            prop_assert_eq!(glob_match(&format!("{prefix}*"), &value), value.starts_with(&prefix));
            // Total on any pattern.
            let _ = glob_match(&value, &middle);
        }
    }
}
