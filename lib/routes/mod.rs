//! The routes: one module per endpoint family, and [`routes`], the one route table. Every
//! handler declares its contract with `#[utoipa::path]`, so the table is also the OpenAPI
//! document's paths ([`openapi`]). The local server, every Vercel and Lambda function and
//! the document all read it.

pub mod admin;
pub mod channels;
pub mod consumers;
pub mod download;
pub mod health;
pub mod installer;
pub mod openapi;
pub mod packs;
pub mod presign;
pub mod publish;
pub mod releases;
pub mod updater;

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::middleware;
use crate::http::respond::CachePolicy;
use crate::state::AppState;

/// Every route, with its handlers and their OpenAPI operations.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::get))
        .routes(routes!(openapi::get))
        // Admin.
        .routes(routes!(admin::list_tokens, admin::create_token))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::list_products, admin::create_product))
        .routes(routes!(admin::update_product))
        .routes(routes!(admin::list_packs, admin::create_pack))
        .routes(routes!(admin::update_pack))
        .routes(routes!(admin::audit_log))
        // CI writes.
        .routes(routes!(presign::post))
        .routes(routes!(publish::post))
        // Releases and channels.
        .routes(routes!(releases::list))
        .routes(routes!(releases::latest))
        .routes(routes!(channels::list))
        .routes(routes!(channels::put))
        .routes(routes!(releases::detail))
        .routes(routes!(releases::yank))
        .routes(routes!(releases::unyank))
        // Downloads.
        .routes(routes!(download::by_id))
        .routes(routes!(download::latest))
        .routes(routes!(installer::get))
        // Updater.
        .routes(routes!(updater::dynamic))
        .routes(routes!(updater::manifest))
        // Packs.
        .routes(routes!(packs::deploy))
        .routes(routes!(packs::get_channel, packs::put_channel))
}

/// What every host serves: the routes, a problem for unknown paths, and the layers that give
/// each request its id, its log line, its problem bodies and its 304s. The log and problem
/// layers wrap the whole router (they see the `Allow` of a 405, which the router adds last);
/// the rest run once a route matched.
pub fn router(state: Arc<AppState>) -> Router {
    let (routes, _) = routes().split_for_parts();
    let routes = routes
        .fallback(middleware::no_route)
        .layer(axum::middleware::from_fn(middleware::body_limit))
        .layer(axum::middleware::from_fn(middleware::conditional))
        .layer(axum::middleware::from_fn(middleware::matched_route))
        .with_state(state.clone());
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(middleware::framework_problems))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::request_log,
        ))
}

/// The cache policy of public reads.
pub fn public_cache(state: &AppState) -> CachePolicy {
    CachePolicy {
        s_maxage: state.config.cache_s_maxage,
        vary: None,
        private: false,
    }
}

/// The Vercel functions: one per route (the `api/` file Vercel's file-system routing maps
/// to its path, and its `[[bin]]` name). Each serves the whole router: Vercel orders its
/// routes by file, so a function may be reached by a path of a more specific route
/// (`/api/v1/releases/x/channels` by the `[version]` function), which the router then
/// serves as that route. `tests/it/layout.rs` holds this list, `api/`, `Cargo.toml` and
/// `vercel.json` to each other and to the router.
pub const FUNCTIONS: &[Function] = &[
    Function::new("/api/health", "api/health.rs", "health"),
    Function::new("/api/v1/openapi.json", "api/v1/openapi.json.rs", "openapi"),
    Function::new(
        "/api/v1/admin/tokens",
        "api/v1/admin/tokens/index.rs",
        "admin_tokens",
    ),
    Function::new(
        "/api/v1/admin/tokens/{id}",
        "api/v1/admin/tokens/[id].rs",
        "admin_token",
    ),
    Function::new(
        "/api/v1/admin/products",
        "api/v1/admin/products/index.rs",
        "admin_products",
    ),
    Function::new(
        "/api/v1/admin/products/{product}",
        "api/v1/admin/products/[product].rs",
        "admin_product",
    ),
    Function::new(
        "/api/v1/admin/packs",
        "api/v1/admin/packs/index.rs",
        "admin_packs",
    ),
    Function::new(
        "/api/v1/admin/packs/{pack}",
        "api/v1/admin/packs/[pack].rs",
        "admin_pack",
    ),
    Function::new(
        "/api/v1/admin/audit",
        "api/v1/admin/audit.rs",
        "admin_audit",
    ),
    Function::new(
        "/api/v1/storage/presign",
        "api/v1/storage/presign.rs",
        "storage_presign",
    ),
    Function::new(
        "/api/v1/releases/{product}",
        "api/v1/releases/[product]/index.rs",
        "releases_list",
    ),
    Function::new(
        "/api/v1/releases/{product}/publish",
        "api/v1/releases/[product]/publish.rs",
        "releases_publish",
    ),
    Function::new(
        "/api/v1/releases/{product}/latest/{os}/{arch}",
        "api/v1/releases/[product]/latest/[os]/[arch].rs",
        "releases_latest",
    ),
    Function::new(
        "/api/v1/releases/{product}/channels",
        "api/v1/releases/[product]/channels/index.rs",
        "channels_list",
    ),
    Function::new(
        "/api/v1/releases/{product}/channels/{channel}",
        "api/v1/releases/[product]/channels/[channel].rs",
        "channels_move",
    ),
    Function::new(
        "/api/v1/releases/{product}/{version}",
        "api/v1/releases/[product]/[version]/index.rs",
        "releases_detail",
    ),
    Function::new(
        "/api/v1/releases/{product}/{version}/yank",
        "api/v1/releases/[product]/[version]/yank.rs",
        "releases_yank",
    ),
    Function::new(
        "/api/v1/releases/{product}/{version}/unyank",
        "api/v1/releases/[product]/[version]/unyank.rs",
        "releases_unyank",
    ),
    Function::new(
        "/api/v1/download/{downloadId}",
        "api/v1/download/[downloadId].rs",
        "download",
    ),
    Function::new(
        "/download/{product}/latest/{os}/{arch}",
        "api/download/[product]/latest/[os]/[arch].rs",
        "download_latest",
    ),
    Function::new(
        "/download/runner/install",
        "api/download/runner/install.rs",
        "download_runner_install",
    ),
    Function::new(
        "/api/v1/updater/{product}/{target}/{arch}/{currentVersion}",
        "api/v1/updater/[product]/[target]/[arch]/[currentVersion].rs",
        "updater",
    ),
    Function::new(
        "/api/v1/updater/{product}/{target}/latest.json",
        "api/v1/updater/[product]/[target]/latest.json.rs",
        "updater_manifest",
    ),
    Function::new(
        "/api/v1/packs/{pack}/deploy",
        "api/v1/packs/[pack]/deploy.rs",
        "packs_deploy",
    ),
    Function::new(
        "/api/v1/packs/{pack}/channels/{channel}",
        "api/v1/packs/[pack]/channels/[channel].rs",
        "packs_channel",
    ),
];

/// One Vercel function.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// The route it is for, as the router spells it.
    pub pattern: &'static str,
    /// Its file under `api/` (Vercel's file-system routing: `[param]` segments).
    pub api_file: &'static str,
    /// Its `[[bin]]` name in `Cargo.toml`.
    pub bin: &'static str,
}

impl Function {
    const fn new(pattern: &'static str, api_file: &'static str, bin: &'static str) -> Self {
        Function {
            pattern,
            api_file,
            bin,
        }
    }
}
