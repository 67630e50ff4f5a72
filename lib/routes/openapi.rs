//! The OpenAPI 3.1 document of the Hub, generated from the code.
//!
//! - Component schemas are derived (`utoipa::ToSchema`) from the very types the handlers
//!   deserialize requests into and serialize responses from; the few responses still
//!   built as JSON values have a schema type here ([`doc`]).
//! - Paths come from the route table: every route and method in [`super::ROUTES`] has an
//!   operation in [`OPERATIONS`] (the test below fails on a route without one, or on an
//!   operation without a route).
//!
//! The document is committed as `openapi.json` at the project root and served from that
//! file by `GET /api/v1/openapi.json` (no generation at request time). A test regenerates
//! it and fails when the two differ; `atlas-hub openapi > openapi.json` updates it.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::http::respond::{self, CachePolicy};
use crate::http::{ApiRequest, ApiResult};
use crate::state::AppState;

/// The committed document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn get(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    Ok(respond::cached(
        &req,
        StatusCode::OK,
        "application/json",
        Some(DOCUMENT.as_bytes().to_vec()),
        CachePolicy {
            s_maxage: state.config.cache_s_maxage,
            vary: None,
            private: false,
        },
    ))
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone.
    Public,
    /// `Authorization: Bearer atlas_app_…` with a scope.
    App,
    /// `Authorization: Bearer atlas_admin_…`.
    Admin,
    /// App deploy token, pack deploy token or GitHub OIDC (presign).
    AnyCi,
    /// Pack deploy token or GitHub OIDC.
    Pack,
}

/// What a success answer carries.
#[derive(Clone, Copy)]
enum Body {
    /// `application/json` with this component schema.
    Json(&'static str),
    /// No body.
    Empty,
    /// A 302 with `Location`.
    Redirect,
    /// `text/x-shellscript`.
    Script,
}

/// A query parameter.
struct Query {
    name: &'static str,
    description: &'static str,
    schema: fn() -> Value,
}

/// One operation's contract.
struct Operation {
    method: Method,
    pattern: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
    query: &'static [Query],
    request: Option<&'static str>,
    success: &'static [(u16, &'static str, Body)],
    /// Problem answers besides the ones every operation may give (400, 404, 503).
    errors: &'static [u16],
}

fn channel_schema() -> Value {
    json!({"type": "string", "enum": ["stable", "beta", "dev"], "default": "stable"})
}
fn kind_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{0,31}$"})
}
fn limit_schema() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20})
}
fn cursor_schema() -> Value {
    json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"})
}
fn deep_schema() -> Value {
    json!({"type": "string", "enum": ["1", "true", "0", "false"]})
}
fn bundle_schema() -> Value {
    kind_schema()
}
fn client_id_schema() -> Value {
    json!({"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"})
}

const PAGE: &[Query] = &[
    Query {
        name: "limit",
        description: "Page size (1–100).",
        schema: limit_schema,
    },
    Query {
        name: "cursor",
        description: "`nextCursor` of the previous page.",
        schema: cursor_schema,
    },
];
const CHANNEL: Query = Query {
    name: "channel",
    description: "Release channel.",
    schema: channel_schema,
};
/// The rollout client id as a query parameter; operations that take it also document the
/// `x-atlas-client-id` header, which says the same (see [`operation`]).
const CLIENT_ID: Query = Query {
    name: "clientId",
    description: "An installation id for staged rollouts (the same as the `x-atlas-client-id` \
        header, for clients that cannot set headers). While a channel's `rolloutPercent` is under \
        100, a client gets the channel's release only if its stable hash bucket (of product, \
        version and this id; without an id, the client's address) is inside the rollout, else the \
        previous release; `rolloutPercent` 0 halts the rollout. The same id lands in the same bucket \
        on every route. Ids are chosen by clients, so a client can pick its bucket: a rollout \
        limits exposure, it is not access control.",
    schema: client_id_schema,
};
const BUNDLE_TYPE: Query = Query {
    name: "bundleType",
    description: "Tauri bundle type (`appimage`, `deb`, `rpm`, `nsis`, `msi`, `app`, or `unknown`).",
    schema: bundle_schema,
};
const LATEST: &[Query] = &[
    CHANNEL,
    Query {
        name: "kind",
        description: "Artifact kind; without it, the platform's primary artifact.",
        schema: kind_schema,
    },
    CLIENT_ID,
];

/// Every operation of the Hub.
const OPERATIONS: &[Operation] = &[
    Operation {
        method: Method::GET,
        pattern: "/api/health",
        id: "health",
        tag: "operations",
        summary: "Database reachability and schema version; `deep=1` also checks storage.",
        auth: Auth::Public,
        query: &[Query {
            name: "deep",
            description: "Also check storage.",
            schema: deep_schema,
        }],
        request: None,
        success: &[(200, "Healthy.", Body::Json("Health"))],
        errors: &[],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/openapi.json",
        id: "openapi",
        tag: "operations",
        summary: "This document.",
        auth: Auth::Public,
        query: &[],
        request: None,
        success: &[(200, "The OpenAPI document.", Body::Json("OpenApiDocument"))],
        errors: &[],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/admin/tokens",
        id: "listTokens",
        tag: "admin",
        summary: "Deploy tokens (never their secrets).",
        auth: Auth::Admin,
        query: &[],
        request: None,
        success: &[(200, "Tokens.", Body::Json("TokenList"))],
        errors: &[],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/admin/tokens",
        id: "createToken",
        tag: "admin",
        summary: "Issue a token; its plaintext appears only in this answer.",
        auth: Auth::Admin,
        query: &[],
        request: Some("CreateToken"),
        success: &[(201, "Issued.", Body::Json("TokenCreated"))],
        errors: &[409, 413, 415],
    },
    Operation {
        method: Method::DELETE,
        pattern: "/api/v1/admin/tokens/{id}",
        id: "revokeToken",
        tag: "admin",
        summary: "Revoke a token (idempotent).",
        auth: Auth::Admin,
        query: &[],
        request: None,
        success: &[(204, "Revoked.", Body::Empty)],
        errors: &[],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/admin/products",
        id: "listProducts",
        tag: "admin",
        summary: "Products.",
        auth: Auth::Admin,
        query: &[],
        request: None,
        success: &[(200, "Products.", Body::Json("ProductList"))],
        errors: &[],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/admin/products",
        id: "createProduct",
        tag: "admin",
        summary: "Create a product.",
        auth: Auth::Admin,
        query: &[],
        request: Some("ProductBody"),
        success: &[(201, "Created.", Body::Json("Product"))],
        errors: &[409, 413, 415, 422],
    },
    Operation {
        method: Method::PATCH,
        pattern: "/api/v1/admin/products/{product}",
        id: "updateProduct",
        tag: "admin",
        summary: "Change a product.",
        auth: Auth::Admin,
        query: &[],
        request: Some("ProductBody"),
        success: &[(200, "Changed.", Body::Json("Product"))],
        errors: &[413, 415, 422],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/admin/audit",
        id: "auditLog",
        tag: "admin",
        summary: "Every write, newest first.",
        auth: Auth::Admin,
        query: PAGE,
        request: None,
        success: &[(200, "A page of entries.", Body::Json("AuditPage"))],
        errors: &[],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/storage/presign",
        id: "presignUpload",
        tag: "ci",
        summary: "A presigned PUT for one artifact; the Hub derives the key.",
        auth: Auth::AnyCi,
        query: &[],
        request: Some("PresignBody"),
        success: &[(200, "Upload here.", Body::Json("PresignedUpload"))],
        errors: &[409, 413, 415, 422],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/releases/{product}/publish",
        id: "publishRelease",
        tag: "ci",
        summary: "Publish uploaded artifacts as a release, optionally onto a channel.",
        auth: Auth::App,
        query: &[],
        request: Some("PublishBody"),
        success: &[
            (201, "Published.", Body::Json("ReleaseView")),
            (
                200,
                "Already published with identical content.",
                Body::Json("ReleaseView"),
            ),
        ],
        errors: &[409, 413, 415, 422],
    },
    Operation {
        method: Method::PUT,
        pattern: "/api/v1/releases/{product}/channels/{channel}",
        id: "moveChannel",
        tag: "ci",
        summary: "Promote or roll back: point a channel at a release (compare-and-swap).",
        auth: Auth::App,
        query: &[],
        request: Some("ChannelMove"),
        success: &[(200, "Moved.", Body::Json("ChannelMoved"))],
        errors: &[409, 413, 415, 422],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/releases/{product}/{version}/yank",
        id: "yankRelease",
        tag: "ci",
        summary: "Yank: drop out of latest, updater and channel targets.",
        auth: Auth::App,
        query: &[],
        request: None,
        success: &[(200, "Yanked.", Body::Json("ReleaseView"))],
        errors: &[409],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/releases/{product}/{version}/unyank",
        id: "unyankRelease",
        tag: "ci",
        summary: "Undo a yank.",
        auth: Auth::App,
        query: &[],
        request: None,
        success: &[(200, "Unyanked.", Body::Json("ReleaseView"))],
        errors: &[409],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/releases/{product}",
        id: "listReleases",
        tag: "releases",
        summary: "Release history, newest first.",
        auth: Auth::Public,
        query: PAGE,
        request: None,
        success: &[(200, "A page of releases.", Body::Json("ReleaseList"))],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/releases/{product}/latest/{os}/{arch}",
        id: "latestRelease",
        tag: "releases",
        summary: "What a channel serves for a platform.",
        auth: Auth::Public,
        query: LATEST,
        request: None,
        success: &[(200, "The channel's release.", Body::Json("LatestRelease"))],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/releases/{product}/channels",
        id: "listChannels",
        tag: "releases",
        summary: "Every channel of a product.",
        auth: Auth::Public,
        query: &[],
        request: None,
        success: &[(200, "Channels.", Body::Json("ChannelList"))],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/releases/{product}/{version}",
        id: "getRelease",
        tag: "releases",
        summary: "One release with its artifacts and yank state.",
        auth: Auth::Public,
        query: &[],
        request: None,
        success: &[(200, "The release.", Body::Json("ReleaseView"))],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/download/{downloadId}",
        id: "download",
        tag: "downloads",
        summary: "Redirect to a short-lived presigned GET of the artifact.",
        auth: Auth::Public,
        query: &[],
        request: None,
        success: &[(302, "Download from `Location`.", Body::Redirect)],
        errors: &[],
    },
    Operation {
        method: Method::GET,
        pattern: "/download/{product}/latest/{os}/{arch}",
        id: "downloadLatest",
        tag: "downloads",
        summary: "Redirect to the artifact of the channel's release for a platform.",
        auth: Auth::Public,
        query: LATEST,
        request: None,
        success: &[(302, "Download from `Location`.", Body::Redirect)],
        errors: &[],
    },
    Operation {
        method: Method::GET,
        pattern: "/download/runner/install",
        id: "runnerInstaller",
        tag: "downloads",
        summary: "POSIX sh installer of the runner.",
        auth: Auth::Public,
        query: &[],
        request: None,
        success: &[(200, "The script.", Body::Script)],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/updater/{product}/{target}/{arch}/{currentVersion}",
        id: "updaterCheck",
        tag: "updater",
        summary: "Tauri v2 dynamic updater: the update, or 204 when there is none.",
        auth: Auth::Public,
        query: &[CHANNEL, BUNDLE_TYPE, CLIENT_ID],
        request: None,
        success: &[
            (200, "An update.", Body::Json("UpdaterResponse")),
            (204, "No update.", Body::Empty),
        ],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/updater/{product}/{target}/latest.json",
        id: "updaterManifest",
        tag: "updater",
        summary: "Tauri static manifest of a channel (`{target}` is the channel name). Every entry \
            carries `format`; kinds without one (`deb`, `rpm`) are listed only with `bundleType` \
            naming them. During a staged rollout, a client without a client id gets the previous \
            release.",
        auth: Auth::Public,
        query: &[BUNDLE_TYPE, CLIENT_ID],
        request: None,
        success: &[(200, "The manifest.", Body::Json("UpdaterManifest"))],
        errors: &[304],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/admin/packs",
        id: "listPacks",
        tag: "admin",
        summary: "Packs.",
        auth: Auth::Admin,
        query: &[],
        request: None,
        success: &[(200, "Packs.", Body::Json("PackList"))],
        errors: &[],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/admin/packs",
        id: "createPack",
        tag: "admin",
        summary: "Create a pack, optionally with its trusted publisher.",
        auth: Auth::Admin,
        query: &[],
        request: Some("PackBody"),
        success: &[(201, "Created.", Body::Json("Pack"))],
        errors: &[409, 413, 415, 422],
    },
    Operation {
        method: Method::PATCH,
        pattern: "/api/v1/admin/packs/{pack}",
        id: "updatePack",
        tag: "admin",
        summary: "Change a pack.",
        auth: Auth::Admin,
        query: &[],
        request: Some("PackBody"),
        success: &[(200, "Changed.", Body::Json("Pack"))],
        errors: &[413, 415, 422],
    },
    Operation {
        method: Method::POST,
        pattern: "/api/v1/packs/{pack}/deploy",
        id: "deployPack",
        tag: "packs",
        summary: "Deploy uploaded files as a pack build onto a channel.",
        auth: Auth::Pack,
        query: &[],
        request: Some("PackDeployBody"),
        success: &[
            (201, "Deployed.", Body::Json("PackBuild")),
            (
                200,
                "Already deployed with identical content.",
                Body::Json("PackBuild"),
            ),
        ],
        errors: &[409, 413, 415, 422],
    },
    Operation {
        method: Method::GET,
        pattern: "/api/v1/packs/{pack}/channels/{channel}",
        id: "getPackChannel",
        tag: "packs",
        summary: "The build a pack channel points to.",
        auth: Auth::Public,
        query: &[],
        request: None,
        success: &[(200, "The build.", Body::Json("PackChannel"))],
        errors: &[304],
    },
    Operation {
        method: Method::PUT,
        pattern: "/api/v1/packs/{pack}/channels/{channel}",
        id: "movePackChannel",
        tag: "packs",
        summary: "Point a pack channel at a build (compare-and-swap).",
        auth: Auth::Pack,
        query: &[],
        request: Some("PackChannelMove"),
        success: &[(200, "Moved.", Body::Json("PackChannel"))],
        errors: &[409, 413, 415, 422],
    },
];

/// The schema of one path parameter.
fn path_param_schema(name: &str, pattern: &str) -> Value {
    let slug = "^[a-z0-9][a-z0-9-]{0,62}$";
    match name {
        "product" => json!({"type": "string", "pattern": slug, "examples": ["launcher"]}),
        "pack" => json!({"type": "string", "pattern": slug, "examples": ["maps"]}),
        "os" => json!({"type": "string", "enum": ["linux", "windows", "darwin", "macos"]}),
        "arch" => json!({"type": "string",
            "enum": ["x86_64", "aarch64", "i686", "armv7", "riscv64", "amd64", "arm64"]}),
        "target" if pattern.ends_with("latest.json") => {
            json!({"type": "string", "enum": ["stable", "beta", "dev"]})
        }
        "target" => json!({"type": "string", "enum": ["linux", "darwin", "windows"]}),
        "version" | "currentVersion" => {
            json!({"type": "string", "maxLength": 129, "examples": ["1.0.0"]})
        }
        "id" => json!({"type": "string", "format": "uuid"}),
        "channel" if pattern.starts_with("/api/v1/releases/") => {
            json!({"type": "string", "enum": ["stable", "beta", "dev"]})
        }
        "channel" => json!({"type": "string", "maxLength": 64, "examples": ["stable"]}),
        _ => json!({"type": "string", "maxLength": 64}),
    }
}

fn path_param_description(name: &str, pattern: &str) -> &'static str {
    match name {
        "product" => "Product slug.",
        "pack" => "Pack slug.",
        "os" => "Operating system (`macos` means `darwin`).",
        "arch" => "Architecture (`amd64` means `x86_64`, `arm64` means `aarch64`).",
        "target" if pattern.ends_with("latest.json") => "Release channel.",
        "target" => "Tauri target: `linux`, `darwin` or `windows`.",
        "version" => "SemVer version (a leading `v` is accepted).",
        "currentVersion" => "The running version, percent-encoded SemVer.",
        "id" => "Token id.",
        "downloadId" => "Artifact download id.",
        "channel" => "Channel name.",
        _ => "Path parameter.",
    }
}

fn problem_description(status: u16) -> &'static str {
    match status {
        304 => "Not modified (`If-None-Match` names the current `ETag`).",
        400 => "Malformed request: a problem naming the field.",
        401 => "Missing, invalid, revoked or expired credentials.",
        403 => "The credentials do not allow this.",
        404 => "No such resource.",
        409 => "Conflicts with what is stored.",
        413 => "Body or artifact too large.",
        415 => "The body is not JSON.",
        422 => "Well-formed but refused.",
        429 => {
            "Rate limited (`rate_limited`): this token's presign or publish limit, or too \
                many failed authentications from this address. `Retry-After` says when to retry."
        }
        503 => "Database or storage unavailable, or the schema is behind the code.",
        _ => "Problem.",
    }
}

fn operation(op: &Operation) -> Value {
    let mut parameters: Vec<Value> = op
        .pattern
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "description": path_param_description(name, op.pattern),
                   "schema": path_param_schema(name, op.pattern)})
        })
        .collect();
    // An empty query value counts as absent (`?channel=` is the default channel).
    parameters.extend(op.query.iter().map(|q| {
        json!({"name": q.name, "in": "query", "required": false,
               "description": format!("{} Empty means absent.", q.description),
               "schema": {"anyOf": [(q.schema)(), {"type": "string", "maxLength": 0}]}})
    }));
    if op.query.iter().any(|q| q.name == CLIENT_ID.name) {
        parameters.push(
            json!({"name": "x-atlas-client-id", "in": "header", "required": false,
            "description": "The installation id for staged rollouts (see `clientId`).",
            "schema": client_id_schema()}),
        );
    }
    let mut responses = Map::new();
    for (status, description, body) in op.success {
        let response = match body {
            Body::Json(schema) => json!({"description": description, "content": {
                "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
            Body::Empty => json!({"description": description}),
            Body::Redirect => json!({"description": description, "headers": {
                "Location": {"required": true, "schema": {"type": "string", "format": "uri"}}}}),
            Body::Script => json!({"description": description, "content": {
                "text/x-shellscript": {"schema": {"type": "string"}}}}),
        };
        responses.insert(status.to_string(), response);
    }
    let mut errors: Vec<u16> = vec![400, 404, 503];
    if op.auth != Auth::Public {
        errors.extend([401, 403, 429]);
    }
    errors.extend(op.errors);
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let response = if status == 304 {
            json!({"description": problem_description(status)})
        } else if status == 429 {
            json!({"description": problem_description(status),
                "headers": {"Retry-After": {"required": true, "description": "Seconds to wait.",
                    "schema": {"type": "integer", "minimum": 1}}},
                "content": {"application/problem+json": {"schema": {
                    "$ref": "#/components/schemas/Problem"}}}})
        } else {
            json!({"description": problem_description(status), "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
        };
        responses.insert(status.to_string(), response);
    }
    let mut out = json!({
        "operationId": op.id,
        "tags": [op.tag],
        "summary": op.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(schema) = op.request {
        out["requestBody"] = json!({"required": true, "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    let security = match op.auth {
        Auth::Public => None,
        Auth::App => Some(json!([{"appToken": []}])),
        Auth::Admin => Some(json!([{"adminToken": []}])),
        Auth::AnyCi => Some(json!([{"appToken": []}, {"packToken": []}, {"githubOidc": []}])),
        Auth::Pack => Some(json!([{"packToken": []}, {"githubOidc": []}])),
    };
    if let Some(security) = security {
        out["security"] = security;
    }
    out
}

/// Component schemas, derived from the code.
#[derive(OpenApi)]
#[openapi(components(schemas(
    doc::Problem,
    doc::Health,
    doc::OpenApiDocument,
    doc::TokenCreated,
    doc::TokenInfo,
    doc::TokenList,
    doc::ProductList,
    doc::PackList,
    doc::AuditPage,
    doc::PresignedUpload,
    doc::ReleaseSummary,
    doc::ReleaseList,
    doc::LatestRelease,
    doc::ChannelList,
    doc::ChannelMoved,
    doc::UpdaterManifest,
    doc::ManifestEntry,
    doc::PackBuild,
    doc::PackChannel,
    super::admin::CreateToken,
    super::admin::ProductBody,
    super::admin::PackBody,
    super::presign::PresignBody,
    super::publish::PublishBody,
    super::publish::ArtifactBody,
    super::channels::MoveBody,
    super::packs::DeployBody,
    super::packs::DeployArtifact,
    super::packs::MoveBody,
    super::updater::Update,
    super::releases::LatestArtifact,
    crate::domain::products::Product,
    crate::domain::packs::Pack,
    crate::domain::packs::TrustedPublisher,
    crate::domain::packs::BuildArtifact,
    crate::domain::channels::ChannelView,
    crate::domain::audit::Entry,
    crate::domain::releases::ReleaseView,
    crate::domain::releases::ArtifactView,
)))]
struct Components;

/// The whole document, generated.
pub fn generate() -> Value {
    let mut doc = serde_json::to_value(Components::openapi()).unwrap_or_default();
    let mut paths = Map::new();
    for route in super::ROUTES {
        let mut item = Map::new();
        for (method, _) in route.methods {
            if let Some(op) = OPERATIONS
                .iter()
                .find(|o| o.pattern == route.pattern && o.method == *method)
            {
                item.insert(method.as_str().to_ascii_lowercase(), operation(op));
            }
        }
        paths.insert(route.pattern.to_owned(), Value::Object(item));
    }
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": "Atlas Hub",
        "version": "1",
        "description": "Release distribution: CI publishes immutable artifacts through presigned uploads, channels point at releases, launchers and runners find and download them through redirects. Errors are RFC 9457 problems with a stable `code`.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    doc["paths"] = Value::Object(paths);
    doc["tags"] = json!([
        {"name": "releases", "description": "Public release reads (CDN-cacheable)."},
        {"name": "downloads", "description": "Download redirects and the runner installer."},
        {"name": "updater", "description": "Tauri v2 updater endpoints."},
        {"name": "packs", "description": "Packs: deploys and channels."},
        {"name": "ci", "description": "CI writes: presign, publish, channel moves, yanks."},
        {"name": "admin", "description": "Tokens, products, packs, audit."},
        {"name": "operations", "description": "Health and this document."},
    ]);
    doc["components"]["securitySchemes"] = json!({
        "appToken": {"type": "http", "scheme": "bearer",
            "description": "App deploy token (`atlas_app_…`), scoped to products, actions and channels."},
        "adminToken": {"type": "http", "scheme": "bearer",
            "description": "Admin token (`atlas_admin_…`)."},
        "packToken": {"type": "apiKey", "in": "header", "name": "x-atlas-pack-deploy-token",
            "description": "Pack deploy token (`atlas_pack_…`), scoped to one pack."},
        "githubOidc": {"type": "apiKey", "in": "header", "name": "x-atlas-oidc-token",
            "description": "A GitHub Actions OIDC token (RS256), matched against the pack's trusted publisher; each token is accepted once."},
    });
    doc
}

/// The generated document as committed: pretty JSON with a final newline.
pub fn generate_text() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).unwrap_or_default();
    text.push('\n');
    text
}

/// Schemas of answers the handlers build as JSON values.
#[allow(dead_code)]
pub mod doc {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use utoipa::ToSchema;

    use crate::domain::audit::Entry;
    use crate::domain::channels::ChannelView;
    use crate::domain::packs::Pack;
    use crate::domain::products::Product;
    use crate::routes::releases::LatestArtifact;

    /// An RFC 9457 problem; some codes add members (e.g. `missing`, `channels`).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Problem {
        /// `about:blank` or a problem type URI.
        #[serde(rename = "type")]
        kind: String,
        title: String,
        status: u16,
        detail: String,
        /// Stable machine code (`token_invalid`, `version_exists`, …).
        code: String,
        request_id: String,
    }

    /// `GET /api/health`.
    #[derive(Serialize, ToSchema)]
    pub struct Health {
        /// `ok` or `unavailable`.
        status: String,
        /// Hub version.
        version: String,
        schema: SchemaVersions,
        /// `database`, `schema` and (deep) `storage`: `ok` or `error: <code>`.
        checks: BTreeMap<String, String>,
    }

    /// Applied and expected migration versions.
    #[derive(Serialize, ToSchema)]
    pub struct SchemaVersions {
        current: Option<i32>,
        expected: i32,
    }

    /// An OpenAPI 3.1 document.
    #[derive(Serialize, ToSchema)]
    pub struct OpenApiDocument {
        openapi: String,
        info: BTreeMap<String, serde_json::Value>,
        paths: BTreeMap<String, serde_json::Value>,
    }

    /// A token just issued.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TokenCreated {
        id: uuid::Uuid,
        /// The secret: shown here once, never again.
        token: String,
        name: String,
        kind: String,
        products: Vec<String>,
        pack_id: Option<i64>,
        scopes: Vec<String>,
        channels: Vec<String>,
        expires_at: Option<String>,
    }

    /// A token as listed (never the secret).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TokenInfo {
        id: uuid::Uuid,
        name: String,
        kind: String,
        products: Vec<String>,
        pack: Option<String>,
        scopes: Vec<String>,
        channels: Vec<String>,
        created_at: String,
        created_by: String,
        expires_at: Option<String>,
        revoked_at: Option<String>,
        /// When the token last authenticated a request, to the minute.
        last_used_at: Option<String>,
    }

    /// `GET /api/v1/admin/tokens`.
    #[derive(Serialize, ToSchema)]
    pub struct TokenList {
        tokens: Vec<TokenInfo>,
    }

    /// `GET /api/v1/admin/products`.
    #[derive(Serialize, ToSchema)]
    pub struct ProductList {
        products: Vec<Product>,
    }

    /// `GET /api/v1/admin/packs`.
    #[derive(Serialize, ToSchema)]
    pub struct PackList {
        packs: Vec<Pack>,
    }

    /// `GET /api/v1/admin/audit`.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct AuditPage {
        entries: Vec<Entry>,
        /// Pass as `cursor` for the next page; `null` on the last one.
        next_cursor: Option<String>,
    }

    /// `POST /api/v1/storage/presign`.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct PresignedUpload {
        upload_id: uuid::Uuid,
        /// The storage key the Hub derived.
        key: String,
        /// Always `PUT`.
        method: String,
        url: String,
        /// Send exactly these headers with the upload.
        upload_headers: BTreeMap<String, String>,
        expires_at: String,
        /// The object is already stored with this sha256: skip the upload.
        already_uploaded: bool,
    }

    /// A release in the history.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ReleaseSummary {
        version: String,
        notes: String,
        published_at: String,
        yanked: bool,
        artifact_count: i64,
    }

    /// `GET /api/v1/releases/{product}`.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ReleaseList {
        product: String,
        /// The key the product's updater signatures are made with, as Tauri's `pubkey`
        /// setting takes it (base64 of the minisign `.pub` file); `null` when none is set.
        /// `atlas-hub release publish` checks each `.sig` against it before uploading.
        updater_public_key: Option<String>,
        releases: Vec<ReleaseSummary>,
        next_cursor: Option<String>,
    }

    /// `GET /api/v1/releases/{product}/latest/{os}/{arch}`.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct LatestRelease {
        product: String,
        channel: String,
        version: String,
        notes: String,
        published_at: String,
        /// The requested kind, else the platform's primary artifact.
        artifact: LatestArtifact,
        /// Every artifact of the release for the platform, primary first.
        artifacts: Vec<LatestArtifact>,
    }

    /// `GET /api/v1/releases/{product}/channels`.
    #[derive(Serialize, ToSchema)]
    pub struct ChannelList {
        product: String,
        channels: Vec<ChannelView>,
    }

    /// `PUT /api/v1/releases/{product}/channels/{channel}`.
    #[derive(Serialize, ToSchema)]
    pub struct ChannelMoved {
        product: String,
        channel: ChannelView,
    }

    /// Tauri's static manifest.
    #[derive(Serialize, ToSchema)]
    pub struct UpdaterManifest {
        version: String,
        /// Absent when the release has no notes.
        notes: Option<String>,
        pub_date: String,
        /// Keyed `{os}-{arch}` (the platform's primary artifact among those listed) and
        /// `{os}-{arch}-{bundle}`; `darwin-…` entries also as `macos-…`.
        platforms: BTreeMap<String, ManifestEntry>,
    }

    /// One platform of the static manifest.
    #[derive(Serialize, ToSchema)]
    pub struct ManifestEntry {
        /// The `.sig` file content.
        signature: String,
        /// Hub download URL.
        url: String,
        /// cargo-packager-updater's format (`appimage`, `nsis`, `wix`, `app`); absent only
        /// for kinds listed because `bundleType` asked for them.
        #[schema(pattern = "^(appimage|nsis|wix|app)$")]
        format: Option<String>,
    }

    /// A pack build (deploy answer).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct PackBuild {
        pack: String,
        channel: String,
        build: String,
        deployed_at: String,
        artifacts: Vec<PackArtifact>,
    }

    /// A pack artifact with its download URL.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct PackArtifact {
        download_id: String,
        download_url: String,
        filename: String,
        size: i64,
        sha256: String,
    }

    /// A pack channel and its build.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct PackChannel {
        pack: String,
        channel: String,
        build: String,
        deployed_at: String,
        artifacts: Vec<PackArtifact>,
        previous_build: Option<String>,
        updated_at: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_method_has_exactly_one_operation() {
        for route in super::super::ROUTES {
            for (method, _) in route.methods {
                let n = OPERATIONS
                    .iter()
                    .filter(|o| o.pattern == route.pattern && o.method == *method)
                    .count();
                assert_eq!(n, 1, "{method} {} has {n} operations", route.pattern);
            }
        }
        for op in OPERATIONS {
            assert!(
                super::super::ROUTES
                    .iter()
                    .any(|r| r.pattern == op.pattern
                        && r.methods.iter().any(|(m, _)| *m == op.method)),
                "operation {} ({} {}) has no route",
                op.id,
                op.method,
                op.pattern
            );
        }
    }

    #[test]
    fn every_schema_referenced_is_defined() {
        let doc = generate();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| *c != '"').collect();
            assert!(
                schemas.contains_key(&name),
                "{name} is referenced, not defined"
            );
        }
    }

    /// The snapshot: the committed (and served) `openapi.json` is the generated document.
    /// After an intended change: `cargo run -- openapi > openapi.json` and review the diff.
    #[test]
    fn committed_document_is_the_generated_one() {
        let generated = generate_text();
        if std::env::var_os("ATLAS_BLESS_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
            std::fs::write(path, &generated).expect("write openapi.json");
            return;
        }
        assert!(
            DOCUMENT == generated,
            "openapi.json differs from the document the code generates; if the change is \
             intended, run `cargo run -- openapi > openapi.json` (or ATLAS_BLESS_OPENAPI=1 \
             cargo test --lib openapi) and commit the diff"
        );
    }
}
