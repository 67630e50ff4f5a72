//! Foundation: health, problem errors, request ids, logs; the three hosts (a function binary
//! alone, the Lambda adapter, the local server); configuration errors; PgBouncer; migrations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_hub::db::migrate::{self, MIGRATIONS, Migration};
use atlas_hub::db::{Db, Sql};
use atlas_hub::dev::{free_port, pgbouncer::LocalPgBouncer};
use atlas_hub::http::MAX_BODY_BYTES;
use atlas_hub::routes::FUNCTIONS;
use atlas_hub::state::AppState;
use http::Method;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{
    Function, HubOptions, TestHub, client, config, fresh_database, function_binary, log_lines_for,
    services, unique_name, work_dir,
};

#[tokio::test]
async fn health_answers_200_with_schema_versions() {
    let hub = TestHub::start().await;
    let r = client().get(hub.at("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["schema"]["current"], body["schema"]["expected"]);
    assert!(body["schema"]["expected"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_problems() {
    let hub = TestHub::start().await;
    let c = client();
    let r = c.get(hub.at("/api/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    let r = c.delete(hub.at("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let allow: Vec<&str> = r.headers()["allow"]
        .to_str()
        .unwrap()
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(allow, ["GET", "HEAD"]);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}

// ---- Vercel: each function binary alone on VERCEL_DEV_PORT -------------------------------

#[tokio::test]
async fn the_health_function_alone_answers_over_http() {
    let function = Function::start("health", &fresh_database(true).await);
    let r = client()
        .get(function.at("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["schema"]["current"], body["schema"]["expected"]);
    assert_eq!(body["version"], atlas_hub::VERSION);
}

#[tokio::test]
async fn a_function_on_a_database_behind_the_code_answers_503_schema_behind() {
    // Functions never migrate: an unmigrated database is "behind" until `atlas-hub migrate`.
    let function = Function::start("health", &fresh_database(false).await);
    let r = client()
        .get(function.at("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["schema"]["current"], 0);
    assert_eq!(body["checks"]["schema"], "behind");
}

/// A plausible value for a path parameter (only routing is checked, not the answer).
fn sample(name: &str) -> &'static str {
    match name {
        "product" => "launcher",
        "pack" => "tools",
        "os" | "target" => "linux",
        "arch" => "x86_64",
        "version" | "currentVersion" => "1.0.0",
        "channel" => "stable",
        "downloadId" | "id" => "00000000-0000-4000-8000-000000000000",
        _ => "x",
    }
}

/// Every route's own binary, started alone, resolves requests to that route both at its
/// public path and at its function path with parameters in the query (Vercel's file-system
/// routing turns `[param]` segments into `?param=`).
#[tokio::test]
async fn every_function_binary_resolves_its_route_from_the_path_and_the_query() {
    let database_url = fresh_database(true).await;
    let c = client();
    let doc = atlas_hub::routes::openapi::generate();
    for route in FUNCTIONS {
        let function = Function::start(route.bin, &database_url);
        let names: Vec<&str> = route
            .pattern
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let mut paths = vec![
            route
                .pattern
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => sample(name),
                        None => s,
                    },
                )
                .collect::<Vec<_>>()
                .join("/"),
        ];
        if !names.is_empty() {
            let file_path = route.api_file.trim_end_matches(".rs");
            let file_path = file_path.strip_suffix("/index").unwrap_or(file_path);
            let query: Vec<String> = names.iter().map(|n| format!("{n}={}", sample(n))).collect();
            paths.push(format!("/{file_path}?{}", query.join("&")));
        }
        let first = doc["paths"][route.pattern]
            .as_object()
            .and_then(|ops| ops.keys().next())
            .unwrap_or_else(|| panic!("{} is not in the OpenAPI document", route.pattern));
        let method: Method = first.to_ascii_uppercase().parse().unwrap();
        for (i, path) in paths.iter().enumerate() {
            let id = format!(
                "route-{}-{i}",
                route.bin.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            );
            let mut request = c
                .request(method.clone(), function.at(path))
                .header("x-request-id", &id);
            if method != Method::GET && method != Method::HEAD && method != Method::DELETE {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let r = request.send().await.unwrap();
            let status = r.status();
            assert_eq!(r.headers()["x-request-id"], id.as_str());
            assert_ne!(status, 405, "{method} {path} on {}", route.bin);
            let lines = log_lines_for(&function.log(), &id);
            assert_eq!(
                lines.len(),
                1,
                "one log line for {path}: {}",
                function.log()
            );
            assert_eq!(
                lines[0]["route"], route.pattern,
                "{method} {path} on function {} did not resolve to its route (status {status})",
                route.bin
            );
        }
    }
}

// ---- AWS Lambda: real API Gateway v2 / Function URL events through lambda_http ----------

/// An API Gateway v2 (HTTP API / Function URL) event, shaped like AWS's documented example.
fn api_gateway_v2_event(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_http::Request {
    let mut all_headers = json!({
        "accept": "*/*",
        "host": "abcdefghij.lambda-url.eu-west-2.on.aws",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-5eb33c07-de25b420912dee103a5db434",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https"
    });
    for (k, v) in headers {
        all_headers[*k] = json!(v);
    }
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.eu-west-2.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0"
            },
            "requestId": "MIZRNhJtIAMEMDw=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "11/Jan/2023:11:45:34 +0000",
            "timeEpoch": 1673437534837u64
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// The status, headers and JSON body of a response.
async fn answer(response: axum::response::Response) -> (u16, http::HeaderMap, Value) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status.as_u16(),
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn lambda_state() -> Arc<AppState> {
    let database_url = fresh_database(true).await;
    Arc::new(AppState::new(config(&database_url, &[])).unwrap())
}

#[tokio::test]
async fn the_lambda_adapter_serves_health_from_a_real_event() {
    let state = lambda_state().await;
    let app = atlas_hub::hosts::lambda::app(atlas_hub::routes::router(state));
    let event = api_gateway_v2_event(
        "GET",
        "/api/health",
        "",
        &[("x-request-id", "lambda-health-1")],
        None,
    );
    let (status, headers, body) = answer(app.oneshot(event).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "lambda-health-1");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["schema"]["current"], body["schema"]["expected"]);
}

/// A route outside `/api`, hosted like `/download/…`: its function lives at
/// `/api/download/[product]/echo/[version]` and Vercel may hand it either path. It answers
/// the path parameters it resolved and the size of the JSON body it read.
fn echo() -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    use atlas_hub::http::extract::{Json, Path};
    type Params = Path<std::collections::BTreeMap<String, String>>;
    use atlas_hub::http::respond::json as answer;
    type Answer = Result<axum::response::Response, atlas_hub::error::ApiError>;
    async fn echo(Path(params): Params) -> Answer {
        answer(
            http::StatusCode::OK,
            &json!({ "params": params, "bodyBytes": 0 }),
        )
    }
    async fn echo_body(Path(params): Params, Json(body): Json<Value>) -> Answer {
        let size = body.to_string().len();
        answer(
            http::StatusCode::OK,
            &json!({ "params": params, "bodyBytes": size }),
        )
    }
    let router = axum::Router::new()
        .route(
            "/download/{product}/echo/{version}",
            axum::routing::get(echo).post(echo_body),
        )
        .route("/api/v1/echo/{product}/{version}", axum::routing::get(echo))
        .fallback(atlas_hub::http::middleware::no_route);
    atlas_hub::hosts::vercel::app(router)
}

#[tokio::test]
async fn path_parameters_resolve_from_the_path_or_from_the_query() {
    let call = |path: &'static str, query: &'static str| async move {
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let req = http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        answer(echo().oneshot(req).await.unwrap()).await
    };

    // The public path, percent-encoded as a client sends `1.2.0+build.5`.
    let (status, _, body) = call("/download/launcher/echo/1.2.0%2Bbuild.5", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["params"],
        json!({"product": "launcher", "version": "1.2.0+build.5"})
    );

    // The function path with the parameters in the query, as file-system routing sends it.
    let (status, _, body) = call(
        "/api/download/[product]/echo/[version]",
        "product=launcher&version=1.2.0%2Bbuild.5",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["params"],
        json!({"product": "launcher", "version": "1.2.0+build.5"})
    );

    // A parameter missing, or given twice (a client's own beside the platform's): refused.
    for query in ["product=launcher", "product=launcher&version=1&version=2"] {
        let (status, headers, body) = call("/api/download/[product]/echo/[version]", query).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_input")),
            "{query}: {body}"
        );
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    // An empty one names no route; one holding a slash stays one segment.
    let (status, _, body) = call(
        "/api/download/[product]/echo/[version]",
        "product=launcher&version=",
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _, body) = call(
        "/api/download/[product]/echo/[version]",
        "product=a%2Fb&version=1.0.0",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["params"]["product"], "a/b");
}

/// Vercel's Rust builder routes `/api/v1/echo/a/b` to the function as
/// `/api/v1/echo/[product]/[version]?product=a&version=b`. If a function ever sees that
/// destination path, the `[product]` placeholder must not be taken as the value.
#[tokio::test]
async fn file_path_placeholders_defer_to_the_query() {
    let req = http::Request::get("/api/v1/echo/[product]/[version]?product=launcher&version=1.0.0")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, body) = answer(echo().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["params"],
        json!({"product": "launcher", "version": "1.0.0"})
    );
}

// ---- Oversized bodies --------------------------------------------------------------------

#[tokio::test]
async fn oversized_bodies_are_answered_413_by_the_lambda_adapter() {
    let state = lambda_state().await;
    let app = atlas_hub::hosts::lambda::app(atlas_hub::routes::router(state));
    // A JSON body of exactly the limit is read (and refused for its content, not its size).
    let at_limit = format!("{{\"x\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES - 8));
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    let over = format!("{{\"x\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES - 7));
    let event = |body: &str| {
        api_gateway_v2_event(
            "POST",
            "/api/v1/storage/presign",
            "",
            &[("content-type", "application/json")],
            Some(body),
        )
    };
    let (status, _, body) = answer(app.clone().oneshot(event(&at_limit)).await.unwrap()).await;
    assert_ne!(status, 413, "{body}");
    let (status, headers, body) = answer(app.oneshot(event(&over)).await.unwrap()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], "payload_too_large");
}

#[tokio::test]
async fn oversized_bodies_are_answered_413_by_the_local_server() {
    let hub = TestHub::start().await;
    let (method, path) = (Method::POST, "/api/v1/storage/presign".to_owned());
    let r = client()
        .request(method.clone(), hub.at(&path))
        .header("content-type", "application/json")
        .body(vec![b' '; MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "{method} {path}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
}

// ---- Configuration -----------------------------------------------------------------------

#[test]
fn a_bad_configuration_exits_nonzero_with_one_message_naming_every_variable() {
    let port = free_port().unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(function_binary("health"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VERCEL_DEV_PORT", port.to_string())
        .env("ATLAS_TOKEN_PEPPER", "tiny-pepper-value")
        .env("ATLAS_DB_POOL_SIZE", "lots")
        .env("ATLAS_S3_ENDPOINT", "127.0.0.1:9000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the function kept running with a bad configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(!status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !stdout.contains("Dev server listening"),
        "it started serving: {stdout}"
    );
    assert_eq!(
        stderr.matches("atlas-hub:").count(),
        1,
        "one message, not one per problem:\n{stderr}"
    );
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    for var in [
        "DATABASE_URL",
        "ATLAS_HUB_URL",
        "ATLAS_DB_POOL_SIZE",
        "ATLAS_S3_ENDPOINT",
        "ATLAS_S3_BUCKET",
        "ATLAS_S3_ACCESS_KEY_ID",
        "ATLAS_S3_SECRET_ACCESS_KEY",
        "ATLAS_TOKEN_PEPPER",
    ] {
        assert!(stderr.contains(var), "{var} is not named:\n{stderr}");
    }
    assert!(
        !stderr.contains("tiny-pepper-value"),
        "a secret was echoed:\n{stderr}"
    );
}

// ---- PgBouncer (transaction mode) --------------------------------------------------------

fn start_pgbouncer() -> LocalPgBouncer {
    let dir = work_dir().join(unique_name("pgbouncer"));
    LocalPgBouncer::start(&dir, free_port().unwrap(), services().pg_port).expect("pgbouncer")
}

/// The database name at the end of a connection URL.
fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn the_hub_works_through_a_transaction_mode_pgbouncer() {
    let bouncer = start_pgbouncer();
    let direct = fresh_database(true).await;
    let hub = TestHub::start_with(HubOptions {
        database_url: Some(bouncer.url(database_name(&direct))),
        env: vec![
            ("ATLAS_DB_POOLER".into(), "transaction".into()),
            ("ATLAS_LIMIT_AUTH_FAILURES".into(), "2/min".into()),
        ],
    })
    .await;
    let c = client();
    // 50 requests, 10 at a time, so the Hub's pooled connections share PgBouncer's servers.
    for _ in 0..5 {
        let batch = (0..10).map(|_| c.get(hub.at("/api/health")).send());
        for r in futures_util::future::join_all(batch).await {
            let r = r.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{body}\n{}", hub.log());
            assert_eq!(body["checks"]["database"], "ok");
        }
    }

    // The write paths' statements through the pooler: token lookup, presign limit, upload
    // record; then failed authentications counted up to the limit and the 429.
    let admin = crate::api::admin_token_on(&direct);
    crate::api::create_product(&hub, &admin, "launcher", json!({})).await;
    let app = crate::api::app_token(&hub, &admin, &["launcher"], crate::api::ALL_SCOPES, &[]).await;
    let a = crate::api::Artifact::new("linux", "x86_64", "appimage", "pooled");
    let (status, p) = crate::api::presign(&hub, &app, "launcher", "1.0.0", &a).await;
    assert_eq!(status, 200, "{p}\n{}", hub.log());
    let wrong = format!("atlas_app_{}", "x".repeat(43));
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (status, body) =
            crate::api::call(&hub, "GET", "/api/v1/admin/tokens", Some(&wrong), None).await;
        codes.push((status, body["code"].as_str().unwrap_or("").to_owned()));
    }
    let expected = [
        (401, "token_invalid"),
        (401, "token_invalid"),
        (429, "rate_limited"),
    ];
    assert_eq!(
        codes
            .iter()
            .map(|(s, c)| (*s, c.as_str()))
            .collect::<Vec<_>>(),
        expected,
        "{}",
        hub.log()
    );
}

/// Why `ATLAS_DB_POOLER=transaction` exists: a statement prepared on one PgBouncer server
/// connection is unknown to the next one. Made deterministic by pinning the only warm
/// server connection inside another client's transaction.
#[tokio::test]
async fn named_statements_break_behind_pgbouncer_and_unnamed_ones_do_not() {
    let bouncer = start_pgbouncer();
    let direct = fresh_database(true).await;
    let url = bouncer.url(database_name(&direct));

    async fn second_query_while_a_transaction_holds_the_server(
        url: &str,
        pooler: &str,
    ) -> Result<(), atlas_hub::db::SqlError> {
        let db = Db::new(&config(url, &[("ATLAS_DB_POOLER", pooler)])).unwrap();
        let a = db.raw_conn().await.unwrap();
        let mut b = db.raw_conn().await.unwrap();
        let sql = "SELECT count(*) FROM atlas_schema_migrations WHERE version >= $1";
        let param: i32 = 0;
        let params: &[atlas_hub::db::Param<'_>] = &[(&param, tokio_postgres::types::Type::INT4)];
        a.query(sql, params).await?;
        let tx = b.transaction().await.unwrap();
        tx.batch("SELECT 1").await.unwrap();
        let second = a.query(sql, params).await;
        drop(tx);
        second.map(|_| ())
    }

    // Each run gets its own PgBouncer so its server pool starts cold.
    let named = second_query_while_a_transaction_holds_the_server(&url, "none").await;
    let error = named.expect_err("a cached named statement should be missing on a new server");
    assert!(
        error.to_string().contains("prepared statement")
            || format!("{error:?}").contains("prepared statement"),
        "{error:?}"
    );

    let bouncer = start_pgbouncer();
    let url = bouncer.url(database_name(&direct));
    second_query_while_a_transaction_holds_the_server(&url, "transaction")
        .await
        .expect("unnamed statements work on any server connection");
}

// ---- Migrations --------------------------------------------------------------------------

async fn unmigrated_db() -> (Db, String) {
    let url = fresh_database(false).await;
    (Db::new(&config(&url, &[])).unwrap(), url)
}

async fn applied_rows(url: &str) -> Vec<(i32, String, String)> {
    crate::support::connect(url)
        .await
        .query(
            "SELECT version, name, checksum FROM atlas_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let (db, url) = unmigrated_db().await;
    let mut conn = db.raw_conn().await.unwrap();
    migrate::run(&mut conn, MIGRATIONS).await.unwrap();
    let before = applied_rows(&url).await;

    let first = &MIGRATIONS[0];
    let edited = [Migration {
        version: first.version,
        name: first.name,
        sql: "-- someone fixed a typo after it shipped\nSELECT 1;",
    }];
    let error = migrate::run(&mut conn, &edited)
        .await
        .expect_err("an edited migration must be refused");
    let message = error.to_string();
    assert!(message.contains("edited"), "{message}");
    assert!(message.contains(first.name), "{message}");
    assert_eq!(applied_rows(&url).await, before, "nothing recorded changes");
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let (db, url) = unmigrated_db().await;
    let mut conn = db.raw_conn().await.unwrap();
    let first = migrate::run(&mut conn, MIGRATIONS).await.unwrap();
    let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(first.applied, names);
    assert_eq!(first.version, migrate::expected_version());
    let applied_at = |url: String| async move {
        crate::support::connect(&url)
            .await
            .query(
                "SELECT applied_at::text FROM atlas_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let before = applied_at(url.clone()).await;

    let second = migrate::run(&mut conn, MIGRATIONS).await.unwrap();
    assert!(second.applied.is_empty(), "{:?}", second.applied);
    assert_eq!(second.version, migrate::expected_version());
    assert_eq!(applied_at(url.clone()).await, before);
    assert_eq!(
        migrate::current_version(&conn).await.unwrap(),
        migrate::expected_version()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_both_succeed_and_apply_each_file_once() {
    let (a, url) = unmigrated_db().await;
    let b = Db::new(&config(&url, &[])).unwrap();
    let c = Db::new(&config(&url, &[])).unwrap();
    let (mut ca, mut cb, mut cc) = (
        a.raw_conn().await.unwrap(),
        b.raw_conn().await.unwrap(),
        c.raw_conn().await.unwrap(),
    );
    let (ra, rb, rc) = tokio::join!(
        migrate::run(&mut ca, MIGRATIONS),
        migrate::run(&mut cb, MIGRATIONS),
        migrate::run(&mut cc, MIGRATIONS),
    );
    let reports = [ra.unwrap(), rb.unwrap(), rc.unwrap()];
    let mut applied: Vec<&str> = reports.iter().flat_map(|r| r.applied.clone()).collect();
    applied.sort();
    let mut names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    names.sort();
    assert_eq!(applied, names, "each migration applied exactly once");
    for r in &reports {
        assert_eq!(r.version, migrate::expected_version());
    }
    let rows = applied_rows(&url).await;
    assert_eq!(rows.len(), MIGRATIONS.len());
    for (row, m) in rows.iter().zip(MIGRATIONS) {
        assert_eq!((row.0, row.1.as_str()), (m.version, m.name));
        assert_eq!(row.2, migrate::checksum(m.sql));
    }
}

// ---- The request log ---------------------------------------------------------------------

#[tokio::test]
async fn each_request_logs_one_json_line_and_never_a_secret() {
    let hub = TestHub::start().await;
    let c = client();
    let secret = "secret-token-value";
    let requests = [
        ("log-ok-1", "/api/health", 200, "/api/health"),
        (
            // Refused (health takes no `token`), and still logged without the secret.
            "log-ok-2",
            "/api/health?token=secret-token-value",
            400,
            "/api/health",
        ),
        ("log-missing-1", "/api/nope", 404, "-"),
    ];
    for (id, path, status, _) in requests {
        let r = c
            .get(hub.at(path))
            .header("x-request-id", id)
            .header("authorization", format!("Bearer {secret}"))
            .header("x-atlas-pack-deploy-token", secret)
            .header("cookie", format!("session={secret}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["x-request-id"], id);
    }

    let log = hub.log();
    for (id, path, status, route) in requests {
        let lines = log_lines_for(&log, id);
        assert_eq!(lines.len(), 1, "exactly one line for {path}:\n{log}");
        let line = &lines[0];
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert!(
            line["latencyMs"].as_f64().is_some_and(|l| l >= 0.0),
            "{line}"
        );
        assert!(line["ts"].is_string(), "{line}");
        if status == 404 {
            assert_eq!(line["code"], "not_found", "{line}");
        } else if status == 400 {
            assert_eq!(line["code"], "invalid_input", "{line}");
        } else {
            assert!(line.get("code").is_none(), "{line}");
        }
    }
    assert!(
        !log.contains(secret),
        "a secret reached the request log:\n{log}"
    );
}

#[tokio::test]
async fn a_database_route_on_a_database_behind_the_code_answers_503_schema_behind() {
    let function = Function::start("releases_latest", &fresh_database(false).await);
    let r = client()
        .get(function.at("/api/v1/releases/launcher/latest/linux/x86_64"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "schema_behind", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("atlas-hub migrate"),
        "{body}"
    );
}

#[tokio::test]
async fn a_function_reached_by_a_less_specific_vercel_route_serves_the_more_specific_route() {
    // Vercel orders dynamic routes by file: `/api/v1/releases/x/channels` and `…/x/publish`
    // can reach the `[product]/[version]` function, with the segments in the query.
    let hub = crate::support::TestHub::start().await;
    let admin = crate::api::admin_token(&hub);
    crate::api::create_product(&hub, &admin, "launcher", serde_json::json!({})).await;
    let function = Function::start("releases_detail", &hub.database_url);
    let r = client()
        .get(
            function
                .at("/api/v1/releases/[product]/[version]/index?product=launcher&version=channels"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["channels"][0]["name"], "stable", "{body}");
    let r = client()
        .post(function.at("/api/v1/releases/launcher/publish"))
        .json(&serde_json::json!({"version": "1.0.0", "artifacts": []}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["code"], "token_missing",
        "publish was not served: {body}"
    );
    let r = client()
        .get(
            function
                .at("/api/v1/releases/[product]/[version]/index?product=launcher&version=1.0.0"),
        )
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no release 1.0.0"),
        "{body}"
    );
}

/// Runs `atlas-hub serve` with nothing configured; returns the child and its base URL.
fn serve_unconfigured(dev_dir: &std::path::Path, pg_port: u16) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["serve", "--port", "0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ATLAS_DEV_DIR", dev_dir)
        .env("ATLAS_DEV_PG_PORT", pg_port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("Atlas Hub listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn interrupt(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_local_command_starts_private_services_stops_them_on_ctrl_c_and_reuses_the_data() {
    let dev_dir = crate::support::work_dir().join(crate::support::unique_name("dev"));
    let pg_port = free_port().unwrap();
    let (mut first, url) = serve_unconfigured(&dev_dir, pg_port);
    let r = client()
        .get(format!("{url}/api/health?deep=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["storage"], "ok", "{body}");
    // An admin token created against the private database (the README's second step).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["admin", "bootstrap-token", "--name", "me"])
        .env_remove("DATABASE_URL")
        .env("ATLAS_DEV_DIR", &dev_dir)
        .env("ATLAS_DEV_PG_PORT", pg_port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    interrupt(&mut first);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(),
        "the private PostgreSQL outlived Ctrl-C"
    );

    // A second run reuses the cluster, the bucket and the pepper: the token still works.
    let (mut second, url) = serve_unconfigured(&dev_dir, pg_port);
    let r = client()
        .get(format!("{url}/api/v1/admin/products"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    interrupt(&mut second);
}
