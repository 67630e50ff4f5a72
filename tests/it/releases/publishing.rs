//! Publishing: each authentication failure's code, presign limits and key immutability,
//! verification of every object before anything is written, signatures.

use super::*;

#[tokio::test]
async fn each_auth_failure_has_its_own_code() {
    let (hub, admin, app) = setup(&[]).await;
    let body = json!({"version": "1.0.0", "artifacts": []});
    let path = "/api/v1/releases/launcher/publish";
    let code = |v: serde_json::Value| v["code"].as_str().unwrap_or("").to_owned();

    let (s, b) = hub.api().post(path, body.clone()).await.parts();
    assert_eq!((s, code(b)), (401, "token_missing".into()));
    let (s, b) = hub
        .api()
        .bearer("atlas_app_notarealtoken")
        .post(path, body.clone())
        .await
        .parts();
    assert_eq!((s, code(b)), (401, "token_invalid".into()));
    let (s, b) = hub
        .api()
        .bearer("hunter2")
        .post(path, body.clone())
        .await
        .parts();
    assert_eq!((s, code(b)), (401, "token_invalid".into()));

    // Scope: other product, missing action, channel not granted, wrong token kind.
    create_product(&hub, &admin, "runner", json!({})).await;
    let runner_only = app_token(&hub, &admin, &["runner"], ALL_SCOPES, &[]).await;
    let (s, b) = hub
        .api()
        .bearer(&runner_only)
        .post(path, body.clone())
        .await
        .parts();
    assert_eq!((s, code(b)), (403, "scope_denied".into()));
    let upload_only = app_token(&hub, &admin, &["launcher"], &["upload"], &[]).await;
    let (s, b) = hub
        .api()
        .bearer(&upload_only)
        .post(path, body.clone())
        .await
        .parts();
    assert_eq!((s, code(b)), (403, "scope_denied".into()));
    let dev_only = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &["dev"]).await;
    let (s, b) = move_channel(
        &hub,
        &dev_only,
        "launcher",
        "stable",
        json!({"version": "1.0.0"}),
    )
    .await;
    assert_eq!((s, code(b)), (403, "scope_denied".into()));
    let (s, b) = hub
        .api()
        .bearer(&app)
        .get("/api/v1/admin/tokens")
        .await
        .parts();
    assert_eq!((s, code(b)), (403, "scope_denied".into()));

    // Expired and revoked.
    let expiring = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let db = crate::support::connect(&hub.database_url).await;
    let n = db
        .execute(
            "UPDATE deploy_tokens SET expires_at = now() - interval '1 minute' WHERE digest = (SELECT digest FROM deploy_tokens ORDER BY created_at DESC LIMIT 1)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let (s, b) = hub
        .api()
        .bearer(&expiring)
        .post(path, body.clone())
        .await
        .parts();
    assert_eq!((s, code(b)), (401, "token_expired".into()));

    let (_, list) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/tokens")
        .await
        .parts();
    let text = list.to_string();
    assert!(
        !text.contains(&app) && !text.contains(&admin),
        "token list leaks a secret"
    );
    let used = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["lastUsedAt"].is_string());
    assert!(used.is_some(), "lastUsedAt is recorded: {list}");
    let (_, revocable) = hub.api().bearer(&admin).post("/api/v1/admin/tokens", json!({"name": "to-revoke", "kind": "app", "products": ["launcher"], "scopes": ["publish"]})).await.parts();
    let id = revocable["id"].as_str().unwrap();
    let r = client()
        .delete(hub.at(&format!("/api/v1/admin/tokens/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let revoked = revocable["token"].as_str().unwrap();
    let (s, b) = hub
        .api()
        .bearer(revoked)
        .post(path, body.clone())
        .await
        .parts();
    assert_eq!((s, code(b)), (401, "token_revoked".into()));
    assert!(!hub.log().contains(&admin), "a token reached the log");
}

#[tokio::test]
async fn presign_enforces_size_limits_and_immutability_of_keys() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "cli", json!({"maxArtifactSize": 1000})).await;
    let app = app_token(&hub, &admin, &["cli"], ALL_SCOPES, &[]).await;
    let big = Artifact::new("linux", "x86_64", "tar.gz", "big"); // 3000 bytes
    let (s, b) = presign(&hub, &app, "cli", "1.0.0", &big).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (413, Some("artifact_too_large")),
        "{b}"
    );
    assert_eq!(count_rows(&hub, "uploads", "true").await, 0);

    let mut small = Artifact::new("linux", "x86_64", "tar.gz", "s");
    small.bytes.truncate(500);
    let (s, p) = presign(&hub, &app, "cli", "1.0.0", &small).await;
    assert_eq!(s, 200);
    assert_eq!(p["alreadyUploaded"], false);
    assert!(
        p["key"]
            .as_str()
            .unwrap()
            .starts_with("releases/cli/1.0.0/linux-x86_64/tar.gz/")
    );
    for h in [
        "content-length",
        "x-amz-checksum-sha256",
        "if-none-match",
        "content-type",
    ] {
        assert!(p["uploadHeaders"][h].is_string(), "{h} missing in {p}");
        assert!(
            p["url"].as_str().unwrap().contains(h),
            "{h} is not signed: {}",
            p["url"]
        );
    }
    // Storage itself refuses another length (the signature binds it) and, once stored, an overwrite.
    assert_eq!(
        curl_upload_with(&p, &small.bytes[..400], &[("content-length", "400")]),
        403,
        "storage accepted another length"
    );
    assert_eq!(curl_upload(&p, &small.bytes), 200);
    assert_eq!(
        curl_upload(&p, &small.bytes),
        412,
        "storage allowed an overwrite"
    );

    // A body with another sha256 is refused by storage (400 BadDigest) and not kept (as S3
    // and R2 do; the local store drops it too), so publish finds nothing there, and the
    // correct body can still be uploaded to the same key.
    let mut other = Artifact::new("linux", "aarch64", "tar.gz", "u");
    other.bytes.truncate(500);
    let (_, q) = presign(&hub, &app, "cli", "1.0.0", &other).await;
    let mut tampered = other.bytes.clone();
    tampered[0] ^= 1;
    assert_eq!(
        curl_upload(&q, &tampered),
        400,
        "storage accepted a body with another sha256"
    );
    let publish_body = json!({"version": "1.0.0", "artifacts": [{"uploadId": q["uploadId"], "os": "linux",
        "arch": "aarch64", "kind": "tar.gz", "size": 500, "sha256": other.sha256()}]});
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post("/api/v1/releases/cli/publish", publish_body)
        .await
        .parts();
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("object_missing")),
        "{b}"
    );
    assert_eq!(
        curl_upload(&q, &other.bytes),
        200,
        "the refused body kept the key"
    );

    // A retry for the stored object says so. Other bytes for the same file name get a key
    // of their own (keys are content-addressed): no presign can lock another's key.
    let (s, again) = presign(&hub, &app, "cli", "1.0.0", &small).await;
    assert_eq!((s, again["alreadyUploaded"].as_bool()), (200, Some(true)));
    assert_eq!(again["uploadId"], p["uploadId"]);
    let mut changed = Artifact::new("linux", "x86_64", "tar.gz", "t");
    changed.bytes.truncate(500);
    let (s, b) = presign(&hub, &app, "cli", "1.0.0", &changed).await;
    assert_eq!(
        (s, b["alreadyUploaded"].as_bool()),
        (200, Some(false)),
        "{b}"
    );
    assert_ne!(b["key"], p["key"]);
    assert!(
        b["key"].as_str().unwrap().contains(&changed.sha256()),
        "{b}"
    );
}

#[tokio::test]
async fn publish_verifies_every_object_before_writing_anything() {
    let (hub, _, app) = setup(&[]).await;
    let a = Artifact::new("linux", "x86_64", "appimage", "never uploaded");
    let (_, p) = presign(&hub, &app, "launcher", "1.0.0", &a).await;
    let publish_body = json!({"version": "1.0.0", "channel": "beta", "artifacts": [{
        "uploadId": p["uploadId"], "os": "linux", "arch": "x86_64", "kind": "appimage",
        "size": a.bytes.len(), "sha256": a.sha256()}]});
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post("/api/v1/releases/launcher/publish", publish_body.clone())
        .await
        .parts();
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("object_missing")),
        "{b}"
    );

    // Declared size that does not match the upload record.
    let mut wrong = publish_body.clone();
    wrong["artifacts"][0]["size"] = json!(1);
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post("/api/v1/releases/launcher/publish", wrong)
        .await
        .parts();
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("artifact_mismatch")),
        "{b}"
    );
    // A key the Hub never presigned.
    let mut unknown = publish_body.clone();
    unknown["artifacts"][0] = json!({"key": "releases/launcher/1.0.0/x", "os": "linux", "arch": "x86_64",
        "kind": "appimage", "size": 1, "sha256": "00".repeat(32)});
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post("/api/v1/releases/launcher/publish", unknown)
        .await
        .parts();
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("upload_unknown")),
        "{b}"
    );

    assert_eq!(count_rows(&hub, "releases", "true").await, 0);
    assert_eq!(count_rows(&hub, "artifacts", "true").await, 0);
    assert_eq!(
        count_rows(&hub, "audit_log", "action = 'release.publish'").await,
        0
    );
    let (_, channels) = hub
        .api()
        .get("/api/v1/releases/launcher/channels")
        .await
        .parts();
    assert!(
        channels["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["version"].is_null())
    );
}

#[tokio::test]
async fn signatures_must_be_sig_file_content_made_by_the_products_key() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    let key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    create_product(&hub, &admin, "launcher", json!({"updaterPublicKey": key})).await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let sig = "untrusted comment: signature from minisign secret key\nRUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\ntrusted comment: timestamp:1633700835\tfile:test\tprehashed\nwLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==\n";
    // The same signature attributed to another key id.
    let other_key_sig = sig.replace("RUQf6LRCGA9i55", "RUQAAAAAAAAAA5");

    for (i, (value, code)) in [
        (
            "https://example.com/app.sig".to_owned(),
            "invalid_signature",
        ),
        ("not base64 at all".to_owned(), "invalid_signature"),
        (b64(&other_key_sig), "signature_key_mismatch"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = Artifact::new("linux", "x86_64", "appimage", &value[..4]);
        a.signature = Some(value.clone());
        let (s, b) = publish(&hub, &app, "launcher", &format!("1.0.{i}"), None, &[a]).await;
        assert_eq!((s, b["code"].as_str()), (422, Some(code)), "{b}");
        if code == "invalid_signature" {
            assert!(b["detail"].as_str().unwrap().contains(".sig file"), "{b}");
        }
    }
    let mut a = Artifact::new("linux", "x86_64", "appimage", "good");
    a.signature = Some(b64(sig));
    let (s, b) = publish(&hub, &app, "launcher", "1.1.0", None, &[a]).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["artifacts"][0]["signature"], b64(sig));
}
