//! The route table: every route, its handlers, and the `api/` function file hosting it.
//! The local server, each Vercel/Lambda function and the layout test all read this list.

pub mod admin;
pub mod channels;
pub mod download;
pub mod health;
pub mod installer;
pub mod openapi;
pub mod packs;
pub mod presign;
pub mod publish;
pub mod releases;
pub mod updater;

use http::Method;

use crate::http::Route;

/// Wraps an `async fn(Arc<AppState>, ApiRequest) -> ApiResult` as a [`crate::http::Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn boxed(
            state: std::sync::Arc<crate::state::AppState>,
            req: crate::http::ApiRequest,
        ) -> futures_util::future::BoxFuture<'static, crate::http::ApiResult> {
            Box::pin($f(state, req))
        }
        boxed as crate::http::Handler
    }};
}

/// `limit` and `cursor`: the query of paginated lists.
const PAGE: &[&str] = &["limit", "cursor"];
/// The query of "the latest release of a channel for a platform" (lookup and download).
const LATEST: &[&str] = &["channel", "kind", "clientId"];

/// Every route the Hub serves.
pub static ROUTES: &[Route] = &[
    Route {
        pattern: "/api/health",
        query: &["deep"],
        methods: &[(Method::GET, handler!(health::get))],
        api_file: "api/health.rs",
        bin: "health",
    },
    Route {
        pattern: "/api/v1/openapi.json",
        query: &[],
        methods: &[(Method::GET, handler!(openapi::get))],
        api_file: "api/v1/openapi.json.rs",
        bin: "openapi",
    },
    // Admin.
    Route {
        pattern: "/api/v1/admin/tokens",
        query: &[],
        methods: &[
            (Method::GET, handler!(admin::list_tokens)),
            (Method::POST, handler!(admin::create_token)),
        ],
        api_file: "api/v1/admin/tokens/index.rs",
        bin: "admin_tokens",
    },
    Route {
        pattern: "/api/v1/admin/tokens/{id}",
        query: &[],
        methods: &[(Method::DELETE, handler!(admin::revoke_token))],
        api_file: "api/v1/admin/tokens/[id].rs",
        bin: "admin_token",
    },
    Route {
        pattern: "/api/v1/admin/products",
        query: &[],
        methods: &[
            (Method::GET, handler!(admin::list_products)),
            (Method::POST, handler!(admin::create_product)),
        ],
        api_file: "api/v1/admin/products/index.rs",
        bin: "admin_products",
    },
    Route {
        pattern: "/api/v1/admin/products/{product}",
        query: &[],
        methods: &[(Method::PATCH, handler!(admin::update_product))],
        api_file: "api/v1/admin/products/[product].rs",
        bin: "admin_product",
    },
    Route {
        pattern: "/api/v1/admin/audit",
        query: PAGE,
        methods: &[(Method::GET, handler!(admin::audit_log))],
        api_file: "api/v1/admin/audit.rs",
        bin: "admin_audit",
    },
    // CI writes.
    Route {
        pattern: "/api/v1/storage/presign",
        query: &[],
        methods: &[(Method::POST, handler!(presign::post))],
        api_file: "api/v1/storage/presign.rs",
        bin: "storage_presign",
    },
    Route {
        pattern: "/api/v1/releases/{product}/publish",
        query: &[],
        methods: &[(Method::POST, handler!(publish::post))],
        api_file: "api/v1/releases/[product]/publish.rs",
        bin: "releases_publish",
    },
    Route {
        pattern: "/api/v1/releases/{product}/channels/{channel}",
        query: &[],
        methods: &[(Method::PUT, handler!(channels::put))],
        api_file: "api/v1/releases/[product]/channels/[channel].rs",
        bin: "channels_move",
    },
    Route {
        pattern: "/api/v1/releases/{product}/{version}/yank",
        query: &[],
        methods: &[(Method::POST, handler!(releases::yank))],
        api_file: "api/v1/releases/[product]/[version]/yank.rs",
        bin: "releases_yank",
    },
    Route {
        pattern: "/api/v1/releases/{product}/{version}/unyank",
        query: &[],
        methods: &[(Method::POST, handler!(releases::unyank))],
        api_file: "api/v1/releases/[product]/[version]/unyank.rs",
        bin: "releases_unyank",
    },
    // Public reads.
    Route {
        pattern: "/api/v1/releases/{product}",
        query: PAGE,
        methods: &[(Method::GET, handler!(releases::list))],
        api_file: "api/v1/releases/[product]/index.rs",
        bin: "releases_list",
    },
    Route {
        pattern: "/api/v1/releases/{product}/latest/{os}/{arch}",
        query: LATEST,
        methods: &[(Method::GET, handler!(releases::latest))],
        api_file: "api/v1/releases/[product]/latest/[os]/[arch].rs",
        bin: "releases_latest",
    },
    Route {
        pattern: "/api/v1/releases/{product}/channels",
        query: &[],
        methods: &[(Method::GET, handler!(channels::list))],
        api_file: "api/v1/releases/[product]/channels/index.rs",
        bin: "channels_list",
    },
    Route {
        pattern: "/api/v1/releases/{product}/{version}",
        query: &[],
        methods: &[(Method::GET, handler!(releases::detail))],
        api_file: "api/v1/releases/[product]/[version]/index.rs",
        bin: "releases_detail",
    },
    // Downloads.
    Route {
        pattern: "/api/v1/download/{downloadId}",
        query: &[],
        methods: &[(Method::GET, handler!(download::by_id))],
        api_file: "api/v1/download/[downloadId].rs",
        bin: "download",
    },
    Route {
        pattern: "/download/{product}/latest/{os}/{arch}",
        query: LATEST,
        methods: &[(Method::GET, handler!(download::latest))],
        api_file: "api/download/[product]/latest/[os]/[arch].rs",
        bin: "download_latest",
    },
    // Runtime consumers.
    Route {
        pattern: "/download/runner/install",
        query: &[],
        methods: &[(Method::GET, handler!(installer::get))],
        api_file: "api/download/runner/install.rs",
        bin: "download_runner_install",
    },
    Route {
        pattern: "/api/v1/updater/{product}/{target}/{arch}/{currentVersion}",
        query: &["channel", "bundleType", "clientId"],
        methods: &[(Method::GET, handler!(updater::dynamic))],
        api_file: "api/v1/updater/[product]/[target]/[arch]/[currentVersion].rs",
        bin: "updater",
    },
    Route {
        pattern: "/api/v1/updater/{product}/{target}/latest.json",
        query: &["bundleType", "clientId"],
        methods: &[(Method::GET, handler!(updater::manifest))],
        api_file: "api/v1/updater/[product]/[target]/latest.json.rs",
        bin: "updater_manifest",
    },
    // Packs.
    Route {
        pattern: "/api/v1/admin/packs",
        query: &[],
        methods: &[
            (Method::GET, handler!(admin::list_packs)),
            (Method::POST, handler!(admin::create_pack)),
        ],
        api_file: "api/v1/admin/packs/index.rs",
        bin: "admin_packs",
    },
    Route {
        pattern: "/api/v1/admin/packs/{pack}",
        query: &[],
        methods: &[(Method::PATCH, handler!(admin::update_pack))],
        api_file: "api/v1/admin/packs/[pack].rs",
        bin: "admin_pack",
    },
    Route {
        pattern: "/api/v1/packs/{pack}/deploy",
        query: &[],
        methods: &[(Method::POST, handler!(packs::deploy))],
        api_file: "api/v1/packs/[pack]/deploy.rs",
        bin: "packs_deploy",
    },
    Route {
        pattern: "/api/v1/packs/{pack}/channels/{channel}",
        query: &[],
        methods: &[
            (Method::GET, handler!(packs::get_channel)),
            (Method::PUT, handler!(packs::put_channel)),
        ],
        api_file: "api/v1/packs/[pack]/channels/[channel].rs",
        bin: "packs_channel",
    },
];
