//! `POST /api/v1/releases/{product}/publish`: verify every object in storage first, then one
//! transaction for the release, its artifacts, the optional channel move and the audit row.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::db::Sql;
use crate::domain::audit::{self, Actor};
use crate::domain::channels::{self, Move};
use crate::domain::ids::{
    Arch, Os, Version, parse_channel, parse_kind, parse_notes, parse_sha256, parse_size,
};
use crate::domain::limits::{self, Action};
use crate::domain::products::Product;
use crate::domain::releases::{self, NewArtifact, Release, ReleaseView};
use crate::domain::signature;
use crate::domain::tokens::Scope;
use crate::domain::{products, uploads};
use crate::error::{ApiError, Code};
use crate::http::extract::{Caller, Json, NoQuery, Path, Query};
use crate::http::{ApiResult, respond};
use crate::state::AppState;
use crate::storage::{Declared, verify_declared};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishBody {
    /// SemVer version (a leading `v` is accepted).
    #[schema(pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$", max_length = 129)]
    version: String,
    #[serde(default)]
    notes: String,
    /// Channel to point at the release: `stable`, `beta` or `dev`.
    #[schema(pattern = "^(stable|beta|dev)$")]
    channel: Option<String>,
    /// Share of clients the channel offers the release to (updater).
    #[schema(minimum = 0, maximum = 100)]
    rollout_percent: Option<i16>,
    #[schema(min_items = 1)]
    artifacts: Vec<ArtifactBody>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PublishArtifact)]
pub struct ArtifactBody {
    /// `uploadId` from presign (or `key`).
    upload_id: Option<Uuid>,
    /// Storage `key` from presign (or `uploadId`).
    key: Option<String>,
    #[schema(pattern = "^(linux|windows|darwin|macos)$")]
    os: String,
    #[schema(pattern = "^(x86_64|amd64|aarch64|arm64|i686|armv7|riscv64)$")]
    arch: String,
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{0,31}$")]
    kind: String,
    #[schema(minimum = 1)]
    size: i64,
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: String,
    /// Tauri updater signature: the `.sig` file content.
    signature: Option<String>,
    /// The platform's primary artifact (needed when it has several).
    primary: Option<bool>,
}

/// Parses `rolloutPercent` (0–100).
pub fn rollout(p: Option<i16>) -> Result<Option<i16>, ApiError> {
    match p {
        Some(p) if !(0..=100).contains(&p) => {
            Err(ApiError::invalid("rolloutPercent must be from 0 to 100"))
        }
        other => Ok(other),
    }
}

/// Resolves and checks each artifact against its upload; decides primaries; checks signatures.
async fn plan(
    db: &impl Sql,
    product: &Product,
    version: &str,
    body: &[ArtifactBody],
) -> Result<Vec<NewArtifact>, ApiError> {
    if body.is_empty() || body.len() > 64 {
        return Err(ApiError::invalid("artifacts must list 1 to 64 artifacts"));
    }
    let key_id = product
        .updater_public_key
        .as_deref()
        .map(|k| signature::parse_public_key(k).map(|(_, id)| id))
        .transpose()?;
    let mut out: Vec<NewArtifact> = Vec::with_capacity(body.len());
    for (i, a) in body.iter().enumerate() {
        let os = Os::parse(&a.os)?.as_str().to_owned();
        let arch = Arch::parse(&a.arch)?.as_str().to_owned();
        let kind = parse_kind(&a.kind)?;
        let sha256 = parse_sha256(&a.sha256)?;
        parse_size(&format!("artifacts[{i}].size"), a.size)?;
        let label = format!("artifact {i} ({os}/{arch}/{kind})");
        let upload = uploads::resolve(
            db,
            uploads::Owner::Release {
                product_id: product.id,
                version,
            },
            a.upload_id,
            a.key.as_deref(),
            &format!("artifacts[{i}]"),
            &label,
        )
        .await?;
        let declared = (
            Some(os.as_str()),
            Some(arch.as_str()),
            Some(kind.as_str()),
            a.size,
            sha256.as_str(),
        );
        let recorded = (
            upload.os.as_deref(),
            upload.arch.as_deref(),
            upload.kind.as_deref(),
            upload.size,
            upload.sha256.as_str(),
        );
        if declared != recorded {
            return Err(ApiError::unprocessable(
                Code::ArtifactMismatch,
                format!(
                    "{label} does not match its presigned upload {} (os, arch, kind, size, sha256 must be equal)",
                    upload.storage_key
                ),
            ));
        }
        if out
            .iter()
            .any(|o| o.os == os && o.arch == arch && o.kind == kind)
        {
            return Err(ApiError::invalid(format!("{label} is listed twice")));
        }
        if let Some(sig) = &a.signature {
            let sig_key = signature::parse_signature(sig)?;
            if let Some(signed) = signature::signed_version(sig)
                && semver::Version::parse(signed.trim_start_matches('v')).ok()
                    != semver::Version::parse(version).ok()
            {
                return Err(ApiError::unprocessable(
                    Code::SignatureVersionMismatch,
                    format!(
                        "{label} is signed for version {} but is published as {version}; Tauri's \
                         updater refuses such an update: sign the file built for {version}",
                        crate::http::quoted(&signed)
                    ),
                ));
            }
            if let Some(expected) = key_id
                && sig_key != expected
            {
                return Err(ApiError::unprocessable(
                    Code::SignatureKeyMismatch,
                    format!(
                        "{label} is signed with key {} but {} expects updater key {}",
                        signature::key_id_hex(&sig_key),
                        product.slug,
                        signature::key_id_hex(&expected)
                    ),
                ));
            }
        }
        out.push(NewArtifact {
            storage_key: upload.storage_key,
            os,
            arch,
            kind,
            filename: upload.filename,
            size: upload.size,
            sha256,
            signature: a.signature.as_deref().map(|s| s.trim().to_owned()),
            primary: a.primary.unwrap_or(false),
            content_type: upload.content_type,
        });
    }
    // Primary rules: at most one per platform; a platform with one artifact has it as primary;
    // a platform with several must mark exactly one.
    let mut by_platform: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, a) in out.iter().enumerate() {
        by_platform
            .entry((a.os.clone(), a.arch.clone()))
            .or_default()
            .push(i);
    }
    for ((os, arch), idx) in by_platform {
        let marked = idx.iter().filter(|i| out[**i].primary).count();
        match (idx.len(), marked) {
            (1, _) => out[idx[0]].primary = true,
            (_, 1) => {}
            (_, 0) => {
                return Err(ApiError::unprocessable(
                    Code::PrimaryRequired,
                    format!(
                        "{os}/{arch} has {} artifacts: mark exactly one with \"primary\": true",
                        idx.len()
                    ),
                ));
            }
            _ => {
                return Err(ApiError::unprocessable(
                    Code::PrimaryConflict,
                    format!("{os}/{arch} has {marked} artifacts marked primary; mark exactly one"),
                ));
            }
        }
    }
    Ok(out)
}

fn version_exists(product: &str, version: &str) -> ApiError {
    ApiError::conflict(
        Code::VersionExists,
        format!(
            "{product} {version} is already published with different artifacts or notes; releases are immutable: publish a new version"
        ),
    )
}

/// What an identical re-publish asks of its channel.
struct Intent<'a> {
    channel: Option<&'static str>,
    rollout_percent: Option<i16>,
    actor: &'a Actor,
}

/// The answer to a re-publish of an existing release: 409 `version_exists` when the content
/// differs; else 200, once what the request says of its channel holds. A re-run CI job
/// means "this release on this channel": the channel is moved to it when it serves nothing
/// or an older version (with the coverage check, under the channel's lock), and the request
/// fails with 409 `channel_moved` when the channel serves a newer version (a re-publish never
/// moves a channel back; a promote does, on purpose) or the release at another rollout than
/// the one asked for. The request's intent either happens or fails loudly.
async fn existing_answer(
    state: &AppState,
    conn: &mut crate::db::Conn,
    product: &Product,
    r: &Release,
    digest: &str,
    intent: &Intent<'_>,
) -> ApiResult {
    if r.content_digest != digest {
        return Err(version_exists(&product.slug, &r.version));
    }
    if let Some(channel) = intent.channel {
        let tx = conn.transaction().await?;
        let (serves, rollout) = channels::lock(&tx, product, channel).await?;
        let moved = |why: String| {
            ApiError::conflict(
                Code::ChannelMoved,
                format!(
                    "{} {} is already published, but {}/{channel} {why}; move it on purpose with a promote",
                    product.slug, r.version, product.slug
                ),
            )
            .with_extra(json!({ "currentVersion": serves }))
        };
        let published = semver::Version::parse(&r.version).ok();
        let older = |v: &str| match (semver::Version::parse(v), &published) {
            (Ok(v), Some(published)) => v.cmp_precedence(published).is_lt(),
            _ => false,
        };
        match serves.as_deref() {
            Some(v) if v == r.version => {
                if let Some(asked) = intent.rollout_percent
                    && asked != rollout
                {
                    return Err(moved(format!(
                        "offers it to {rollout}% of clients, not {asked}%"
                    )));
                }
            }
            Some(v) if !older(v) => {
                return Err(moved(format!("serves {v}, which is newer")));
            }
            _ => {
                channels::move_pointer(
                    &tx,
                    product,
                    &Move {
                        channel,
                        target: r,
                        expected: Some(serves.clone()),
                        rollout_percent: intent.rollout_percent,
                        force: false,
                    },
                    intent.actor,
                )
                .await?;
            }
        }
        tx.commit().await?;
    }
    let artifacts = releases::artifacts(&*conn, r.id).await?;
    respond::json(
        StatusCode::OK,
        &ReleaseView::new(&state.config.hub_url, &product.slug, r, &artifacts),
    )
}

/// Publishes uploaded artifacts as a release: 201 created, 200 an identical re-publish
/// (whose channel, when it names one, then serves it), 409 different content. Every object
/// is verified in storage before anything is written; one transaction writes the release,
/// its artifacts, the channel move and the audit row.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{product}/publish",
    operation_id = "publishRelease",
    tag = "ci",
    summary = "Publish uploaded artifacts as a release, optionally onto a channel.",
    params(super::releases::ProductPath),
    request_body = PublishBody,
    responses(
        (status = 201, description = "Published.", body = ReleaseView),
        (status = 200, description = "Already published with this exact content.", body = ReleaseView),
    ),
    security(("appToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn post(
    Caller(principal): Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<super::releases::ProductPath>,
    _: Query<NoQuery>,
    Json(body): Json<PublishBody>,
) -> ApiResult {
    let slug = path.product;
    let version = Version::parse(&body.version)?;
    let channel = body.channel.as_deref().map(parse_channel).transpose()?;
    let rollout_percent = rollout(body.rollout_percent)?;
    if rollout_percent.is_some() && channel.is_none() {
        return Err(ApiError::invalid(
            "rolloutPercent needs channel: it is the share of the channel's clients offered the release",
        ));
    }
    parse_notes(&body.notes)?;

    principal.require_app(slug.as_str(), Scope::Publish, channel)?;
    let mut conn = state.db.conn().await?;
    let limits = &state.config.limits;
    let actor = principal.key();
    let ((), product) = tokio::try_join!(
        limits::take(&conn, limits, Action::Publish, &actor),
        products::get(&conn, slug.as_str()),
    )?;
    let version_str = version.to_string();
    let artifacts = plan(&conn, &product, &version_str, &body.artifacts).await?;
    let digest = releases::content_digest(&body.notes, &artifacts);
    let actor = Actor::from(&principal);
    let intent = Intent {
        channel,
        rollout_percent,
        actor: &actor,
    };

    if let Some(existing) = releases::find(&conn, product.id, &version_str).await? {
        return existing_answer(&state, &mut conn, &product, &existing, &digest, &intent).await;
    }
    // The product's size limit as it is now: it may have been lowered since the presign.
    if let Some(limit) = product.max_artifact_size
        && let Some(a) = artifacts.iter().find(|a| a.size > limit)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ArtifactTooLarge,
            format!(
                "{}/{}/{} ({}) is {} bytes, over {}'s limit of {limit} bytes per artifact",
                a.os, a.arch, a.kind, a.filename, a.size, product.slug
            ),
        ));
    }
    let declared: Vec<Declared> = artifacts
        .iter()
        .map(|a| Declared {
            key: &a.storage_key,
            size: a.size as u64,
            sha256_hex: &a.sha256,
            label: format!("{}/{}/{} ({})", a.os, a.arch, a.kind, a.filename),
        })
        .collect();
    verify_declared(&state.storage, &declared).await?;

    let tx = conn.transaction().await?;
    let Some(release) = releases::insert(
        &tx,
        product.id,
        &version,
        &body.notes,
        &digest,
        &actor.name,
        &artifacts,
    )
    .await?
    else {
        // A concurrent publish of the same version committed first.
        drop(tx);
        let existing = releases::get(&conn, product.id, &product.slug, &version_str).await?;
        return existing_answer(&state, &mut conn, &product, &existing, &digest, &intent).await;
    };
    if let Some(channel) = channel {
        channels::move_pointer(
            &tx,
            &product,
            &Move {
                channel,
                target: &release,
                expected: None,
                rollout_percent,
                force: false,
            },
            &actor,
        )
        .await?;
    }
    audit::commit(
        tx,
        &actor,
        "release.publish",
        &format!("{}@{}", product.slug, release.version),
        json!({"channel": channel, "artifacts": artifacts.len(), "contentDigest": digest}),
    )
    .await?;
    let stored = releases::artifacts(&conn, release.id).await?;
    respond::json(
        StatusCode::CREATED,
        &ReleaseView::new(&state.config.hub_url, &product.slug, &release, &stored),
    )
}
