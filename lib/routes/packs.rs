//! Packs: deploys (GitHub OIDC or a pack deploy token), runner resolution of pack channels,
//! and pointer moves with compare-and-swap.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::releases::public_cache;
use crate::db::{Conn, Sql};
use crate::domain::audit::{self, Actor};
use crate::domain::ids::{Slug, parse_filename, parse_sha256, parse_size, parse_storage_key};
use crate::domain::limits::{self, Action, AuthGuard};
use crate::domain::packs::{self, Build, NewBuildArtifact, Pack};
use crate::domain::tokens::{self, TokenKind, scope_denied};
use crate::domain::{oidc, uploads};
use crate::http::{ApiError, ApiRequest, ApiResult, quoted, respond};
use crate::state::AppState;
use crate::storage::{Declared, verify_declared};

/// Header carrying a GitHub Actions OIDC token.
pub const OIDC_HEADER: &str = "x-atlas-oidc-token";
/// Header carrying a pack deploy token.
pub const PACK_TOKEN_HEADER: &str = "x-atlas-pack-deploy-token";

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

/// A pack write's credential, verified but not yet matched against a pack.
pub enum PackCredential {
    /// A GitHub Actions OIDC token whose signature, issuer, audience and times hold.
    Oidc(oidc::GithubClaims),
    /// A deploy token (pack or admin) that exists, is not revoked and has not expired.
    Token(tokens::Principal),
}

/// Verifies a pack write's credential before anything else is read: GitHub OIDC
/// (`x-atlas-oidc-token`), a pack deploy token (`x-atlas-pack-deploy-token`) or an
/// operator's admin token (`Authorization`). A request without valid credentials learns
/// nothing but that: its body is not parsed and no pack is looked up.
pub async fn verify_pack_credential(
    state: &AppState,
    db: &Conn,
    req: &ApiRequest,
) -> Result<PackCredential, ApiError> {
    let limits = &state.config.limits;
    let guard = AuthGuard::for_client(req.client_ip, limits.auth_failures);
    if let Some(token) = req.header(OIDC_HEADER) {
        if let Some(blocked) = guard.check(db).await? {
            return Err(blocked);
        }
        return match state.oidc.verify(token.trim()).await {
            Ok(claims) => Ok(PackCredential::Oidc(claims)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                Err(guard.failed(db).await?.unwrap_or(e))
            }
            Err(e) => Err(e),
        };
    }
    let principal = if let Some(token) = req.header(PACK_TOKEN_HEADER) {
        tokens::authenticate(db, &state.config.token_pepper, &guard, token.trim()).await?
    } else if req.header("authorization").is_some() {
        tokens::authenticate_request(db, &state.config, req).await?
    } else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_missing",
            format!(
                "pack writes need {OIDC_HEADER} (GitHub Actions OIDC) or {PACK_TOKEN_HEADER} \
                 (set ATLAS_PACK_DEPLOY_TOKEN)"
            ),
        ));
    };
    req.meta.set_token_id(principal.token_id.to_string());
    Ok(PackCredential::Token(principal))
}

/// Authorizes a verified credential for a write to `pack`: an OIDC token must come from the
/// pack's trusted publisher (and is then used up: each `jti` once), a pack deploy token must
/// be this pack's (and the pack must accept tokens). An admin token passes, `oidcOnly`
/// included: an admin can change that setting anyway, and the deploy is audited with the
/// admin's name. With `action`, the actor's limit for it is taken too (OIDC deploys count
/// per repository).
pub async fn authorize_pack(
    state: &AppState,
    db: &Conn,
    req: &ApiRequest,
    credential: PackCredential,
    pack: &Pack,
    action: Option<Action>,
) -> Result<Actor, ApiError> {
    let limits = &state.config.limits;
    let principal = match credential {
        PackCredential::Oidc(claims) => {
            packs::check_publisher(pack, &claims)?;
            if !packs::consume_jti(db, &claims.jti, claims.exp).await? {
                return Err(oidc::invalid(
                    "replayed",
                    "this OIDC token was already used; request a fresh one for every call",
                ));
            }
            req.meta.set_token_id(format!("oidc:{}", claims.jti));
            if let Some(action) = action {
                limits::take(
                    db,
                    limits,
                    action,
                    &format!("oidc:{}", claims.repository_id),
                )
                .await?;
            }
            return Ok(Actor {
                name: claims.actor(),
                token_id: None,
            });
        }
        PackCredential::Token(principal) => principal,
    };
    match principal.kind {
        TokenKind::Admin => {}
        TokenKind::Pack if principal.pack_id == Some(pack.id) => {
            if pack.oidc_only {
                return Err(scope_denied(format!(
                    "pack {:?} accepts GitHub OIDC deploys only",
                    pack.slug
                )));
            }
        }
        _ => {
            return Err(scope_denied(format!(
                "token {:?} may not deploy pack {:?}",
                principal.name, pack.slug
            )));
        }
    }
    if let Some(action) = action {
        limits::take(db, limits, action, &principal.token_id.to_string()).await?;
    }
    Ok(Actor {
        name: principal.actor(),
        token_id: Some(principal.token_id),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PackDeployBody)]
pub(crate) struct DeployBody {
    /// Build id.
    build: String,
    /// Pack channel to point at the build.
    channel: String,
    /// Uploaded files.
    #[schema(min_items = 1)]
    artifacts: Vec<DeployArtifact>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PackDeployArtifact)]
pub(crate) struct DeployArtifact {
    /// `uploadId` from presign (or `key`).
    upload_id: Option<Uuid>,
    /// Storage `key` from presign (or `uploadId`).
    key: Option<String>,
    /// File name (default: from the upload).
    filename: Option<String>,
    /// As presigned.
    #[schema(minimum = 1)]
    size: i64,
    /// As presigned.
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
        let upload = match (&a.upload_id, &a.key) {
            (Some(id), _) => uploads::by_id(db, *id).await?,
            (None, Some(key)) => {
                let key = parse_storage_key(&format!("artifacts[{i}].key"), key)?;
                uploads::by_key(db, &key).await?
            }
            (None, None) => {
                return Err(ApiError::invalid(format!(
                    "artifact {i} needs uploadId or key from presign"
                )));
            }
        }
        .filter(|u| u.pack_id == Some(pack.id) && u.build.as_deref() == Some(build))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "upload_unknown",
                format!("artifact {i}: no presigned upload of {} build {build} matches; call /api/v1/storage/presign first", pack.slug),
            )
        })?;
        if upload.size != a.size
            || upload.sha256 != sha256
            || a.filename.as_ref().is_some_and(|f| f != &upload.filename)
        {
            return Err(ApiError::unprocessable(
                "artifact_mismatch",
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

fn build_view(
    state: &AppState,
    pack: &str,
    channel: &str,
    b: &Build,
    artifacts: &[packs::BuildArtifact],
) -> serde_json::Value {
    let hub = &state.config.hub_url;
    let artifacts: Vec<_> = artifacts
        .iter()
        .map(|a| {
            json!({
                "downloadId": a.download_id,
                "downloadUrl": format!("{hub}/api/v1/download/{}", a.download_id),
                "filename": a.filename, "size": a.size, "sha256": a.sha256,
            })
        })
        .collect();
    json!({
        "pack": pack,
        "channel": channel,
        "build": b.build,
        "deployedAt": b.deployed_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "artifacts": artifacts,
    })
}

/// `POST /api/v1/packs/{pack}/deploy`: 201 created, 200 identical re-deploy, 409 different.
pub async fn deploy(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let mut conn = state.db.conn().await?;
    let credential = verify_pack_credential(&state, &conn, &req).await?;
    let slug = Slug::parse("pack", req.param("pack"))?;
    let body: DeployBody = req.json()?;
    let build = parse_build(&body.build)?;
    let channel = parse_pack_channel(&body.channel)?;
    let pack = packs::get(&conn, slug.as_str()).await?;
    let actor = authorize_pack(
        &state,
        &conn,
        &req,
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
            "build_exists",
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

/// `GET /api/v1/packs/{pack}/channels/{channel}`: the build with its artifacts.
pub async fn get_channel(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let slug = Slug::parse("pack", req.param("pack"))?;
    let channel = parse_pack_channel(req.param("channel"))?;
    let conn = state.db.conn().await?;
    let pack = packs::get(&conn, slug.as_str()).await?;
    let c = packs::channel(&conn, pack.id, &channel)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("pack {} has no channel {channel}", pack.slug))
        })?;
    let artifacts = packs::build_artifacts(&conn, c.build.id).await?;
    let mut view = build_view(&state, &pack.slug, &channel, &c.build, &artifacts);
    view["previousBuild"] = json!(c.previous_build);
    view["updatedAt"] = json!(
        c.updated_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    respond::cached_json(&req, &view, public_cache(&state))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PackChannelMove)]
pub(crate) struct MoveBody {
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

/// `PUT /api/v1/packs/{pack}/channels/{channel}`: promote or roll back a pack channel.
pub async fn put_channel(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let mut conn = state.db.conn().await?;
    let credential = verify_pack_credential(&state, &conn, &req).await?;
    let slug = Slug::parse("pack", req.param("pack"))?;
    let channel = parse_pack_channel(req.param("channel"))?;
    let body: MoveBody = req.json()?;
    let build = parse_build(&body.build)?;
    let expected_build = body
        .expected_build
        .map(|e| e.as_deref().map(parse_build).transpose())
        .transpose()?;
    let pack = packs::get(&conn, slug.as_str()).await?;
    let actor = authorize_pack(&state, &conn, &req, credential, &pack, None).await?;
    let tx = conn.transaction().await?;
    let target = packs::find_build(&tx, pack.id, &build)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pack {} has no build {build}", pack.slug)))?;
    let expected = expected_build.as_ref().map(|e| e.as_deref());
    let previous =
        packs::move_channel(&tx, pack.id, &channel, target.id, expected, &actor.name).await?;
    audit::record(
        &tx,
        &actor,
        "pack.channel.move",
        &format!("{}/{channel}", pack.slug),
        json!({"from": previous, "to": build}),
    )
    .await?;
    tx.commit().await?;
    let artifacts = packs::build_artifacts(&conn, target.id).await?;
    let mut view = build_view(&state, &pack.slug, &channel, &target, &artifacts);
    view["previousBuild"] = json!(previous);
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
