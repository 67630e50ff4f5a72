//! Release distribution end to end: real PostgreSQL, the real S3 server, curl as the
//! upload/download client.

use serde_json::json;

use crate::api::*;
use crate::support::{TestHub, client, curl, temp_file};

async fn setup(required: &[&str]) -> (TestHub, String, String) {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": required}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    (hub, admin, app)
}

#[tokio::test]
async fn a_release_goes_from_presign_to_download_promote_rollback_and_yank() {
    let (hub, _admin, app) = setup(&["linux-x86_64"]).await;
    let v1 = [Artifact::new("linux", "x86_64", "appimage", "one")];
    let (status, release) = publish(&hub, &app, "launcher", "1.0.0", Some("beta"), &v1).await;
    assert_eq!(status, 201, "{release}");
    assert_eq!(
        latest_version(&hub, "launcher", "beta", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64").await,
        None
    );

    // The download redirect, followed by curl, yields the uploaded bytes.
    let out = temp_file("downloaded", b"");
    let (ok, _) = curl(&[
        "-L",
        "-o",
        out.to_str().unwrap(),
        &hub.at("/download/launcher/latest/linux/amd64?channel=beta"),
    ]);
    assert!(ok);
    assert_eq!(std::fs::read(&out).unwrap(), v1[0].bytes);

    let (status, moved) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.0.0", "expectedVersion": null}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    let v2 = [Artifact::new("linux", "x86_64", "appimage", "two")];
    assert_eq!(
        publish(&hub, &app, "launcher", "1.1.0", Some("beta"), &v2)
            .await
            .0,
        201
    );
    let (status, _) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "expectedVersion": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.1.0")
    );

    // Roll back stable to the previous release.
    let (status, channels) = call(
        &hub,
        "GET",
        "/api/v1/releases/launcher/channels",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let stable = &channels["channels"][0];
    assert_eq!(stable["name"], "stable");
    assert_eq!(stable["previousVersion"], "1.0.0");
    let (status, _) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.0.0", "expectedVersion": "1.1.0"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );

    // Yank is refused while a channel points at the release, allowed after it moves.
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/1.1.0/yank",
        Some(&app),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("channel_points_here")),
        "{body}"
    );
    assert_eq!(body["channels"], json!(["beta"]));
    assert_eq!(
        move_channel(&hub, &app, "launcher", "beta", json!({"version": "1.0.0"}))
            .await
            .0,
        200
    );
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/1.1.0/yank",
        Some(&app),
        None,
    )
    .await;
    assert_eq!(
        (status, body["yanked"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    // A yanked release cannot be promoted, but its pinned download still works.
    let (status, body) =
        move_channel(&hub, &app, "launcher", "dev", json!({"version": "1.1.0"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("release_yanked"))
    );
    let r = client()
        .get(body_download_url(&hub, "1.1.0").await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let (status, _) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/1.1.0/unyank",
        Some(&app),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        count_rows(&hub, "audit_log", "action = 'release.yank'").await,
        1
    );
}

async fn body_download_url(hub: &TestHub, version: &str) -> String {
    let (_, r) = call(
        hub,
        "GET",
        &format!("/api/v1/releases/launcher/{version}"),
        None,
        None,
    )
    .await;
    r["artifacts"][0]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn identical_republish_is_200_and_different_content_is_409_version_exists() {
    let (hub, _, app) = setup(&[]).await;
    let a = [Artifact::new("windows", "x86_64", "nsis", "x")];
    assert_eq!(
        publish(&hub, &app, "launcher", "2.0.0", None, &a).await.0,
        201
    );
    let (status, body) = publish(&hub, &app, "launcher", "v2.0.0", None, &a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "2.0.0");
    // Same artifacts, other notes: different content.
    let entries = upload_all(&hub, &app, "launcher", "2.0.0", &a).await;
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/publish",
        Some(&app),
        Some(json!({"version": "2.0.0", "notes": "changed", "artifacts": entries})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("version_exists")),
        "{body}"
    );
    // A new file for a published version is refused at presign.
    let other = Artifact::new("linux", "x86_64", "deb", "y");
    let (status, body) = presign(&hub, &app, "launcher", "2.0.0", &other).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("version_exists"))
    );
    assert_eq!(count_rows(&hub, "releases", "true").await, 1);
}

#[tokio::test]
async fn each_auth_failure_has_its_own_code() {
    let (hub, admin, app) = setup(&[]).await;
    let body = json!({"version": "1.0.0", "artifacts": []});
    let path = "/api/v1/releases/launcher/publish";
    let code = |v: serde_json::Value| v["code"].as_str().unwrap_or("").to_owned();

    let (s, b) = call(&hub, "POST", path, None, Some(body.clone())).await;
    assert_eq!((s, code(b)), (401, "token_missing".into()));
    let (s, b) = call(
        &hub,
        "POST",
        path,
        Some("atlas_app_notarealtoken"),
        Some(body.clone()),
    )
    .await;
    assert_eq!((s, code(b)), (401, "token_invalid".into()));
    let (s, b) = call(&hub, "POST", path, Some("hunter2"), Some(body.clone())).await;
    assert_eq!((s, code(b)), (401, "token_invalid".into()));

    // Scope: other product, missing action, channel not granted, wrong token kind.
    create_product(&hub, &admin, "runner", json!({})).await;
    let runner_only = app_token(&hub, &admin, &["runner"], ALL_SCOPES, &[]).await;
    let (s, b) = call(&hub, "POST", path, Some(&runner_only), Some(body.clone())).await;
    assert_eq!((s, code(b)), (403, "scope_denied".into()));
    let upload_only = app_token(&hub, &admin, &["launcher"], &["upload"], &[]).await;
    let (s, b) = call(&hub, "POST", path, Some(&upload_only), Some(body.clone())).await;
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
    let (s, b) = call(&hub, "GET", "/api/v1/admin/tokens", Some(&app), None).await;
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
    let (s, b) = call(&hub, "POST", path, Some(&expiring), Some(body.clone())).await;
    assert_eq!((s, code(b)), (401, "token_expired".into()));

    let (_, list) = call(&hub, "GET", "/api/v1/admin/tokens", Some(&admin), None).await;
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
    let (_, revocable) = call(
        &hub,
        "POST",
        "/api/v1/admin/tokens",
        Some(&admin),
        Some(json!({"name": "to-revoke", "kind": "app", "products": ["launcher"], "scopes": ["publish"]})),
    )
    .await;
    let id = revocable["id"].as_str().unwrap();
    let r = client()
        .delete(hub.at(&format!("/api/v1/admin/tokens/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let revoked = revocable["token"].as_str().unwrap();
    let (s, b) = call(&hub, "POST", path, Some(revoked), Some(body.clone())).await;
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
    let (s, b) = call(
        &hub,
        "POST",
        "/api/v1/releases/cli/publish",
        Some(&app),
        Some(publish_body),
    )
    .await;
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
    let (s, b) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/publish",
        Some(&app),
        Some(publish_body.clone()),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("object_missing")),
        "{b}"
    );

    // Declared size that does not match the upload record.
    let mut wrong = publish_body.clone();
    wrong["artifacts"][0]["size"] = json!(1);
    let (s, b) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/publish",
        Some(&app),
        Some(wrong),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("artifact_mismatch")),
        "{b}"
    );
    // A key the Hub never presigned.
    let mut unknown = publish_body.clone();
    unknown["artifacts"][0] = json!({"key": "releases/launcher/1.0.0/x", "os": "linux", "arch": "x86_64",
        "kind": "appimage", "size": 1, "sha256": "00".repeat(32)});
    let (s, b) = call(
        &hub,
        "POST",
        "/api/v1/releases/launcher/publish",
        Some(&app),
        Some(unknown),
    )
    .await;
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
    let (_, channels) = call(
        &hub,
        "GET",
        "/api/v1/releases/launcher/channels",
        None,
        None,
    )
    .await;
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

#[tokio::test]
async fn channel_moves_check_coverage_expected_version_and_audit_forced_moves() {
    let (hub, admin, app) = setup(&["linux-x86_64"]).await;
    let both = [
        Artifact::new("linux", "x86_64", "appimage", "a"),
        Artifact::new("windows", "x86_64", "nsis", "b"),
    ];
    assert_eq!(
        publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &both)
            .await
            .0,
        201
    );
    let linux_only = [Artifact::new("linux", "x86_64", "appimage", "c")];
    assert_eq!(
        publish(&hub, &app, "launcher", "1.1.0", None, &linux_only)
            .await
            .0,
        201
    );
    let windows_only = [Artifact::new("windows", "x86_64", "nsis", "d")];
    // Publishing onto a channel that serves linux without linux fails whole.
    let (s, b) = publish(
        &hub,
        &app,
        "launcher",
        "1.2.0",
        Some("stable"),
        &windows_only,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("platforms_missing")),
        "{b}"
    );
    assert_eq!(count_rows(&hub, "releases", "version = '1.2.0'").await, 0);

    let (s, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0"}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (422, Some("platforms_missing")));
    assert_eq!(b["missing"], json!(["windows-x86_64"]));
    let (s, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "expectedVersion": "0.9.0", "force": true}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("channel_moved")));
    assert_eq!(b["currentVersion"], "1.0.0");
    let (s, b) = move_channel(&hub, &app, "launcher", "stable", json!({"version": "1.1.0", "expectedVersion": "1.0.0", "force": true, "rolloutPercent": 25})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["channel"]["rolloutPercent"], 25);
    let (_, audit) = call(
        &hub,
        "GET",
        "/api/v1/admin/audit?limit=100",
        Some(&admin),
        None,
    )
    .await;
    let forced = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "channel.move" && e["detail"]["forced"] == true);
    assert!(forced.is_some(), "forced move not audited: {audit}");
    let (s, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "nightly",
        json!({"version": "1.1.0"}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn parallel_publishes_of_one_version_make_exactly_one_release() {
    let (hub, _, app) = setup(&[]).await;
    let a = [Artifact::new("linux", "aarch64", "deb", "p")];
    let entries = upload_all(&hub, &app, "launcher", "3.0.0", &a).await;
    let body = json!({"version": "3.0.0", "channel": "dev", "artifacts": entries});
    let calls = (0..8).map(|_| {
        call(
            &hub,
            "POST",
            "/api/v1/releases/launcher/publish",
            Some(&app),
            Some(body.clone()),
        )
    });
    let results = futures_util::future::join_all(calls).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let identical = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, identical), (1, 7), "{results:?}");
    assert_eq!(count_rows(&hub, "releases", "true").await, 1);
    assert_eq!(count_rows(&hub, "artifacts", "true").await, 1);
    assert_eq!(
        count_rows(&hub, "audit_log", "action = 'channel.move'").await,
        1
    );
}

#[tokio::test]
async fn parallel_channel_moves_with_expected_version_lose_no_update() {
    let (hub, _, app) = setup(&[]).await;
    for v in ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"] {
        let a = [Artifact::new("linux", "x86_64", "appimage", v)];
        assert_eq!(publish(&hub, &app, "launcher", v, None, &a).await.0, 201);
    }
    assert_eq!(
        move_channel(&hub, &app, "launcher", "beta", json!({"version": "1.0.0"}))
            .await
            .0,
        200
    );
    // Everyone read 1.0.0 and tries to move on: exactly one wins, the rest see channel_moved.
    let moves = ["1.0.1", "1.0.2", "1.0.3", "1.0.4"].map(|v| {
        move_channel(
            &hub,
            &app,
            "launcher",
            "beta",
            json!({"version": v, "expectedVersion": "1.0.0"}),
        )
    });
    let results = futures_util::future::join_all(moves).await;
    let won: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 || b["code"] == "channel_moved")
    );
    let winner = won[0].1["channel"]["version"].as_str().unwrap().to_owned();
    assert_eq!(
        latest_version(&hub, "launcher", "beta", "linux", "x86_64").await,
        Some(winner)
    );
    assert_eq!(
        count_rows(&hub, "audit_log", "action = 'channel.move'").await,
        2
    );
}

#[tokio::test]
async fn reads_are_cacheable_with_etags_and_answer_304() {
    let (hub, _, app) = setup(&[]).await;
    let a = [Artifact::new("darwin", "aarch64", "app", "m")];
    assert_eq!(
        publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &a)
            .await
            .0,
        201
    );
    for path in [
        "/api/v1/releases/launcher/latest/macos/arm64",
        "/api/v1/releases/launcher",
        "/api/v1/releases/launcher/1.0.0",
        "/api/v1/releases/launcher/channels",
    ] {
        let r = client().get(hub.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(
            cc.contains("s-maxage=") && cc.contains("public"),
            "{path}: {cc}"
        );
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"'), "{path}: strong etag");
        let again = client()
            .get(hub.at(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    }
}

#[tokio::test]
async fn download_redirects_are_short_lived_never_cached_and_counted() {
    let (hub, _, app) = setup(&[]).await;
    let a = [Artifact::new("linux", "x86_64", "appimage", "dl")];
    let (_, release) = publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &a).await;
    let url = release["artifacts"][0]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&hub.url), "{url}");
    for method in ["GET", "HEAD"] {
        let r = client()
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{method}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let location = r.headers()["location"].to_str().unwrap();
        assert!(location.contains("X-Amz-Expires=300"), "{location}");
        assert!(
            location.contains("response-content-disposition=attachment"),
            "{location}"
        );
        assert!(r.bytes().await.unwrap().is_empty(), "the Hub proxied bytes");
    }
    let mut counted = 0;
    for _ in 0..50 {
        counted = count_rows(&hub, "download_counts", "count >= 1").await;
        if counted > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 1, "the GET was not counted");
    let r = client()
        .get(hub.at("/api/v1/download/dl_unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn history_is_paginated_newest_first() {
    let (hub, _, app) = setup(&[]).await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        let a = [Artifact::new("linux", "x86_64", "appimage", v)];
        assert_eq!(publish(&hub, &app, "launcher", v, None, &a).await.0, 201);
    }
    let (_, page1) = call(&hub, "GET", "/api/v1/releases/launcher?limit=2", None, None).await;
    let versions: Vec<_> = page1["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].clone())
        .collect();
    assert_eq!(versions, vec![json!("1.2.0"), json!("1.1.0")]);
    let cursor = page1["nextCursor"].as_str().unwrap();
    let (_, page2) = call(
        &hub,
        "GET",
        &format!("/api/v1/releases/launcher?limit=2&cursor={cursor}"),
        None,
        None,
    )
    .await;
    assert_eq!(page2["releases"][0]["version"], "1.0.0");
    assert!(page2["nextCursor"].is_null());
    let (s, b) = call(
        &hub,
        "GET",
        "/api/v1/releases/launcher?limit=1000",
        None,
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_input")));
}

#[tokio::test]
async fn bad_input_answers_problems_not_500s() {
    let (hub, admin, app) = setup(&[]).await;
    let cases = [
        (
            "GET",
            "/api/v1/releases/launcher/latest/freebsd/x86_64",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/releases/Launcher/latest/linux/x86_64",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/releases/nope/latest/linux/x86_64",
            None,
            404,
        ),
        ("GET", "/api/v1/releases/launcher/not-semver", None, 400),
        (
            "POST",
            "/api/v1/storage/presign",
            Some(json!({"product": "launcher"})),
            400,
        ),
        (
            "POST",
            "/api/v1/releases/launcher/publish",
            Some(json!({"version": "x", "artifacts": []})),
            400,
        ),
        (
            "POST",
            "/api/v1/admin/products",
            Some(json!({"slug": "Bad Slug"})),
            400,
        ),
        (
            "POST",
            "/api/v1/admin/products",
            Some(json!({"slug": "launcher"})),
            409,
        ),
        (
            "POST",
            "/api/v1/admin/tokens",
            Some(json!({"name": "x", "kind": "app"})),
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let token = if path.contains("/admin/") {
            &admin
        } else {
            &app
        };
        let (s, b) = call(&hub, method, path, Some(token), body).await;
        assert_eq!(s, expected, "{method} {path}: {b}");
        assert!(b["code"].is_string() && b["requestId"].is_string(), "{b}");
    }
    let r = client()
        .post(hub.at("/api/v1/releases/launcher/publish"))
        .bearer_auth(&app)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The hot lookup runs as a prepared statement on direct connections and through the
/// `atlas_channel_platform` SQL function behind a pooler: both must give the same rows, for
/// a channel in a staged rollout (current and previous releases), every platform, every
/// channel, and a product that does not exist.
#[tokio::test]
async fn the_lookup_statement_and_the_pooler_function_agree() {
    let (hub, _admin, app) = setup(&[]).await;
    let mut primary = Artifact::new("linux", "x86_64", "appimage", "one");
    primary.primary = Some(true);
    let v1 = [
        primary,
        Artifact::new("linux", "x86_64", "deb", "one-deb"),
        Artifact::new("windows", "x86_64", "nsis", "one-win"),
    ];
    let (status, body) = publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &v1).await;
    assert_eq!(status, 201, "{body}");
    let v2 = [
        Artifact::new("linux", "x86_64", "appimage", "two"),
        Artifact::new("darwin", "aarch64", "app", "two-mac"),
    ];
    let (status, body) = publish(&hub, &app, "launcher", "1.1.0", Some("beta"), &v2).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "rolloutPercent": 30, "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let db = crate::support::connect(&hub.database_url).await;
    let prepared = db
        .prepare(atlas_hub::domain::lookup::CHANNEL_PLATFORM_SQL)
        .await
        .unwrap();
    let mut compared = 0;
    for product in ["launcher", "nothing"] {
        for channel in ["stable", "beta", "dev"] {
            for (os, arch) in [
                ("linux", "x86_64"),
                ("windows", "x86_64"),
                ("darwin", "aarch64"),
                ("linux", "riscv64"),
            ] {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&product, &channel, &os, &arch];
                let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
                    rows.iter()
                        .map(|r| {
                            (0..r.len())
                                .map(|i| format!("{}={:?}", r.columns()[i].name(), text_of(r, i)))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect()
                };
                let direct = rows(db.query(&prepared, &params).await.unwrap());
                let pooled = rows(
                    db.query(atlas_hub::domain::lookup::CHANNEL_PLATFORM_POOLED, &params)
                        .await
                        .unwrap(),
                );
                // Same columns (by name, in order) and values.
                let sorted = |mut v: Vec<String>| {
                    v.iter_mut().for_each(|row| {
                        let mut cols: Vec<&str> = row.split(',').collect();
                        cols.sort_unstable();
                        *row = cols.join(",");
                    });
                    v
                };
                assert_eq!(
                    sorted(direct.clone()),
                    sorted(pooled),
                    "{product}/{channel} {os}-{arch}"
                );
                compared += direct.len();
            }
        }
    }
    // current + previous on stable for linux, beta's release, windows' previous, mac's current.
    assert!(compared >= 7, "only {compared} rows compared");

    // The batched forms (every lookup above in one statement) agree too, lookup by lookup.
    use atlas_hub::config::Pooler;
    let mut keys: [Vec<&str>; 4] = Default::default();
    for product in ["launcher", "nothing"] {
        for channel in ["stable", "beta", "dev"] {
            for (os, arch) in [("linux", "x86_64"), ("darwin", "aarch64")] {
                for (k, v) in keys.iter_mut().zip([product, channel, os, arch]) {
                    k.push(v);
                }
            }
        }
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&keys[0], &keys[1], &keys[2], &keys[3]];
    let batch = |pooler| atlas_hub::domain::lookup::batch_sql(pooler);
    let direct = db.query(batch(Pooler::None), &params).await.unwrap();
    let pooled = db.query(batch(Pooler::Transaction), &params).await.unwrap();
    let flat = |rows: &[tokio_postgres::Row]| -> Vec<String> {
        rows.iter()
            .map(|r| {
                let mut cols: Vec<String> = (0..r.len())
                    .filter(|i| r.columns()[*i].name() != "i")
                    .map(|i| format!("{}={:?}", r.columns()[i].name(), text_of(r, i)))
                    .collect();
                cols.sort_unstable();
                format!("#{} {}", r.get::<_, i64>("i"), cols.join(","))
            })
            .collect()
    };
    assert_eq!(flat(&direct), flat(&pooled));
    assert!(direct.len() >= 5, "only {} batched rows", direct.len());
}

/// A column's value as text, whatever its type.
fn text_of(row: &tokio_postgres::Row, i: usize) -> String {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    match ty {
        Type::TEXT | Type::VARCHAR => format!("{:?}", row.get::<_, Option<String>>(i)),
        Type::INT2 => format!("{:?}", row.get::<_, Option<i16>>(i)),
        Type::INT8 => format!("{:?}", row.get::<_, Option<i64>>(i)),
        Type::BOOL => format!("{:?}", row.get::<_, Option<bool>>(i)),
        Type::TIMESTAMPTZ => format!("{:?}", row.get::<_, Option<time::OffsetDateTime>>(i)),
        other => panic!(
            "column {} has unexpected type {other}",
            row.columns()[i].name()
        ),
    }
}

/// Concurrent lookups are batched per instance (`LookupBatcher`): hundreds in flight at once,
/// over several products, channels and platforms, each gets its own answer.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_lookups_each_get_their_own_answer() {
    let (hub, admin, _) = setup(&[]).await;
    let mut expected = Vec::new();
    for (n, product) in ["alpha", "beta-app", "gamma"].into_iter().enumerate() {
        create_product(&hub, &admin, product, json!({})).await;
        let app = app_token(&hub, &admin, &[product], ALL_SCOPES, &[]).await;
        for (channel, version) in [("stable", format!("1.{n}.0")), ("beta", format!("2.{n}.0"))] {
            let files = [
                Artifact::new(
                    "linux",
                    "x86_64",
                    "appimage",
                    &format!("{product}{version}l"),
                ),
                Artifact::new("windows", "aarch64", "msi", &format!("{product}{version}w")),
            ];
            let (status, body) =
                publish(&hub, &app, product, &version, Some(channel), &files).await;
            assert_eq!(status, 201, "{body}");
            for (os, arch, kind) in [
                ("linux", "x86_64", "appimage"),
                ("windows", "aarch64", "msi"),
            ] {
                expected.push((product, channel, os, arch, version.clone(), kind));
            }
        }
        // A platform without a release: 404, in the same batches.
        expected.push((product, "stable", "darwin", "aarch64", String::new(), ""));
    }
    let client = crate::support::client();
    let mut tasks = Vec::new();
    for round in 0..40 {
        for (i, (product, channel, os, arch, version, kind)) in expected.iter().enumerate() {
            if (i + round) % 2 == 0 {
                continue;
            }
            let url = hub.at(&format!(
                "/api/v1/releases/{product}/latest/{os}/{arch}?channel={channel}"
            ));
            let client = client.clone();
            let want = (version.clone(), *kind, *product, *os, *arch);
            tasks.push(tokio::spawn(async move {
                let resp = client.get(url).send().await.unwrap();
                let status = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap();
                (status, body, want)
            }));
        }
    }
    assert!(tasks.len() > 150, "{} requests", tasks.len());
    for task in tasks {
        let (status, body, (version, kind, product, os, arch)) = task.await.unwrap();
        if version.is_empty() {
            assert_eq!(status, 404, "{product} {os}-{arch}: {body}");
            continue;
        }
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["product"], product, "{body}");
        assert_eq!(body["version"], version.as_str(), "{body}");
        assert_eq!(body["artifact"]["os"], os, "{body}");
        assert_eq!(body["artifact"]["arch"], arch, "{body}");
        assert_eq!(body["artifact"]["kind"], kind, "{body}");
    }
}
