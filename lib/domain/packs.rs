//! Packs: user content bundles with immutable builds, their own free-form channels, and a
//! trusted GitHub publisher for OIDC deploys.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::audit::Actor;
use super::limits::{self, Action, Limits};
use super::oidc::{self, GithubClaims, mismatch};
use super::tokens::{Principal, TokenKind, scope_denied};
use crate::db::Sql;
use crate::error::{ApiError, Code};

/// The GitHub repository and workflow allowed to deploy a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustedPublisher {
    /// `owner/name`, for people (matching uses the ids).
    pub repository: String,
    /// Stable repository id: a repository renamed keeps working, one re-created under the
    /// old name does not.
    pub repository_id: i64,
    /// Stable owner id.
    pub repository_owner_id: i64,
    /// Workflow file name (`deploy.yml`), when only one workflow may deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Deployment environment the job must run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Git ref pattern (`refs/tags/*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_pattern: Option<String>,
}

/// A pack as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pack {
    #[serde(skip)]
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// Refuse deploy tokens; only OIDC deploys.
    pub oidc_only: bool,
    pub github: Option<TrustedPublisher>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "id, slug, name, oidc_only, github_repository, github_repository_id,
    github_repository_owner_id, github_workflow, github_environment, github_ref_pattern,
    created_at, updated_at";

fn from_row(r: &Row) -> Pack {
    let repository: Option<String> = r.get("github_repository");
    let github = match (
        repository,
        r.get::<_, Option<i64>>("github_repository_id"),
        r.get::<_, Option<i64>>("github_repository_owner_id"),
    ) {
        (Some(repository), Some(repository_id), Some(repository_owner_id)) => {
            Some(TrustedPublisher {
                repository,
                repository_id,
                repository_owner_id,
                workflow: r.get("github_workflow"),
                environment: r.get("github_environment"),
                ref_pattern: r.get("github_ref_pattern"),
            })
        }
        _ => None,
    };
    Pack {
        id: r.get("id"),
        slug: r.get("slug"),
        name: r.get("name"),
        oidc_only: r.get("oidc_only"),
        github,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// The pack with `slug`, or 404.
pub async fn get(db: &impl Sql, slug: &str) -> Result<Pack, ApiError> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM packs WHERE slug = $1"),
        &[(&slug, Type::TEXT)],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or_else(|| ApiError::not_found(format!("no pack {slug:?}")))
}

pub async fn list(db: &impl Sql) -> Result<Vec<Pack>, ApiError> {
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM packs ORDER BY slug"), &[])
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Settable fields of a pack.
#[derive(Debug, Default)]
pub struct PackFields {
    pub name: Option<String>,
    pub oidc_only: Option<bool>,
    /// Trusted publisher; `Some(None)` removes it.
    pub github: Option<Option<TrustedPublisher>>,
}

/// Creates a pack; 409 when the slug exists.
pub async fn create(db: &impl Sql, slug: &str, f: &PackFields) -> Result<Pack, ApiError> {
    let g = f.github.clone().flatten();
    db.query_opt(
        &format!(
            "INSERT INTO packs (slug, name, oidc_only, github_repository, github_repository_id,
                github_repository_owner_id, github_workflow, github_environment, github_ref_pattern)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
        ),
        &[
            (&slug, Type::TEXT),
            (&f.name.as_deref().unwrap_or(slug), Type::TEXT),
            (&f.oidc_only.unwrap_or(false), Type::BOOL),
            (&g.as_ref().map(|g| g.repository.clone()), Type::TEXT),
            (&g.as_ref().map(|g| g.repository_id), Type::INT8),
            (&g.as_ref().map(|g| g.repository_owner_id), Type::INT8),
            (&g.as_ref().and_then(|g| g.workflow.clone()), Type::TEXT),
            (&g.as_ref().and_then(|g| g.environment.clone()), Type::TEXT),
            (&g.as_ref().and_then(|g| g.ref_pattern.clone()), Type::TEXT),
        ],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or_else(|| ApiError::conflict(Code::PackExists, format!("pack {slug:?} already exists")))
}

/// Updates the given fields; 404 when the pack does not exist.
pub async fn update(db: &impl Sql, slug: &str, f: &PackFields) -> Result<Pack, ApiError> {
    let g = f.github.clone().flatten();
    db.query_opt(
        &format!(
            "UPDATE packs SET
                name = coalesce($2, name),
                oidc_only = coalesce($3, oidc_only),
                github_repository = CASE WHEN $4 THEN $5 ELSE github_repository END,
                github_repository_id = CASE WHEN $4 THEN $6 ELSE github_repository_id END,
                github_repository_owner_id = CASE WHEN $4 THEN $7 ELSE github_repository_owner_id END,
                github_workflow = CASE WHEN $4 THEN $8 ELSE github_workflow END,
                github_environment = CASE WHEN $4 THEN $9 ELSE github_environment END,
                github_ref_pattern = CASE WHEN $4 THEN $10 ELSE github_ref_pattern END,
                updated_at = now()
             WHERE slug = $1 RETURNING {COLUMNS}"
        ),
        &[
            (&slug, Type::TEXT),
            (&f.name, Type::TEXT),
            (&f.oidc_only, Type::BOOL),
            (&f.github.is_some(), Type::BOOL),
            (&g.as_ref().map(|g| g.repository.clone()), Type::TEXT),
            (&g.as_ref().map(|g| g.repository_id), Type::INT8),
            (&g.as_ref().map(|g| g.repository_owner_id), Type::INT8),
            (&g.as_ref().and_then(|g| g.workflow.clone()), Type::TEXT),
            (&g.as_ref().and_then(|g| g.environment.clone()), Type::TEXT),
            (&g.as_ref().and_then(|g| g.ref_pattern.clone()), Type::TEXT),
        ],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or_else(|| ApiError::not_found(format!("no pack {slug:?}")))
}

/// `*` matches any run of characters (including `/`); everything else is literal.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Events whose workflows run with code an outsider controls: never trusted to deploy.
const REFUSED_EVENTS: [&str; 2] = ["pull_request_target", "workflow_run"];

/// Matches verified claims against the pack's trusted publisher.
pub fn check_publisher(pack: &Pack, c: &GithubClaims) -> Result<(), ApiError> {
    let Some(p) = &pack.github else {
        return Err(mismatch(
            "no_publisher",
            format!(
                "pack {:?} has no trusted GitHub publisher; deploy with a pack token or configure one",
                pack.slug
            ),
        ));
    };
    if REFUSED_EVENTS.contains(&c.event_name.as_str()) {
        return Err(mismatch(
            "event",
            format!(
                "workflows triggered by {} may not deploy packs",
                c.event_name
            ),
        ));
    }
    if c.repository_id != p.repository_id.to_string() {
        return Err(mismatch(
            "repository",
            format!(
                "the token is for repository {} (id {}), but pack {:?} trusts {} (id {})",
                c.repository, c.repository_id, pack.slug, p.repository, p.repository_id
            ),
        ));
    }
    if c.repository_owner_id != p.repository_owner_id.to_string() {
        return Err(mismatch(
            "repository_owner",
            format!(
                "the token's repository owner id {} is not the trusted owner {}",
                c.repository_owner_id, p.repository_owner_id
            ),
        ));
    }
    if let Some(workflow) = &p.workflow {
        let want = workflow.rsplit('/').next().unwrap_or(workflow);
        if c.workflow_file() != Some(want) {
            return Err(mismatch(
                "workflow",
                format!(
                    "the token comes from workflow {}, but only {want} may deploy",
                    c.workflow_ref
                ),
            ));
        }
    }
    if let Some(env) = &p.environment
        && c.environment.as_deref() != Some(env.as_str())
    {
        return Err(mismatch(
            "environment",
            format!(
                "the job must run in environment {env:?}, not {:?}",
                c.environment.as_deref().unwrap_or("none")
            ),
        ));
    }
    if let Some(pattern) = &p.ref_pattern
        && !glob_match(pattern, &c.git_ref)
    {
        return Err(mismatch(
            "ref",
            format!(
                "ref {} does not match the trusted pattern {pattern}",
                c.git_ref
            ),
        ));
    }
    Ok(())
}

/// Records a token id; false when it was already used (a replay).
pub async fn consume_jti(db: &impl Sql, jti: &str, exp: i64) -> Result<bool, ApiError> {
    db.batch("DELETE FROM oidc_used_jti WHERE expires_at < now() - interval '5 minutes'")
        .await?;
    let expires =
        OffsetDateTime::from_unix_timestamp(exp).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let inserted = db
        .query_opt(
            "INSERT INTO oidc_used_jti (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING RETURNING jti",
            &[(&jti, Type::TEXT), (&expires, Type::TIMESTAMPTZ)],
        )
        .await?;
    Ok(inserted.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_patterns_glob_with_stars() {
        assert!(glob_match("refs/tags/*", "refs/tags/v1.2.0"));
        assert!(glob_match("refs/tags/v*-pack", "refs/tags/v1-pack"));
        assert!(!glob_match("refs/tags/*", "refs/heads/main"));
        assert!(glob_match("refs/heads/main", "refs/heads/main"));
        assert!(!glob_match("refs/heads/main", "refs/heads/main2"));
        assert!(glob_match("*", "anything"));
    }
}

/// A deployed pack build.
#[derive(Debug, Clone)]
pub struct Build {
    pub id: i64,
    /// Build id chosen by the deployer.
    pub build: String,
    /// Digest of its artifact list (identical re-deploy detection).
    pub content_digest: String,
    pub deployed_at: OffsetDateTime,
}

fn build_from_row(r: &Row) -> Build {
    Build {
        id: r.get("id"),
        build: r.get("build"),
        content_digest: r.get("content_digest"),
        deployed_at: r.get("deployed_at"),
    }
}

/// The build `build` of a pack, if deployed.
pub async fn find_build(
    db: &impl Sql,
    pack_id: i64,
    build: &str,
) -> Result<Option<Build>, ApiError> {
    Ok(db
        .query_opt(
            "SELECT id, build, content_digest, deployed_at FROM pack_builds WHERE pack_id = $1 AND build = $2",
            &[(&pack_id, Type::INT8), (&build, Type::TEXT)],
        )
        .await?
        .map(|r| build_from_row(&r)))
}

/// An artifact of a pack build.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildArtifact {
    #[serde(skip)]
    pub id: i64,
    /// Public download id.
    pub download_id: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
}

/// Artifacts of a build, by file name.
pub async fn build_artifacts(db: &impl Sql, build_id: i64) -> Result<Vec<BuildArtifact>, ApiError> {
    let rows = db
        .query(
            "SELECT id, download_id, filename, size, sha256 FROM artifacts WHERE pack_build_id = $1 ORDER BY filename",
            &[(&build_id, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| BuildArtifact {
            id: r.get("id"),
            download_id: r.get("download_id"),
            filename: r.get("filename"),
            size: r.get("size"),
            sha256: r.get("sha256"),
        })
        .collect())
}

/// A pack artifact about to be deployed, resolved from its upload.
#[derive(Debug, Clone, Serialize)]
pub struct NewBuildArtifact {
    pub storage_key: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
}

/// sha256 over the artifact list in file-name order.
pub fn content_digest(artifacts: &[NewBuildArtifact]) -> String {
    use sha2::Digest;
    let mut sorted: Vec<&NewBuildArtifact> = artifacts.iter().collect();
    sorted.sort_by(|a, b| a.filename.cmp(&b.filename));
    let canonical = serde_json::to_string(&sorted).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// Inserts a build and its artifacts; `None` when the build id exists (a concurrent deploy won).
pub async fn insert_build(
    db: &impl Sql,
    pack_id: i64,
    build: &str,
    digest: &str,
    deployed_by: &str,
    artifacts: &[NewBuildArtifact],
) -> Result<Option<Build>, ApiError> {
    let Some(row) = db
        .query_opt(
            "INSERT INTO pack_builds (pack_id, build, content_digest, deployed_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pack_id, build) DO NOTHING RETURNING id, build, content_digest, deployed_at",
            &[
                (&pack_id, Type::INT8),
                (&build, Type::TEXT),
                (&digest, Type::TEXT),
                (&deployed_by, Type::TEXT),
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let b = build_from_row(&row);
    for a in artifacts {
        db.query(
            "INSERT INTO artifacts (download_id, pack_build_id, filename, size, sha256, content_type, storage_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                (&super::releases::new_download_id(), Type::TEXT),
                (&b.id, Type::INT8),
                (&a.filename, Type::TEXT),
                (&a.size, Type::INT8),
                (&a.sha256, Type::TEXT),
                (&a.content_type, Type::TEXT),
                (&a.storage_key, Type::TEXT),
            ],
        )
        .await?;
    }
    Ok(Some(b))
}

/// A pack channel as runners see it.
#[derive(Debug, Clone)]
pub struct PackChannel {
    /// The build it points at.
    pub build: Build,
    /// The build before (roll-back target).
    pub previous_build: Option<String>,
    pub updated_at: OffsetDateTime,
}

const CHANNEL_SELECT: &str =
    "SELECT b.id, b.build, b.content_digest, b.deployed_at, p.build AS previous_build,
        c.updated_at
    FROM pack_channels c
    JOIN pack_builds b ON b.id = c.build_id
    LEFT JOIN pack_builds p ON p.id = c.previous_build_id";

/// The build a pack channel points at.
pub async fn channel(
    db: &impl Sql,
    pack_id: i64,
    name: &str,
) -> Result<Option<PackChannel>, ApiError> {
    Ok(db
        .query_opt(
            &format!("{CHANNEL_SELECT} WHERE c.pack_id = $1 AND c.name = $2"),
            &[(&pack_id, Type::INT8), (&name, Type::TEXT)],
        )
        .await?
        .map(|r| PackChannel {
            build: build_from_row(&r),
            previous_build: r.get("previous_build"),
            updated_at: r.get("updated_at"),
        }))
}

/// A pack channel as operators see it: where it points, where it pointed before, who moved it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackChannelSummary {
    pub name: String,
    /// The build it points at.
    pub build: String,
    /// The build it pointed at before (the roll-back target), if any.
    pub previous_build: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who moved it last (`null` for a channel no one has moved since it was recorded).
    pub updated_by: Option<String>,
}

/// Every channel of a pack, by name.
pub async fn channel_summaries(
    db: &impl Sql,
    pack_id: i64,
) -> Result<Vec<PackChannelSummary>, ApiError> {
    let rows = db
        .query(
            "SELECT c.name, b.build, p.build AS previous_build, c.updated_at, c.updated_by
             FROM pack_channels c
             JOIN pack_builds b ON b.id = c.build_id
             LEFT JOIN pack_builds p ON p.id = c.previous_build_id
             WHERE c.pack_id = $1 ORDER BY c.name",
            &[(&pack_id, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PackChannelSummary {
            name: r.get("name"),
            build: r.get("build"),
            previous_build: r.get("previous_build"),
            updated_at: r.get("updated_at"),
            updated_by: r.get("updated_by"),
        })
        .collect())
}

/// A deployed build as operators see it in a pack's detail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackBuildSummary {
    pub build: String,
    /// When it was deployed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub artifact_count: i64,
}

/// A pack's newest builds, newest first, at most `limit`.
pub async fn recent_builds(
    db: &impl Sql,
    pack_id: i64,
    limit: i64,
) -> Result<Vec<PackBuildSummary>, ApiError> {
    let rows = db
        .query(
            "SELECT b.build, b.deployed_at,
                (SELECT count(*) FROM artifacts a WHERE a.pack_build_id = b.id) AS artifact_count
             FROM pack_builds b WHERE b.pack_id = $1 ORDER BY b.id DESC LIMIT $2",
            &[(&pack_id, Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PackBuildSummary {
            build: r.get("build"),
            created_at: r.get("deployed_at"),
            artifact_count: r.get("artifact_count"),
        })
        .collect())
}

/// Points a pack channel at `build_id` (creating the channel), with compare-and-swap on the
/// build the caller expects (`Some(None)`: the channel must not exist yet). Returns the
/// build it pointed at before.
pub async fn move_channel(
    db: &impl Sql,
    pack_id: i64,
    name: &str,
    build_id: i64,
    expected: Option<Option<&str>>,
    actor: &str,
) -> Result<Option<String>, ApiError> {
    let current = db
        .query_opt(
            "SELECT b.build FROM pack_channels c JOIN pack_builds b ON b.id = c.build_id
             WHERE c.pack_id = $1 AND c.name = $2 FOR UPDATE OF c",
            &[(&pack_id, Type::INT8), (&name, Type::TEXT)],
        )
        .await?
        .map(|r| r.get::<_, String>(0));
    if let Some(expected) = expected
        && expected != current.as_deref()
    {
        return Err(ApiError::conflict(
            Code::ChannelMoved,
            format!(
                "pack channel {name} points at {} now, not {}; re-read it and retry",
                current.as_deref().unwrap_or("nothing"),
                expected.unwrap_or("nothing")
            ),
        )
        .with_extra(serde_json::json!({ "currentBuild": current })));
    }
    db.query(
        "INSERT INTO pack_channels (pack_id, name, build_id, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (pack_id, name) DO UPDATE SET
            previous_build_id = CASE WHEN pack_channels.build_id <> EXCLUDED.build_id
                                     THEN pack_channels.build_id ELSE pack_channels.previous_build_id END,
            build_id = EXCLUDED.build_id, updated_at = now(), updated_by = EXCLUDED.updated_by",
        &[
            (&pack_id, Type::INT8),
            (&name, Type::TEXT),
            (&build_id, Type::INT8),
            (&actor, Type::TEXT),
        ],
    )
    .await?;
    Ok(current)
}

/// A pack write's credential, verified but not yet matched against a pack.
pub enum PackCredential {
    /// A GitHub Actions OIDC token whose signature, issuer, audience and times hold.
    Oidc(GithubClaims),
    /// A deploy token (pack, or an operator's admin token) that is valid.
    Token(Principal),
}

/// Authorizes a verified credential for a write to `pack`: an OIDC token must come from the
/// pack's trusted publisher (and is then used up: each `jti` once), a pack deploy token must
/// be this pack's (and the pack must accept tokens). An admin token passes, `oidcOnly`
/// included: an admin can change that setting anyway, and the deploy is audited with the
/// admin's name. With `action`, the actor's limit for it is taken too (OIDC deploys count
/// per repository).
pub async fn authorize(
    db: &impl Sql,
    limits: &Limits,
    credential: PackCredential,
    pack: &Pack,
    action: Option<Action>,
) -> Result<Actor, ApiError> {
    let principal = match credential {
        PackCredential::Oidc(claims) => {
            check_publisher(pack, &claims)?;
            if !consume_jti(db, &claims.jti, claims.exp).await? {
                return Err(oidc::invalid(
                    "replayed",
                    "this OIDC token was already used; request a fresh one for every call",
                ));
            }
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
        limits::take(db, limits, action, &principal.key()).await?;
    }
    Ok(Actor {
        name: principal.actor(),
        token_id: principal.token_id(),
    })
}
