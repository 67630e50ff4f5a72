//! The local developer sign-in of `atlas-hub serve`: one click in, as an admin, when no
//! provider is configured; never offered by a deployed function.

use serde_json::{Value, json};

use super::browser::{Browser, location};
use crate::support::{Function, TestHub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_providers_signs_the_developer_in_and_no_function_can() {
    let hub = TestHub::start().await;
    // serve says how to sign in (its stdout reaches the file a moment after it listens).
    let said = async {
        while !hub.stdout().contains("/api/v1/auth/signin/local") {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), said)
        .await
        .unwrap_or_else(|_| panic!("serve did not say how to sign in: {}", hub.stdout()));
    let mut browser = Browser::new(&hub.url);
    let info: Value = browser
        .get("/api/v1/auth/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["providers"][0]["id"], "local", "{info}");

    let done = browser
        .get("/api/v1/auth/signin/local?returnTo=/console/tokens")
        .await;
    assert_eq!(location(&done), "/console/tokens");
    let info: Value = browser
        .get("/api/v1/auth/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&info["signedIn"], &info["role"]),
        (&json!(true), &json!("admin")),
        "{info}"
    );
    assert!(
        info["person"].as_str().unwrap().starts_with("local:"),
        "{info}"
    );
    assert_eq!(browser.get("/api/v1/admin/tokens").await.status(), 200);
    let bad = browser
        .get("/api/v1/auth/signin/local?returnTo=https://evil.example")
        .await;
    assert_eq!(bad.status(), 400);

    // The deployed functions: the route does not exist in their router, and the session
    // endpoint offers no developer sign-in.
    let signin = Function::start("auth_signin", &hub.database_url);
    let r = crate::support::client()
        .get(signin.at("/api/v1/auth/signin/local"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let session = Function::start("auth_session", &hub.database_url);
    let info: Value = crate::support::client()
        .get(session.at("/api/v1/auth/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["providers"], json!([]), "{info}");
}
