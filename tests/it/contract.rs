//! Contract fuzzing: schemathesis (from PyPI, pinned in `tests/contract/requirements.txt`)
//! generates requests from the OpenAPI document the Hub serves and checks every answer
//! against it: no 5xx, documented status codes, content types and response schemas,
//! schema-violating input refused with a 4xx, authentication enforced where the document
//! says so, and 405 with a correct `Allow` for undocumented methods.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::api::{ALL_SCOPES, Artifact, admin_token, app_token, create_product, publish};
use crate::support::{TestHub, client, root};

/// Seconds of fuzzing per pass (two passes: admin routes, then everything else).
fn budget() -> u64 {
    std::env::var("ATLAS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// Runs one schemathesis pass; panics with its report when it finds a failure.
///
/// schemathesis tells contract failures (a `FAILURES` section) from its own errors (an
/// `ERRORS` section: an exception inside the tool). A failure fails the test at once; a run
/// with only tool errors is run once more, and fails the test if it errs again.
fn fuzz(exe: &PathBuf, hub: &TestHub, token: &str, filter: &[&str], report: &str) {
    for attempt in 1..=2 {
        let (ok, stdout) = fuzz_once(exe, hub, token, filter, report);
        // A pass that tested nothing proves nothing.
        assert!(
            !stdout.contains("No operations"),
            "schemathesis selected no operations ({report})"
        );
        if ok {
            return;
        }
        let tool_errors_only = !stdout.contains("= FAILURES =") && stdout.contains("= ERRORS =");
        assert!(
            tool_errors_only && attempt == 1,
            "schemathesis found contract violations ({report}); see the report above"
        );
        eprintln!("schemathesis ({report}) erred inside the tool without a failure: once more");
    }
}

/// One schemathesis run: whether it passed, and what it printed.
fn fuzz_once(
    exe: &PathBuf,
    hub: &TestHub,
    token: &str,
    filter: &[&str],
    report: &str,
) -> (bool, String) {
    let started = Instant::now();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    std::fs::create_dir_all(&out_dir).unwrap();
    let output = Command::new(exe)
        // Its cache and reports stay under target/.
        .current_dir(&out_dir)
        .arg("run")
        .arg(hub.at("/api/v1/openapi.json"))
        .args(["--url", &hub.at("")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection,ignored_auth,\
             unsupported_method,allow_header_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &budget().to_string()])
        .args(["--max-examples", "60"])
        // One worker: with two, Hypothesis' `ast.parse` calls race in CPython 3.11
        // ("AST constructor recursion depth mismatch"), an error inside the tool.
        .args(["--workers", "1", "--seed", "20261127", "--no-color"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(out_dir.join(format!("{report}.xml")))
        .args(filter)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "schemathesis ({report}) took {:.0?}:\n{stdout}\n{stderr}",
        started.elapsed()
    );
    (output.status.success(), stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_keeps_its_openapi_contract_under_schemathesis() {
    // Installed by the test itself on first use; without python3 this fails naming the fix.
    let exe = crate::tools::schemathesis();
    let hub = TestHub::start().await;

    // The served document is the committed one.
    let served = client()
        .get(hub.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let served: Value = served.json().await.unwrap();
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("openapi.json")).unwrap())
            .unwrap();
    assert_eq!(served, committed);
    assert_eq!(served["openapi"], "3.1.0");

    // Something to find: a product with a release on stable, a pack.
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "launcher", json!({})).await;
    let app = app_token(&hub, &admin, &["*"], ALL_SCOPES, &[]).await;
    let (status, body) = publish(
        &hub,
        &app,
        "launcher",
        "1.0.0",
        Some("stable"),
        &[Artifact::new("linux", "x86_64", "appimage", "contract")],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "name": "Maps"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");

    fuzz(&exe, &hub, &admin, &["--include-tag", "admin"], "admin");
    fuzz(
        &exe,
        &hub,
        &app,
        &["--exclude-tag", "admin"],
        "public-and-ci",
    );

    // Nothing the fuzzer sent broke the data: the seeded release still serves.
    let (status, body) = hub
        .api()
        .get("/api/v1/releases/launcher/latest/linux/x86_64")
        .await
        .parts();
    assert_eq!(status, 200, "{body}");
    assert!(
        !hub.log().contains("\"status\":500"),
        "a 500 was logged during fuzzing"
    );
}
