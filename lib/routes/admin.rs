//! Admin routes: deploy tokens, products, audit log. Every handler requires an admin token.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::{Conn, Sql};
use crate::domain::audit::{self, Actor};
use crate::domain::ids::{Platform, Slug, is_hidden_control, parse_channel, parse_name};
use crate::domain::packs::{self, PackFields, TrustedPublisher};
use crate::domain::products::{self, ProductFields};
use crate::domain::signature;
use crate::domain::tokens::{self, Principal, Scope, TokenKind, TokenSpec};
use crate::http::{ApiError, ApiRequest, ApiResult, quoted, respond};
use crate::state::AppState;

async fn admin(state: &AppState, req: &ApiRequest) -> Result<(Conn, Principal), ApiError> {
    let conn = state.db.conn().await?;
    let principal = tokens::authenticate_request(&conn, &state.config, req).await?;
    principal.require_admin()?;
    Ok((conn, principal))
}

fn actor(p: &Principal) -> Actor {
    Actor {
        name: p.actor(),
        token_id: Some(p.token_id),
    }
}

/// `limit` (1–100, default 20) and `cursor` query parameters.
pub fn pagination(req: &ApiRequest) -> Result<(Option<i64>, i64), ApiError> {
    parse_pagination(
        req.query("limit").as_deref(),
        req.query("cursor").as_deref(),
    )
}

/// Parses `limit` and `cursor` (a positive id, as `nextCursor` returns it).
pub fn parse_pagination(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Option<i64>, i64), ApiError> {
    let limit = match limit {
        None => 20,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::invalid("limit must be a number from 1 to 100"))?,
    };
    let cursor = match cursor {
        None => None,
        // Exactly as `nextCursor` spells it: digits, no sign, no leading zero.
        Some(c) => Some(
            Some(c)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()) && !c.starts_with('0'))
                .and_then(|c| c.parse::<i64>().ok())
                .filter(|c| *c > 0)
                .ok_or_else(|| ApiError::invalid("cursor is not one this API returned"))?,
        ),
    };
    Ok((cursor, limit))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateToken {
    /// A name for people (1–100 characters).
    #[schema(min_length = 1)]
    name: String,
    /// `app`, `pack` or `admin`.
    #[schema(pattern = "^(app|pack|admin)$")]
    kind: String,
    /// App tokens: product slugs, or `["*"]`.
    products: Option<Vec<String>>,
    /// Pack tokens: the pack slug.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pack: Option<String>,
    /// App tokens: `upload`, `publish`, `promote`, `yank` (default all).
    scopes: Option<Vec<String>>,
    /// App tokens: channels it may publish to or move, or `["*"]` (default all).
    channels: Option<Vec<String>>,
    /// Days until it expires (1–3650).
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i64>,
}

/// `POST /api/v1/admin/tokens`: the plaintext token appears only in this response.
pub async fn create_token(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (mut conn, principal) = admin(&state, &req).await?;
    let body: CreateToken = req.json()?;
    let name = parse_name("name", &body.name)?;
    let kind = TokenKind::parse(&body.kind)
        .ok_or_else(|| ApiError::invalid("kind must be app, pack or admin"))?;
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d) if (1..=3650).contains(&d) => {
            Some(OffsetDateTime::now_utc() + time::Duration::days(d))
        }
        Some(_) => return Err(ApiError::invalid("expiresInDays must be from 1 to 3650")),
    };
    let mut spec = TokenSpec {
        name,
        kind,
        products: Vec::new(),
        pack_id: None,
        scopes: Vec::new(),
        channels: Vec::new(),
        expires_at,
        created_by: principal.actor(),
    };
    // Every field is for some kinds only: one a kind does not take is refused, never
    // ignored (the caller meant it to matter).
    let not_for = |field: &str, given: bool| {
        if given {
            Err(ApiError::invalid(format!(
                "{field} is not for {} tokens ({})",
                kind.as_str(),
                match kind {
                    TokenKind::App => "app tokens take products, scopes and channels",
                    TokenKind::Pack => "pack tokens take pack: they deploy that one pack",
                    TokenKind::Admin => "admin tokens may do everything",
                }
            )))
        } else {
            Ok(())
        }
    };
    let no_duplicates = |field: &str, list: &Option<Vec<String>>| {
        let list = list.as_deref().unwrap_or_default();
        match list
            .iter()
            .enumerate()
            .find(|(i, v)| list[..*i].contains(v))
        {
            Some((_, v)) => Err(ApiError::invalid(format!(
                "{field} lists {} twice",
                crate::http::quoted(v)
            ))),
            None => Ok(()),
        }
    };
    no_duplicates("products", &body.products)?;
    no_duplicates("scopes", &body.scopes)?;
    no_duplicates("channels", &body.channels)?;
    match kind {
        TokenKind::App => {
            not_for("pack", body.pack.is_some())?;
            if body.scopes.as_ref().is_some_and(Vec::is_empty) {
                return Err(ApiError::invalid(
                    "scopes is empty: a token that may do nothing is refused; list upload, \
                     publish, promote or yank (or leave it out for upload and publish)",
                ));
            }
            if body.channels.as_ref().is_some_and(Vec::is_empty) {
                return Err(ApiError::invalid(
                    "channels is empty: list the channels it may publish to or move, or [\"*\"]",
                ));
            }
            let products = body.products.unwrap_or_default();
            if products.is_empty() || products.len() > 100 {
                return Err(ApiError::invalid(
                    "app tokens need products: a list of 1 to 100 product slugs, or [\"*\"]",
                ));
            }
            for p in &products {
                if p != "*" {
                    Slug::parse("product", p)?;
                    products::get(&conn, p).await?;
                }
            }
            let scopes = body
                .scopes
                .unwrap_or_else(|| vec!["upload".into(), "publish".into()]);
            for s in &scopes {
                Scope::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "scope {s:?} is not one of upload, publish, promote, yank"
                    ))
                })?;
            }
            let channels = body.channels.unwrap_or_else(|| vec!["*".into()]);
            for c in &channels {
                if c != "*" {
                    parse_channel(c).map_err(|e| ApiError::invalid(e.detail))?;
                }
            }
            spec.products = products;
            spec.scopes = scopes;
            spec.channels = channels;
        }
        TokenKind::Pack => {
            not_for("products", body.products.is_some())?;
            not_for("scopes", body.scopes.is_some())?;
            not_for("channels", body.channels.is_some())?;
            let pack = body
                .pack
                .ok_or_else(|| ApiError::invalid("pack tokens need pack: the pack's slug"))?;
            Slug::parse("pack", &pack)?;
            let row = conn
                .query_opt(
                    "SELECT id, oidc_only FROM packs WHERE slug = $1",
                    &[(&pack, Type::TEXT)],
                )
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no pack {pack:?}")))?;
            if row.get::<_, bool>("oidc_only") {
                return Err(ApiError::conflict(
                    "pack_oidc_only",
                    format!(
                        "pack {pack:?} accepts GitHub OIDC deploys only; no token can be issued for it"
                    ),
                ));
            }
            spec.pack_id = Some(row.get("id"));
        }
        TokenKind::Admin => {
            not_for("products", body.products.is_some())?;
            not_for("pack", body.pack.is_some())?;
            not_for("scopes", body.scopes.is_some())?;
            not_for("channels", body.channels.is_some())?;
        }
    }
    let tx = conn.transaction().await?;
    let (id, plaintext) = tokens::create(&tx, &state.config.token_pepper, &spec).await?;
    audit::record(
        &tx,
        &actor(&principal),
        "token.issue",
        &format!("token:{id}"),
        json!({"name": spec.name, "kind": kind.as_str(), "products": spec.products,
               "scopes": spec.scopes, "channels": spec.channels}),
    )
    .await?;
    tx.commit().await?;
    respond::json(
        StatusCode::CREATED,
        &json!({
            "id": id, "token": plaintext.expose(), "name": spec.name, "kind": kind.as_str(),
            "products": spec.products, "packId": spec.pack_id, "scopes": spec.scopes,
            "channels": spec.channels,
            "expiresAt": expires_at.map(rfc3339),
        }),
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `GET /api/v1/admin/tokens`: never the secret.
pub async fn list_tokens(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (conn, _) = admin(&state, &req).await?;
    let rows = conn
        .query(
            "SELECT t.id, t.name, t.kind, t.products, p.slug AS pack, t.scopes, t.channels, t.created_at,
                    t.created_by, t.expires_at, t.revoked_at, t.last_used_at
             FROM deploy_tokens t LEFT JOIN packs p ON p.id = t.pack_id ORDER BY t.created_at DESC",
            &[],
        )
        .await?;
    let opt = |r: &tokio_postgres::Row, c: &str| r.get::<_, Option<OffsetDateTime>>(c).map(rfc3339);
    let tokens: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, Uuid>("id"), "name": r.get::<_, String>("name"),
                "kind": r.get::<_, String>("kind"), "products": r.get::<_, Vec<String>>("products"),
                "pack": r.get::<_, Option<String>>("pack"), "scopes": r.get::<_, Vec<String>>("scopes"),
                "channels": r.get::<_, Vec<String>>("channels"),
                "createdAt": rfc3339(r.get("created_at")), "createdBy": r.get::<_, String>("created_by"),
                "expiresAt": opt(r, "expires_at"), "revokedAt": opt(r, "revoked_at"),
                "lastUsedAt": opt(r, "last_used_at"),
            })
        })
        .collect();
    respond::json(StatusCode::OK, &json!({ "tokens": tokens }))
}

/// `DELETE /api/v1/admin/tokens/{id}`: revoke (idempotent), 204.
pub async fn revoke_token(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (mut conn, principal) = admin(&state, &req).await?;
    req.no_body()?;
    let id = Uuid::parse_str(req.param("id"))
        .map_err(|_| ApiError::not_found(format!("no token {}", quoted(req.param("id")))))?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE deploy_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING name",
            &[(&id, Type::UUID)],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    let name: String = row.get(0);
    audit::record(
        &tx,
        &actor(&principal),
        "token.revoke",
        &format!("token:{id}"),
        json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(respond::no_content())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ProductBody {
    /// Slug (create; on update it must match the path).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    slug: Option<String>,
    /// Display name.
    name: Option<String>,
    /// Platforms every channel release must cover (`linux-x86_64`, …).
    required_platforms: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    /// Largest artifact accepted, in bytes (`null`: the default).
    #[schema(minimum = 1)]
    max_artifact_size: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    /// Tauri updater public key (the `pubkey` setting; `null` removes it).
    updater_public_key: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn product_fields(body: ProductBody) -> Result<ProductFields, ApiError> {
    let name = body.name.map(|n| parse_name("name", &n)).transpose()?;
    let required_platforms = body
        .required_platforms
        .map(|list| {
            list.iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if let Some(Some(size)) = body.max_artifact_size
        && size <= 0
    {
        return Err(ApiError::invalid(
            "maxArtifactSize must be a positive number of bytes",
        ));
    }
    let updater_public_key = match body.updater_public_key {
        Some(Some(k)) => Some(Some(signature::parse_public_key(&k)?.0)),
        other => other.map(|_| None),
    };
    Ok(ProductFields {
        name,
        required_platforms,
        max_artifact_size: body.max_artifact_size,
        updater_public_key,
    })
}

/// `POST /api/v1/admin/products`.
pub async fn create_product(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (mut conn, principal) = admin(&state, &req).await?;
    let mut body: ProductBody = req.json()?;
    let slug = body
        .slug
        .take()
        .ok_or_else(|| ApiError::invalid("slug is required"))?;
    let slug = Slug::parse("slug", &slug)?;
    let fields = product_fields(body)?;
    let tx = conn.transaction().await?;
    let product = products::create(&tx, slug.as_str(), &fields).await?;
    audit::record(
        &tx,
        &actor(&principal),
        "product.create",
        slug.as_str(),
        json!(product),
    )
    .await?;
    tx.commit().await?;
    respond::json(StatusCode::CREATED, &product)
}

/// `PATCH /api/v1/admin/products/{product}`.
pub async fn update_product(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (mut conn, principal) = admin(&state, &req).await?;
    let slug = Slug::parse("product", req.param("product"))?;
    let body: ProductBody = req.json()?;
    if body.slug.as_deref().is_some_and(|s| s != slug.as_str()) {
        return Err(ApiError::invalid("a product's slug cannot change"));
    }
    let fields = product_fields(body)?;
    let tx = conn.transaction().await?;
    let product = products::update(&tx, slug.as_str(), &fields).await?;
    audit::record(
        &tx,
        &actor(&principal),
        "product.update",
        slug.as_str(),
        json!(product),
    )
    .await?;
    tx.commit().await?;
    respond::json(StatusCode::OK, &product)
}

/// `GET /api/v1/admin/products`.
pub async fn list_products(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (conn, _) = admin(&state, &req).await?;
    respond::json(
        StatusCode::OK,
        &json!({ "products": products::list(&conn).await? }),
    )
}

/// `GET /api/v1/admin/audit?limit=&cursor=`: newest first.
pub async fn audit_log(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (conn, _) = admin(&state, &req).await?;
    let (cursor, limit) = pagination(&req)?;
    let entries = audit::page(&conn, cursor, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    respond::json(
        StatusCode::OK,
        &json!({ "entries": entries, "nextCursor": next }),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PackBody {
    /// Slug (create; on update it must match the path).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    slug: Option<String>,
    /// Display name.
    name: Option<String>,
    /// Refuse pack deploy tokens; only GitHub OIDC deploys.
    oidc_only: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    /// Trusted publisher (`null` removes it).
    github: Option<Option<TrustedPublisher>>,
}

/// A GitHub owner or repository name: letters, digits, `.`, `_`, `-`, at most 100.
fn github_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Free text GitHub compares (environment, ref pattern): 1 to 255 characters, no controls.
fn github_text(field: &str, s: &Option<String>) -> Result<(), ApiError> {
    match s {
        Some(v) if v.is_empty() || v.chars().count() > 255 || v.chars().any(is_hidden_control) => {
            Err(ApiError::invalid(format!(
                "{field} must be 1 to 255 characters without control characters"
            )))
        }
        _ => Ok(()),
    }
}

fn pack_fields(body: PackBody) -> Result<PackFields, ApiError> {
    let name = body.name.map(|n| parse_name("name", &n)).transpose()?;
    if let Some(Some(g)) = &body.github {
        let (owner, repo) = g.repository.split_once('/').unwrap_or(("", ""));
        if !github_name(owner) || !github_name(repo) {
            return Err(ApiError::invalid(
                "github.repository must be owner/name (letters, digits, '.', '_', '-')",
            ));
        }
        if g.repository_id <= 0 || g.repository_owner_id <= 0 {
            return Err(ApiError::invalid(
                "github.repositoryId and github.repositoryOwnerId must be GitHub's numeric ids",
            ));
        }
        if let Some(w) = &g.workflow
            && (w.is_empty()
                || w.len() > 255
                || !(w.ends_with(".yml") || w.ends_with(".yaml"))
                || !w
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/')))
        {
            return Err(ApiError::invalid(
                "github.workflow must be a workflow file name such as deploy.yml",
            ));
        }
        github_text("github.environment", &g.environment)?;
        github_text("github.refPattern", &g.ref_pattern)?;
    }
    Ok(PackFields {
        name,
        oidc_only: body.oidc_only,
        github: body.github,
    })
}

/// `POST /api/v1/admin/packs`.
pub async fn create_pack(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (mut conn, principal) = admin(&state, &req).await?;
    let mut body: PackBody = req.json()?;
    let slug = body
        .slug
        .take()
        .ok_or_else(|| ApiError::invalid("slug is required"))?;
    let slug = Slug::parse("slug", &slug)?;
    let fields = pack_fields(body)?;
    let tx = conn.transaction().await?;
    let pack = packs::create(&tx, slug.as_str(), &fields).await?;
    audit::record(
        &tx,
        &actor(&principal),
        "pack.create",
        slug.as_str(),
        json!(pack),
    )
    .await?;
    tx.commit().await?;
    respond::json(StatusCode::CREATED, &pack)
}

/// `PATCH /api/v1/admin/packs/{pack}`.
pub async fn update_pack(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (mut conn, principal) = admin(&state, &req).await?;
    let slug = Slug::parse("pack", req.param("pack"))?;
    let body: PackBody = req.json()?;
    if body.slug.as_deref().is_some_and(|s| s != slug.as_str()) {
        return Err(ApiError::invalid("a pack's slug cannot change"));
    }
    let fields = pack_fields(body)?;
    let tx = conn.transaction().await?;
    let pack = packs::update(&tx, slug.as_str(), &fields).await?;
    audit::record(
        &tx,
        &actor(&principal),
        "pack.update",
        slug.as_str(),
        json!(pack),
    )
    .await?;
    tx.commit().await?;
    respond::json(StatusCode::OK, &pack)
}

/// `GET /api/v1/admin/packs`.
pub async fn list_packs(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let (conn, _) = admin(&state, &req).await?;
    respond::json(
        StatusCode::OK,
        &json!({ "packs": packs::list(&conn).await? }),
    )
}

/// Properties of the pagination parameters: any input is a page or a 400, and every cursor
/// the API returns (a positive id) is accepted as it was printed.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{hostile_string, refusal};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn returned_cursors_round_trip(id in 1i64..=i64::MAX, limit in 1i64..=100) {
            let (cursor, l) = parse_pagination(Some(&limit.to_string()), Some(&id.to_string())).unwrap();
            prop_assert_eq!((cursor, l), (Some(id), limit));
        }

        #[test]
        fn any_query_is_a_page_or_invalid_input(
            limit in prop::option::of(prop_oneof![hostile_string(12), "-?[0-9]{1,21}", "\\+[0-9]{1,3}"]),
            cursor in prop::option::of(prop_oneof![hostile_string(12), "-?[0-9]{1,21}", "0[0-9]{1,4}", "\\+[0-9]{1,4}"]),
        ) {
            match parse_pagination(limit.as_deref(), cursor.as_deref()) {
                Ok((c, l)) => {
                    prop_assert!((1..=100).contains(&l));
                    if let Some(c) = c {
                        prop_assert!(c > 0);
                        let printed = c.to_string();
                        prop_assert_eq!(cursor.as_deref(), Some(printed.as_str()));
                    } else {
                        prop_assert!(cursor.is_none());
                    }
                    if limit.is_none() {
                        prop_assert_eq!(l, 20);
                    }
                }
                Err(e) => prop_assert_eq!(refusal(&e), (400, "invalid_input")),
            }
        }
    }
}
