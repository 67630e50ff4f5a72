//! The three hosts: each Vercel function binary alone, the Lambda adapter on real API
//! Gateway v2 events, the local server; oversized bodies on each.

use super::*;

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
