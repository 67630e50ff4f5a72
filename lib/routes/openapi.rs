//! The OpenAPI 3.1 document of the Hub, generated from the code.
//!
//! - Paths come from the route table itself: every handler declares its operation with
//!   `#[utoipa::path]` (path, parameters, body, answers, security) and
//!   [`super::routes`] collects them with the handlers (`utoipa-axum`), so there is no
//!   second table to keep in step.
//! - Component schemas are derived (`utoipa::ToSchema`) from the very types the handlers
//!   deserialize requests into and serialize responses from.
//! - What every operation shares is added once, in [`generate`]: the problem answers each
//!   may give (400, 404, 503; 401, 403 and 429 with credentials; the extra ones an operation
//!   lists as `x-problems`), that an empty query value counts as absent, and that an
//!   optional body is absent rather than `null`.
//!
//! The document is committed as `openapi.json` at the project root and served from that
//! file by `GET /api/v1/openapi.json` (no generation at request time, none at start). A test
//! regenerates it and fails when the two differ; `atlas-hub openapi > openapi.json` updates
//! it.

use std::sync::Arc;

use axum::extract::State;
use http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::public_cache;
use crate::http::extract::{NoQuery, Query};
use crate::http::{ApiResult, respond};
use crate::state::AppState;

/// The committed document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document.",
    responses((status = 200, description = "The OpenAPI document.", body = Object)),
)]
pub async fn get(State(state): State<Arc<AppState>>, _: Query<NoQuery>) -> ApiResult {
    Ok(respond::cached(
        StatusCode::OK,
        "application/json",
        Some(DOCUMENT.as_bytes().to_vec()),
        public_cache(&state),
    ))
}

/// The document's frame: info, tags, and the schemas the paths refer to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Atlas Hub",
        version = "1",
        description = "Release distribution: CI publishes immutable artifacts through presigned uploads, channels point at releases, launchers and runners find and download them through redirects. Errors are RFC 9457 problems with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "releases", description = "Public release reads (CDN-cacheable)."),
        (name = "downloads", description = "Download redirects and the runner installer."),
        (name = "updater", description = "Tauri v2 updater endpoints."),
        (name = "packs", description = "Packs: deploys and channels."),
        (name = "ci", description = "CI writes: presign, publish, channel moves, yanks."),
        (name = "admin", description = "Tokens, products, packs, access rules, audit."),
        (name = "auth", description = "Operators in a browser: sign-in, sessions, sign-out."),
        (name = "operations", description = "Health and this document."),
    ),
    components(schemas(crate::error::Problem)),
)]
pub struct ApiDoc;

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

/// What every operation shares, added to one: its problem answers and empty query values.
fn complete(op: &mut Map<String, Value>) {
    let secured = op
        .get("security")
        .is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty()));
    let mut problems: Vec<u16> = vec![400, 404, 503];
    if secured {
        problems.extend([401, 403, 429]);
    }
    if let Some(Value::Array(extra)) = op.remove("x-problems") {
        problems.extend(extra.iter().filter_map(|s| s.as_u64()).map(|s| s as u16));
    }
    problems.sort_unstable();
    problems.dedup();
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    for status in problems {
        let key = status.to_string();
        if responses.contains_key(&key) {
            continue;
        }
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
        responses.insert(key, response);
    }
    // An optional body (`request_body = Option<T>`: a route that gained a body and still
    // takes none) is absent or a `T`, never a JSON `null`, which the Hub refuses.
    if let Some(body) = op.get_mut("requestBody")
        && body.get("required").is_none()
    {
        for media in body
            .get_mut("content")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|c| c.values_mut())
        {
            let schema = &mut media["schema"];
            if let Some(Value::Array(one_of)) = schema.get("oneOf")
                && let [a, b] = one_of.as_slice()
            {
                let other = match (a["type"] == "null", b["type"] == "null") {
                    (true, false) => b.clone(),
                    (false, true) => a.clone(),
                    _ => continue,
                };
                *schema = other;
            }
        }
    }
    // An empty query value counts as absent (`?channel=` is the default channel); a header
    // is absent or a string, never `null`.
    for param in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if param["in"] == "header" && param["schema"]["type"].is_array() {
            param["schema"]["type"] = json!("string");
        }
        if param["in"] == "query" {
            let schema = param["schema"].take();
            param["schema"] = json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]});
            let description = param["description"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_owned();
            param["description"] = json!(
                format!("{description} Empty means absent.")
                    .trim_start()
                    .to_owned()
            );
        }
    }
}

/// The whole document, generated.
pub fn generate() -> Value {
    let (_, api) = super::routes().split_for_parts();
    let mut doc = serde_json::to_value(api).unwrap_or_default();
    doc["openapi"] = json!("3.1.0");
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            if let Value::Object(op) = op {
                complete(op);
            }
        }
    }
    doc["components"]["securitySchemes"] = json!({
        "appToken": {"type": "http", "scheme": "bearer",
            "description": "App deploy token (`atlas_app_…`), scoped to products, actions and channels."},
        "adminToken": {"type": "http", "scheme": "bearer",
            "description": "Admin token (`atlas_admin_…`)."},
        "packToken": {"type": "apiKey", "in": "header", "name": "x-atlas-pack-deploy-token",
            "description": "Pack deploy token (`atlas_pack_…`), scoped to one pack."},
        "cronSecret": {"type": "http", "scheme": "bearer",
            "description": "Vercel's scheduler: `CRON_SECRET`, which Vercel sets and sends to scheduled routes."},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "__Host-atlas-session",
            "description": "An operator's session (sign in at /api/v1/auth/signin/{provider}); its role decides what it may do. Requests that change state also need the x-atlas-csrf header (the csrfToken of GET /api/v1/auth/session) and a same-origin Origin / Sec-Fetch-Site."},
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_operation_and_every_function_its_route() {
        let doc = generate();
        let paths = doc["paths"].as_object().expect("paths");
        for f in super::super::FUNCTIONS {
            assert!(
                paths.contains_key(f.pattern),
                "{} has no operation",
                f.pattern
            );
        }
        assert_eq!(
            paths.len(),
            super::super::FUNCTIONS.len(),
            "a path without a function"
        );
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                assert!(
                    op["tags"].as_array().is_some_and(|t| t.len() == 1),
                    "{id}: one tag"
                );
                assert!(op["summary"].is_string(), "{id}: a summary");
            }
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
