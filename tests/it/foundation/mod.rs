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

mod database;
mod hosts;

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
