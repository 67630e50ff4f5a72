//! Admin routes: deploy tokens, products, packs, the audit log. Writes take an admin token
//! or an admin's session ([`Admin`]), reads any signed-in operator too ([`Reader`]); both
//! are verified before anything else of the request is read.

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::domain::audit::{self, Actor, AuditQuery};
use crate::domain::ids::{Platform, Slug, is_hidden_control, parse_channel, parse_name};
use crate::domain::packs::Pack;
use crate::domain::packs::{
    self, PackBuildSummary, PackChannelSummary, PackFields, TrustedPublisher,
};
use crate::domain::products::{self, Product, ProductFields};
use crate::domain::signature;
use crate::domain::tokens::{self, Scope, TokenKind, TokenSpec};
use crate::error::{ApiError, Code};
use crate::http::extract::{Admin, Json, NoBody, NoQuery, Path, Query, Reader};
use crate::http::{ApiResult, quoted, respond};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
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

/// Issues a token; the plaintext appears only in this answer.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tokens",
    operation_id = "createToken",
    tag = "admin",
    summary = "Issue a token; its plaintext appears only in this answer.",
    request_body = CreateToken,
    responses((status = 201, description = "Issued.", body = TokenCreated)),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415]))),
)]
pub async fn create_token(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
    Json(body): Json<CreateToken>,
) -> ApiResult {
    let mut conn = state.db.conn().await?;
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
            let found = packs::get(&conn, &pack).await?;
            if found.oidc_only {
                return Err(ApiError::conflict(
                    Code::PackOidcOnly,
                    format!(
                        "pack {pack:?} accepts GitHub OIDC deploys only; no token can be issued for it"
                    ),
                ));
            }
            spec.pack_id = Some(found.id);
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
    audit::commit(
        tx,
        &Actor::from(&principal),
        "token.issue",
        &format!("token:{id}"),
        json!({"name": spec.name, "kind": kind.as_str(), "products": spec.products,
               "scopes": spec.scopes, "channels": spec.channels}),
    )
    .await?;
    let created = TokenCreated {
        id,
        token: plaintext.expose(),
        name: &spec.name,
        kind: kind.as_str(),
        products: &spec.products,
        pack_id: spec.pack_id,
        scopes: &spec.scopes,
        channels: &spec.channels,
        expires_at,
    };
    respond::json(StatusCode::CREATED, &created)
}

/// A token just issued.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated<'a> {
    id: uuid::Uuid,
    /// The secret: shown here once, never again.
    token: &'a str,
    name: &'a str,
    kind: &'a str,
    products: &'a [String],
    pack_id: Option<i64>,
    scopes: &'a [String],
    channels: &'a [String],
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// Every token, newest first: never the secret.
#[utoipa::path(
    get,
    path = "/api/v1/admin/tokens",
    operation_id = "listTokens",
    tag = "admin",
    summary = "Deploy tokens (never their secrets).",
    responses((status = 200, description = "Tokens.", body = TokenList)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn list_tokens(
    _: Reader,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let tokens = tokens::list(&conn).await?;
    respond::json(StatusCode::OK, &TokenList { tokens })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    tokens: Vec<tokens::Listed>,
}

/// `{id}` of a token.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    id: String,
}

/// Revokes a token (idempotent).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/tokens/{id}",
    operation_id = "revokeToken",
    tag = "admin",
    summary = "Revoke a token (idempotent).",
    params(TokenPath),
    responses((status = 204, description = "Revoked.")),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([413, 415]))),
)]
pub async fn revoke_token(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    Path(path): Path<TokenPath>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    let id = uuid::Uuid::parse_str(&path.id)
        .map_err(|_| ApiError::not_found(format!("no token {}", quoted(&path.id))))?;
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    let name = tokens::revoke(&tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    audit::commit(
        tx,
        &Actor::from(&principal),
        "token.revoke",
        &format!("token:{id}"),
        json!({"name": name}),
    )
    .await?;
    Ok(respond::no_content())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductBody {
    /// Slug (create; on update it must match the path).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    slug: Option<String>,
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

/// Creates a product and its three channels.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products",
    operation_id = "createProduct",
    tag = "admin",
    summary = "Create a product.",
    request_body = ProductBody,
    responses((status = 201, description = "Created.", body = Product)),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn create_product(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
    Json(mut body): Json<ProductBody>,
) -> ApiResult {
    let mut conn = state.db.conn().await?;
    let slug = body
        .slug
        .take()
        .ok_or_else(|| ApiError::invalid("slug is required"))?;
    let slug = Slug::parse("slug", &slug)?;
    let fields = product_fields(body)?;
    let tx = conn.transaction().await?;
    let product = products::create(&tx, slug.as_str(), &fields).await?;
    audit::commit(
        tx,
        &Actor::from(&principal),
        "product.create",
        slug.as_str(),
        json!(product),
    )
    .await?;
    respond::json(StatusCode::CREATED, &product)
}

/// Changes a product's name, required platforms, size limit or updater key.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/products/{product}",
    operation_id = "updateProduct",
    tag = "admin",
    summary = "Change a product.",
    params(super::releases::ProductPath),
    request_body = ProductBody,
    responses((status = 200, description = "Changed.", body = Product)),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([413, 415, 422]))),
)]
pub async fn update_product(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    Path(path): Path<super::releases::ProductPath>,
    _: Query<NoQuery>,
    Json(body): Json<ProductBody>,
) -> ApiResult {
    let slug = path.product;
    let mut conn = state.db.conn().await?;
    if body.slug.as_deref().is_some_and(|s| s != slug.as_str()) {
        return Err(ApiError::invalid("a product's slug cannot change"));
    }
    let fields = product_fields(body)?;
    let tx = conn.transaction().await?;
    let product = products::update(&tx, slug.as_str(), &fields).await?;
    audit::commit(
        tx,
        &Actor::from(&principal),
        "product.update",
        slug.as_str(),
        json!(product),
    )
    .await?;
    respond::json(StatusCode::OK, &product)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/products",
    operation_id = "listProducts",
    tag = "admin",
    summary = "Products.",
    responses((status = 200, description = "Products.", body = ProductList)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn list_products(
    _: Reader,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let products = products::list(&conn).await?;
    respond::json(StatusCode::OK, &ProductList { products })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductList {
    products: Vec<Product>,
}

/// Every write (publish, deploy, channel move, yank, token issue and revoke, product and
/// pack changes) with who and when, newest first; optionally only a product's or a pack's,
/// an actor's, an action's or a time window's entries.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    operation_id = "auditLog",
    tag = "admin",
    summary = "Every write, newest first (filtered by product, pack, actor, action, time).",
    params(AuditQuery),
    responses((status = 200, description = "A page of entries.", body = AuditPage)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn audit_log(
    _: Reader,
    State(state): State<Arc<AppState>>,
    Query(query): Query<AuditQuery>,
) -> ApiResult {
    let (cursor, limit, filter) = query.parse()?;
    let conn = state.db.conn().await?;
    let entries = audit::page(&conn, cursor, limit, &filter).await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    respond::json(
        StatusCode::OK,
        &AuditPage {
            entries,
            next_cursor,
        },
    )
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    entries: Vec<audit::Entry>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackBody {
    /// Slug (create; on update it must match the path).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    slug: Option<String>,
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

/// Creates a pack, optionally with its trusted GitHub publisher.
#[utoipa::path(
    post,
    path = "/api/v1/admin/packs",
    operation_id = "createPack",
    tag = "admin",
    summary = "Create a pack, optionally with its trusted publisher.",
    request_body = PackBody,
    responses((status = 201, description = "Created.", body = Pack)),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([409, 413, 415, 422]))),
)]
pub async fn create_pack(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
    Json(mut body): Json<PackBody>,
) -> ApiResult {
    let mut conn = state.db.conn().await?;
    let slug = body
        .slug
        .take()
        .ok_or_else(|| ApiError::invalid("slug is required"))?;
    let slug = Slug::parse("slug", &slug)?;
    let fields = pack_fields(body)?;
    let tx = conn.transaction().await?;
    let pack = packs::create(&tx, slug.as_str(), &fields).await?;
    audit::commit(
        tx,
        &Actor::from(&principal),
        "pack.create",
        slug.as_str(),
        json!(pack),
    )
    .await?;
    respond::json(StatusCode::CREATED, &pack)
}

/// `{pack}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PackPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub pack: Slug,
}

/// Changes a pack's name, OIDC-only setting or trusted publisher.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/packs/{pack}",
    operation_id = "updatePack",
    tag = "admin",
    summary = "Change a pack.",
    params(PackPath),
    request_body = PackBody,
    responses((status = 200, description = "Changed.", body = Pack)),
    security(("adminToken" = []), ("sessionCookie" = [])),
    extensions(("x-problems" = json!([413, 415, 422]))),
)]
pub async fn update_pack(
    Admin(principal): Admin,
    State(state): State<Arc<AppState>>,
    Path(path): Path<PackPath>,
    _: Query<NoQuery>,
    Json(body): Json<PackBody>,
) -> ApiResult {
    let slug = path.pack;
    let mut conn = state.db.conn().await?;
    if body.slug.as_deref().is_some_and(|s| s != slug.as_str()) {
        return Err(ApiError::invalid("a pack's slug cannot change"));
    }
    let fields = pack_fields(body)?;
    let tx = conn.transaction().await?;
    let pack = packs::update(&tx, slug.as_str(), &fields).await?;
    audit::commit(
        tx,
        &Actor::from(&principal),
        "pack.update",
        slug.as_str(),
        json!(pack),
    )
    .await?;
    respond::json(StatusCode::OK, &pack)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/packs",
    operation_id = "listPacks",
    tag = "admin",
    summary = "Packs.",
    responses((status = 200, description = "Packs.", body = PackList)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn list_packs(
    _: Reader,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let packs = packs::list(&conn).await?;
    respond::json(StatusCode::OK, &PackList { packs })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PackList {
    packs: Vec<Pack>,
}

/// One pack as `GET /api/v1/admin/packs` lists it, with its channels and its latest builds.
#[utoipa::path(
    get,
    path = "/api/v1/admin/packs/{pack}",
    operation_id = "getPack",
    tag = "admin",
    summary = "A pack with its channels and latest builds.",
    params(PackPath),
    responses((status = 200, description = "The pack.", body = PackDetail)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn get_pack(
    _: Reader,
    State(state): State<Arc<AppState>>,
    Path(path): Path<PackPath>,
    _: Query<NoQuery>,
) -> ApiResult {
    let conn = state.db.conn().await?;
    let pack = packs::get(&conn, path.pack.as_str()).await?;
    let (channels, builds) = tokio::try_join!(
        packs::channel_summaries(&conn, pack.id),
        packs::recent_builds(&conn, pack.id, PACK_DETAIL_BUILDS),
    )?;
    respond::json(
        StatusCode::OK,
        &PackDetail {
            pack,
            channels,
            builds,
        },
    )
}

/// How many of a pack's builds its detail lists (the newest).
const PACK_DETAIL_BUILDS: i64 = 100;

/// A pack, its channels and its latest builds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PackDetail {
    #[serde(flatten)]
    pack: Pack,
    /// Every channel of the pack, by name.
    channels: Vec<PackChannelSummary>,
    /// The newest builds first, at most 100.
    builds: Vec<PackBuildSummary>,
}
