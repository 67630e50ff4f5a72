//! The routes: one module per endpoint family, and [`routes`], the one route table. Every
//! handler declares its contract with `#[utoipa::path]`, so the table is also the OpenAPI
//! document's paths ([`openapi`]). The local server, every Vercel and Lambda function and
//! the document all read it.

pub mod access;
pub mod admin;
pub mod auth;
pub mod channels;
pub mod console;
pub mod consumers;
pub mod download;
pub mod health;
pub mod installer;
pub mod local;
pub mod openapi;
pub mod packs;
pub mod presign;
pub mod publish;
pub mod releases;
pub mod stats;
pub mod updater;

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::middleware;
use crate::http::respond::CachePolicy;
use crate::state::AppState;

/// Declares the route table once, as groups of handlers sharing a path: [`routes`] (the
/// handlers with their OpenAPI operations, for the document) and [`handlers`] (the same
/// handlers at the same paths, as the hosts serve them: building the operations and schemas
/// costs a cold start about a millisecond that serving never needs).
macro_rules! route_table {
    ($( [ $( $module:ident :: $handler:ident ),+ ] ),* $(,)?) => {
        /// Every route, with its handlers and their OpenAPI operations.
        pub fn routes() -> OpenApiRouter<Arc<AppState>> {
            OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
                $( .routes(routes!( $( $module::$handler ),+ )) )*
        }

        /// Every route with its handlers, and nothing else computed.
        fn handlers() -> Router<Arc<AppState>> {
            use utoipa::Path;
            use utoipa_axum::PathItemExt;
            Router::new()
                $( $(
                    .route(
                        &utoipa_axum::paste!($module::[<__path_ $handler>]::path()),
                        utoipa_axum::paste!($module::[<__path_ $handler>]::methods())
                            .iter()
                            .fold(axum::routing::MethodRouter::new(), |r, m| {
                                r.on(m.to_method_filter(), $module::$handler)
                            }),
                    )
                )+ )*
        }
    };
}

route_table! {
    [health::get],
    [openapi::get],
    // Admin.
    [admin::list_tokens, admin::create_token],
    [admin::revoke_token],
    [admin::list_products, admin::create_product],
    [admin::update_product],
    [admin::list_packs, admin::create_pack],
    [admin::get_pack, admin::update_pack],
    [admin::audit_log],
    [access::list, access::grant],
    [access::revoke],
    [stats::product],
    [stats::pack],
    [stats::prune],
    // Operators in a browser.
    [auth::session],
    [auth::signin],
    [auth::callback],
    [auth::signout],
    [auth::list_sessions],
    [auth::revoke_session],
    // CI writes.
    [presign::post],
    [publish::post],
    // Releases and channels.
    [releases::list],
    [releases::latest],
    [channels::list],
    [channels::put],
    [releases::detail],
    [releases::yank],
    [releases::unyank],
    // Downloads.
    [download::by_id],
    [download::latest],
    [installer::get],
    // Updater.
    [updater::dynamic],
    [updater::manifest],
    // Packs.
    [packs::deploy],
    [packs::get_channel, packs::put_channel],
}

/// What every host serves: the routes, problems for unknown paths and methods, and the
/// layer that gives each request its id, log line, body limit and 304s. Axum runs a
/// router's layers once the route is matched, so the layer sees the route's pattern.
pub fn router(state: Arc<AppState>) -> Router {
    with_layers(handlers(), state)
}

/// What `atlas-hub serve` serves: every route, the console's files ([`console`]: on Vercel
/// they are static output), and, when `developer_signin`, the local developer sign-in
/// ([`local`]), which no function serves.
pub fn local_router(state: Arc<AppState>, developer_signin: bool) -> Router {
    let mut routes = handlers().merge(console::routes());
    if developer_signin {
        routes = routes.merge(local::routes());
    }
    with_layers(routes, state)
}

fn with_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    routes
        .fallback(middleware::no_route)
        .method_not_allowed_fallback(middleware::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_log,
        ))
        .with_state(state)
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
        "/api/v1/admin/access",
        "api/v1/admin/access/index.rs",
        "admin_access",
    ),
    Function::new(
        "/api/v1/admin/access/{id}",
        "api/v1/admin/access/[id].rs",
        "admin_access_rule",
    ),
    Function::new(
        "/api/v1/admin/stats/{product}",
        "api/v1/admin/stats/[product].rs",
        "admin_stats",
    ),
    Function::new(
        "/api/v1/admin/stats/packs/{pack}",
        "api/v1/admin/stats/packs/[pack].rs",
        "admin_stats_pack",
    ),
    Function::new(
        "/api/v1/admin/prune",
        "api/v1/admin/prune.rs",
        "admin_prune",
    ),
    Function::new(
        "/api/v1/auth/session",
        "api/v1/auth/session.rs",
        "auth_session",
    ),
    Function::new(
        "/api/v1/auth/signin/{provider}",
        "api/v1/auth/signin/[provider].rs",
        "auth_signin",
    ),
    Function::new(
        "/api/v1/auth/callback/{provider}",
        "api/v1/auth/callback/[provider].rs",
        "auth_callback",
    ),
    Function::new(
        "/api/v1/auth/signout",
        "api/v1/auth/signout.rs",
        "auth_signout",
    ),
    Function::new(
        "/api/v1/auth/sessions",
        "api/v1/auth/sessions/index.rs",
        "auth_sessions",
    ),
    Function::new(
        "/api/v1/auth/sessions/{id}",
        "api/v1/auth/sessions/[id].rs",
        "auth_session_revoke",
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
