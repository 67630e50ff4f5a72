//! Abuse limits, against real function binaries sharing one PostgreSQL: per-token limits on
//! presign and publish, and a per-address limit on failed authentication, each holding
//! across instances and answered 429 `rate_limited` with `Retry-After`.
//!
//! Function binaries run the `vercel_runtime` host, which takes the client's address from
//! `x-forwarded-for` (Vercel's edge sets it); the tests pick addresses with that header.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{ALL_SCOPES, Api, Artifact, Reply, admin_token, app_token, create_product};
use crate::support::{Function, HubOptions, TestHub};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn presign_body(version: &str) -> Value {
    let a = Artifact::new("linux", "x86_64", "appimage", version);
    json!({
        "product": "launcher", "version": version, "os": a.os, "arch": a.arch, "kind": a.kind,
        "filename": a.filename, "size": a.bytes.len(), "sha256": a.sha256(),
        "contentType": "application/octet-stream",
    })
}

fn assert_limited(a: &Reply, max_wait: u64, what: &str) {
    assert_eq!(
        (a.status, a.code()),
        (429, Some("rate_limited")),
        "{what}: {a:?}"
    );
    let wait: u64 = a
        .header("retry-after")
        .expect("429 carries Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=max_wait).contains(&wait), "{what}: Retry-After {wait}");
}

#[tokio::test(flavor = "multi_thread")]
async fn presign_and_publish_limits_are_per_token_and_shared_by_every_instance() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "launcher", json!({})).await;
    let ci = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let other = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    // 4 presigns a minute (one every 15 s), 2 publishes a minute (one every 30 s).
    let limits = [
        ("ATLAS_LIMIT_PRESIGN", "4/min"),
        ("ATLAS_LIMIT_PUBLISH", "2/min"),
    ];
    let presigners = [
        Function::start_with("storage_presign", &hub.database_url, &hub.bucket, &limits),
        Function::start_with("storage_presign", &hub.database_url, &hub.bucket, &limits),
    ];
    let publishers = [
        Function::start_with("releases_publish", &hub.database_url, &hub.bucket, &limits),
        Function::start_with("releases_publish", &hub.database_url, &hub.bucket, &limits),
    ];

    let presign = |i: usize, token: &str, version: &str| {
        let url = presigners[i % 2].at("/api/v1/storage/presign");
        let auth = bearer(token);
        let body = presign_body(version);
        async move {
            Api::new(url)
                .headers(&[("authorization", &auth)])
                .post("", body)
                .await
        }
    };
    // The burst: four presigns, alternating instances, then the fifth is refused.
    for i in 0..4 {
        let a = presign(i, &ci, &format!("1.0.{i}")).await;
        assert_eq!(a.status, 200, "presign {i}: {a:?}");
    }
    let refused = presign(4, &ci, "1.0.4").await;
    assert_limited(&refused, 15, "fifth presign");
    // The other instance refuses it too: the bucket is in the database, not the process.
    assert_limited(
        &presign(5, &ci, "1.0.4").await,
        15,
        "fifth presign elsewhere",
    );
    // Another token has its own bucket.
    assert_eq!(presign(0, &other, "1.0.9").await.status, 200);

    // Publishes count whether or not they then succeed (these name nothing uploaded).
    let publish = |i: usize, token: &str| {
        let url = publishers[i % 2].at("/api/v1/releases/launcher/publish");
        let auth = bearer(token);
        let body = json!({"version": format!("2.0.{i}"), "artifacts": [{
            "uploadId": "00000000-0000-4000-8000-000000000000",
            "os": "linux", "arch": "x86_64", "kind": "appimage",
            "size": 3, "sha256": "00".repeat(32)}]});
        async move {
            Api::new(url)
                .headers(&[("authorization", &auth)])
                .post("", body)
                .await
        }
    };
    for i in 0..2 {
        let a = publish(i, &ci).await;
        // Past validation and authentication, refused for the upload it names.
        assert!(matches!(a.status, 404 | 409 | 422), "publish {i}: {a:?}");
    }
    assert_limited(&publish(2, &ci).await, 30, "third publish");
    assert!(publish(3, &other).await.status != 429);
    // The presign limit is separate from the publish limit, and still spent.
    assert_limited(
        &presign(0, &ci, "1.0.5").await,
        15,
        "presign after publishes",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_is_not_counted_and_the_bucket_refills_after_retry_after() {
    let hub = TestHub::start_with(HubOptions {
        env: vec![("ATLAS_LIMIT_PRESIGN".into(), "2/2s".into())],
        ..HubOptions::default()
    })
    .await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "launcher", json!({})).await;
    let ci = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let auth = bearer(&ci);
    let headers = [("authorization", auth.as_str())];
    let presign = |v: &str| {
        hub.api()
            .headers(&headers)
            .post("/api/v1/storage/presign", presign_body(v))
    };
    assert_eq!(presign("1.0.0").await.status, 200);
    assert_eq!(presign("1.0.1").await.status, 200);
    // Hammering while refused does not push the refill further away.
    for _ in 0..5 {
        assert_limited(&presign("1.0.2").await, 1, "over the burst");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = presign("1.0.2").await;
    assert_eq!(again.status, 200, "after Retry-After: {again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_authentications_block_an_address_on_every_instance_and_no_other() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    let (status, _) = hub
        .api()
        .bearer(&admin)
        .post("/api/v1/admin/packs", json!({"slug": "skins"}))
        .await
        .parts();
    assert_eq!(status, 201);
    let limits = [("ATLAS_LIMIT_AUTH_FAILURES", "3/min")];
    let tokens_fn = Function::start_with("admin_tokens", &hub.database_url, &hub.bucket, &limits);
    let deploy_fn = Function::start_with("packs_deploy", &hub.database_url, &hub.bucket, &limits);
    let attacker = "198.51.100.7";
    let neighbour = "198.51.100.8";

    let list_tokens = |from: &'static str, token: String| {
        let url = tokens_fn.at("/api/v1/admin/tokens");
        async move {
            Api::new(url)
                .headers(&[
                    ("x-forwarded-for", from),
                    ("authorization", &bearer(&token)),
                ])
                .get("")
                .await
        }
    };
    let deploy_with_oidc = |from: &'static str| {
        let url = deploy_fn.at("/api/v1/packs/skins/deploy");
        let body = json!({"build": "b1", "channel": "live", "artifacts": [{
            "key": "packs/skins/b1/a.zip", "size": 1, "sha256": "00".repeat(32)}]});
        async move {
            Api::new(url)
                .headers(&[
                    ("x-forwarded-for", from),
                    ("x-atlas-oidc-token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
                ])
                .post("", body)
                .await
        }
    };

    // Three failures of three kinds, on two instances: an unknown token, a bad OIDC token,
    // something that is not a token at all. Each is still the honest 401.
    let unknown = format!("atlas_admin_{}", "x".repeat(43));
    let a = list_tokens(attacker, unknown.clone()).await;
    assert_eq!((a.status, a.code()), (401, Some("token_invalid")));
    let a = deploy_with_oidc(attacker).await;
    assert_eq!((a.status, a.code()), (401, Some("oidc_invalid")));
    let a = list_tokens(attacker, "hunter2".into()).await;
    assert_eq!((a.status, a.code()), (401, Some("token_invalid")));

    // The fourth is refused, and so is every credential from that address, even a valid
    // one, on either instance, until Retry-After.
    assert_limited(&list_tokens(attacker, unknown.clone()).await, 20, "fourth");
    assert_limited(
        &list_tokens(attacker, admin.clone()).await,
        20,
        "valid token",
    );
    assert_limited(&deploy_with_oidc(attacker).await, 20, "oidc while blocked");

    // Another address is untouched: its valid token works, its failures are its own.
    assert_eq!(list_tokens(neighbour, admin.clone()).await.status, 200);
    let a = list_tokens(neighbour, unknown).await;
    assert_eq!((a.status, a.code()), (401, Some("token_invalid")));
    // A request without credentials is not a failed authentication, and is told so.
    let a = tokens_fn
        .api()
        .headers(&[("x-forwarded-for", neighbour)])
        .get("/api/v1/admin/tokens")
        .await;
    assert_eq!((a.status, a.code()), (401, Some("token_missing")));
}
