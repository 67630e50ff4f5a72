//! What an independent attempt to break the Hub found, each held by a test: a promote racing
//! a yank, re-publishes whose channel did not move, size limits lowered after a presign, key
//! squatting, upload rows never cleaned up, input accepted and ignored, requests without
//! credentials that learnt more than the auth failure, and problem types on a foreign domain.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{
    ALL_SCOPES, Artifact, admin_token, app_token, count_rows, create_product, curl_upload,
    latest_version, move_channel, presign, publish, upload_all,
};
use crate::support::{TestHub, connect};

async fn launcher(required: &[&str]) -> (TestHub, String, String) {
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

fn linux(tag: &str) -> Vec<Artifact> {
    vec![Artifact::new("linux", "x86_64", "appimage", tag)]
}

/// No channel serves a yanked release (as its release, or as the previous one while a
/// staged rollout serves it).
async fn assert_no_channel_on_a_yanked_release(hub: &TestHub) {
    let db = connect(&hub.database_url).await;
    let bad: i64 = db
        .query_one(
            "SELECT count(*) FROM channels c JOIN releases r ON r.id = c.release_id
               OR (r.id = c.previous_release_id AND c.rollout_percent < 100)
             WHERE r.yanked_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0, "a channel serves a yanked release");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promote_racing_a_yank_has_exactly_one_winner() {
    let (hub, _, app) = launcher(&[]).await;
    let hub = Arc::new(hub);
    for (version, channel) in [("1.0.0", Some("dev")), ("1.1.0", None)] {
        let (s, b) = publish(&hub, &app, "launcher", version, channel, &linux(version)).await;
        assert_eq!(s, 201, "{b}");
    }
    let (mut promoted, mut yanked) = (0, 0);
    for round in 0..150 {
        let (h1, h2, t1, t2) = (hub.clone(), hub.clone(), app.clone(), app.clone());
        let promote = tokio::spawn(async move {
            move_channel(&h1, &t1, "launcher", "dev", json!({"version": "1.1.0"})).await
        });
        let yank = tokio::spawn(async move {
            h2.api()
                .bearer(&t2)
                .send(
                    http::Method::POST,
                    "/api/v1/releases/launcher/1.1.0/yank",
                    None,
                )
                .await
                .parts()
        });
        let ((ps, pb), (ys, yb)) = (promote.await.unwrap(), yank.await.unwrap());
        match (ps, ys) {
            (200, 409) => {
                assert_eq!(yb["code"], "channel_points_here", "round {round}: {yb}");
                promoted += 1;
                let (s, b) =
                    move_channel(&hub, &app, "launcher", "dev", json!({"version": "1.0.0"})).await;
                assert_eq!(s, 200, "{b}");
            }
            (409, 200) => {
                assert_eq!(pb["code"], "release_yanked", "round {round}: {pb}");
                yanked += 1;
                let (s, b) = hub
                    .api()
                    .bearer(&app)
                    .send(
                        http::Method::POST,
                        "/api/v1/releases/launcher/1.1.0/unyank",
                        None,
                    )
                    .await
                    .parts();
                assert_eq!(s, 200, "{b}");
            }
            other => panic!("round {round}: promote and yank answered {other:?}: {pb} {yb}"),
        }
        assert_no_channel_on_a_yanked_release(&hub).await;
    }
    eprintln!("150 rounds: promote won {promoted}, yank won {yanked}");
    assert_eq!(promoted + yanked, 150);
}

#[tokio::test]
async fn the_database_refuses_a_channel_on_a_yanked_release_whoever_writes_it() {
    let (hub, _, app) = launcher(&[]).await;
    for (version, channel) in [
        ("1.0.0", Some("stable")),
        ("1.1.0", Some("stable")),
        ("2.0.0", None),
    ] {
        let (s, b) = publish(&hub, &app, "launcher", version, channel, &linux(version)).await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = hub
        .api()
        .bearer(&app)
        .send(
            http::Method::POST,
            "/api/v1/releases/launcher/2.0.0/yank",
            None,
        )
        .await
        .parts();
    assert_eq!(s, 200, "{b}");
    let db = connect(&hub.database_url).await;
    let id = |v: &'static str| {
        let db = &db;
        async move {
            db.query_one("SELECT id FROM releases WHERE version = $1", &[&v])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    // A channel written straight in SQL, past every handler.
    let e = db
        .execute(
            "UPDATE channels SET release_id = $1 WHERE name = 'beta'",
            &[&id("2.0.0").await],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("AH001"), "{e}");
    let e = db
        .execute(
            "UPDATE releases SET yanked_at = now() WHERE version = '1.1.0'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("AH002"), "{e}");

    // A staged rollout would serve the previous release to the clients outside it: not a
    // yanked one. Stable is on 1.1.0 with 1.0.0 before it; 1.0.0 can be yanked at 100%...
    let (s, b) = hub
        .api()
        .bearer(&app)
        .send(
            http::Method::POST,
            "/api/v1/releases/launcher/1.0.0/yank",
            None,
        )
        .await
        .parts();
    assert_eq!(s, 200, "{b}");
    // ...and then stable cannot go to 50% on 1.1.0.
    let (s, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "rolloutPercent": 50}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("release_yanked")),
        "{b}"
    );
    assert!(
        b["detail"].as_str().unwrap().contains("previous release"),
        "{b}"
    );
    assert_no_channel_on_a_yanked_release(&hub).await;
}

#[tokio::test]
async fn an_identical_republish_naming_a_channel_moves_it_or_fails_loudly() {
    let (hub, _, app) = launcher(&[]).await;
    let files = |v: &str| linux(&format!("content of {v}"));
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "1.0.0",
            Some("stable"),
            &files("1.0.0")
        )
        .await
        .0,
        201
    );
    assert_eq!(
        publish(&hub, &app, "launcher", "1.1.0", None, &files("1.1.0"))
            .await
            .0,
        201
    );

    // Re-published identically, now naming stable (which serves an older release): it moves.
    let (s, b) = publish(
        &hub,
        &app,
        "launcher",
        "1.1.0",
        Some("stable"),
        &files("1.1.0"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.1.0")
    );
    assert_eq!(
        count_rows(
            &hub,
            "audit_log",
            "action = 'channel.move' AND detail->>'to' = '1.1.0'"
        )
        .await,
        1
    );
    // Again: it already serves it, nothing to do.
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "1.1.0",
            Some("stable"),
            &files("1.1.0")
        )
        .await
        .0,
        200
    );

    // Beta serves a newer release: a stale re-run never moves it back, and says so.
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "1.2.0",
            Some("beta"),
            &files("1.2.0")
        )
        .await
        .0,
        201
    );
    let (s, b) = publish(
        &hub,
        &app,
        "launcher",
        "1.1.0",
        Some("beta"),
        &files("1.1.0"),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("channel_moved")), "{b}");
    assert_eq!(b["currentVersion"], "1.2.0");
    assert_eq!(
        latest_version(&hub, "launcher", "beta", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.2.0")
    );
    // Stable serves 1.1.0 to everyone; a re-run asking for 50% is not what holds.
    let entries = upload_all(&hub, &app, "launcher", "1.1.0", &files("1.1.0")).await;
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post(
            "/api/v1/releases/launcher/publish",
            json!({"version": "1.1.0", "notes": "release notes", "channel": "stable",
                    "rolloutPercent": 50, "artifacts": entries}),
        )
        .await
        .parts();
    assert_eq!((s, b["code"].as_str()), (409, Some("channel_moved")), "{b}");

    // The CLI turns the refusal into a non-zero exit.
    let d = crate::cli::dir("republish");
    let path = crate::cli::write(&d, "app.AppImage", b"cli bytes");
    let spec = format!("linux/x86_64/appimage={path}");
    let args = [
        "publish",
        "--product",
        "launcher",
        "--version",
        "1.0.5",
        "--channel",
        "dev",
        spec.as_str(),
    ];
    let run = crate::cli::release(&hub, &app, &args);
    assert!(run.ok, "{run}");
    assert!(
        crate::cli::release(&hub, &app, &args).ok,
        "an identical re-run that changes nothing"
    );
    let (s, b) = move_channel(&hub, &app, "launcher", "dev", json!({"version": "1.2.0"})).await;
    assert_eq!(s, 200, "{b}");
    let run = crate::cli::release(&hub, &app, &args);
    assert!(!run.ok && run.stderr.contains("409 channel_moved"), "{run}");
}

#[tokio::test]
async fn lowering_max_artifact_size_refuses_a_publish_presigned_before() {
    let (hub, admin, app) = launcher(&[]).await;
    let a = linux("a big one");
    let entries = upload_all(&hub, &app, "launcher", "1.0.0", &a).await;
    let (s, b) = hub
        .api()
        .bearer(&admin)
        .patch(
            "/api/v1/admin/products/launcher",
            json!({"maxArtifactSize": 100}),
        )
        .await
        .parts();
    assert_eq!(s, 200, "{b}");
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post(
            "/api/v1/releases/launcher/publish",
            json!({"version": "1.0.0", "artifacts": entries}),
        )
        .await
        .parts();
    assert_eq!(
        (s, b["code"].as_str()),
        (413, Some("artifact_too_large")),
        "{b}"
    );
    assert_eq!(count_rows(&hub, "releases", "true").await, 0);
}

#[tokio::test]
async fn a_presign_that_was_never_uploaded_locks_no_key_and_old_rows_are_pruned() {
    let (hub, admin, app) = launcher(&[]).await;
    // A token that may only upload, to dev: it presigns the real pipeline's next file with a
    // made-up sha256, and never uploads.
    let squatter = app_token(&hub, &admin, &["launcher"], &["upload"], &["dev"]).await;
    let real = Artifact::new("linux", "x86_64", "appimage", "the real build");
    let mut fake = Artifact::new("linux", "x86_64", "appimage", "made up");
    fake.filename = real.filename.clone();
    let (s, squat) = presign(&hub, &squatter, "launcher", "2.0.0", &fake).await;
    assert_eq!(s, 200, "{squat}");
    // The same sha256 with another size (only a made-up declaration can differ so).
    let (s, b) = hub
        .api()
        .bearer(&squatter)
        .post(
            "/api/v1/storage/presign",
            json!({"product": "launcher", "version": "2.0.0", "os": "linux", "arch": "x86_64",
            "kind": "appimage", "filename": real.filename, "size": 7, "sha256": real.sha256()}),
        )
        .await
        .parts();
    assert_eq!(s, 200, "{b}");

    // The real pipeline presigns, uploads and publishes, on every retry.
    let (s, p) = presign(&hub, &app, "launcher", "2.0.0", &real).await;
    assert_eq!(s, 200, "{p}");
    assert_ne!(p["key"], squat["key"]);
    assert_eq!(curl_upload(&p, &real.bytes), 200);
    let (s, b) = publish(&hub, &app, "launcher", "2.0.0", Some("stable"), &[real]).await;
    assert_eq!(s, 201, "{b}");

    // Unpublished upload rows are pruned a day after their presign; published ones stay.
    for i in 0..40 {
        let a = Artifact::new("linux", "aarch64", "appimage", &format!("abandoned {i}"));
        assert_eq!(presign(&hub, &app, "launcher", "3.0.0", &a).await.0, 200);
    }
    let db = connect(&hub.database_url).await;
    db.execute(
        "UPDATE uploads SET created_at = now() - interval '2 days'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(count_rows(&hub, "uploads", "true").await, 42);
    // The next presign on a fresh instance prunes in the background.
    let mut hub = hub;
    hub.restart();
    let fresh = Artifact::new("windows", "x86_64", "nsis", "fresh");
    assert_eq!(
        presign(&hub, &app, "launcher", "3.0.0", &fresh).await.0,
        200
    );
    let mut left = 0;
    for _ in 0..50 {
        left = count_rows(&hub, "uploads", "true").await;
        if left == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 2, "the published upload and the fresh one stay");
    assert_eq!(
        count_rows(
            &hub,
            "uploads u",
            "EXISTS (SELECT 1 FROM artifacts a WHERE a.storage_key = u.storage_key)"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn input_that_would_be_ignored_is_refused_naming_the_field() {
    let (hub, admin, app) = launcher(&[]).await;
    let (s, b) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "name": "Maps"}),
        )
        .await
        .parts();
    assert_eq!(s, 201, "{b}");
    let token = |body: Value| {
        let hub = &hub;
        let admin = &admin;
        async move {
            hub.api()
                .bearer(admin)
                .post("/api/v1/admin/tokens", body)
                .await
                .parts()
        }
    };
    for (body, field) in [
        (
            json!({"name": "p", "kind": "pack", "pack": "maps", "products": ["launcher"]}),
            "products",
        ),
        (
            json!({"name": "p", "kind": "pack", "pack": "maps", "scopes": ["upload"]}),
            "scopes",
        ),
        (
            json!({"name": "a", "kind": "app", "products": ["launcher"], "pack": "maps"}),
            "pack",
        ),
        (
            json!({"name": "a", "kind": "app", "products": ["launcher"], "scopes": []}),
            "scopes",
        ),
        (
            json!({"name": "a", "kind": "app", "products": ["launcher"], "scopes": ["upload", "upload"]}),
            "scopes",
        ),
        (
            json!({"name": "a", "kind": "app", "products": ["launcher", "launcher"]}),
            "products",
        ),
        (
            json!({"name": "a", "kind": "app", "products": ["launcher"], "channels": []}),
            "channels",
        ),
        (
            json!({"name": "x", "kind": "admin", "channels": ["dev"]}),
            "channels",
        ),
    ] {
        let (s, b) = token(body.clone()).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("invalid_input")),
            "{body}: {b}"
        );
        assert!(b["detail"].as_str().unwrap().contains(field), "{body}: {b}");
    }
    assert_eq!(
        count_rows(&hub, "deploy_tokens", "true").await,
        2,
        "a refused token was stored"
    );

    // Publish: uploadId and key together, rolloutPercent without a channel.
    let a = linux("both");
    let entries = upload_all(&hub, &app, "launcher", "1.0.0", &a).await;
    let mut both = entries[0].clone();
    both["key"] = json!("releases/launcher/1.0.0/linux-x86_64/appimage/other");
    for (body, field) in [
        (
            json!({"version": "1.0.0", "artifacts": [both]}),
            "uploadId or key",
        ),
        (
            json!({"version": "1.0.0", "rolloutPercent": 10, "artifacts": entries}),
            "rolloutPercent",
        ),
    ] {
        let (s, b) = hub
            .api()
            .bearer(&app)
            .post("/api/v1/releases/launcher/publish", body)
            .await
            .parts();
        assert_eq!((s, b["code"].as_str()), (400, Some("invalid_input")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains(field), "{b}");
    }
    // Presign: `build` belongs to packs.
    let (s, b) = hub.api().bearer(&app).post("/api/v1/storage/presign", json!({"product": "launcher", "version": "1.0.0", "os": "linux", "arch": "x86_64",
            "kind": "appimage", "build": "b1", "filename": "x", "size": 1, "sha256": "0".repeat(64)})).await.parts();
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_input")), "{b}");
    assert!(b["detail"].as_str().unwrap().contains("build"), "{b}");
    assert_eq!(count_rows(&hub, "releases", "true").await, 0);

    // Public reads: unknown (case included) or repeated parameters are refused, not ignored.
    let (s, b) = publish(
        &hub,
        &app,
        "launcher",
        "1.0.0",
        Some("stable"),
        &linux("stable"),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    for (path, name) in [
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?Channel=beta",
            "Channel",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?channel=beta&channel=stable",
            "channel",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?cachebust=123",
            "cachebust",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?product=other",
            "product",
        ),
        ("/download/launcher/latest/linux/x86_64?Kind=deb", "Kind"),
        ("/api/v1/releases/launcher/channels?x=1", "x"),
        (
            "/api/v1/updater/launcher/stable/latest.json?channel=beta",
            "channel",
        ),
        ("/api/health?deep=1&deep=0", "deep"),
    ] {
        let r = hub.api().get(path).await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some("invalid_input")),
            "{path}: {}",
            r.body
        );
        assert!(
            r.body["detail"].as_str().unwrap().contains(name),
            "{path}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn requests_without_credentials_learn_nothing_but_that() {
    let (hub, admin, _) = launcher(&[]).await;
    let (s, b) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "name": "Maps"}),
        )
        .await
        .parts();
    assert_eq!(s, 201, "{b}");
    let raw = |method: &'static str, path: &'static str, body: &'static str| {
        let hub = &hub;
        async move {
            let r = crate::support::client()
                .request(method.parse().unwrap(), hub.at(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    for (method, path, body) in [
        ("POST", "/api/v1/storage/presign", "{not json"),
        (
            "POST",
            "/api/v1/storage/presign",
            r#"{"pack": "maps", "build": "b", "filename": "f", "size": 1, "sha256": "x"}"#,
        ),
        (
            "POST",
            "/api/v1/storage/presign",
            r#"{"pack": "no-such-pack", "build": "b", "filename": "f", "size": 1, "sha256": "x"}"#,
        ),
        ("POST", "/api/v1/releases/launcher/publish", "[]"),
        ("POST", "/api/v1/releases/no-such-product/publish", "{}"),
        (
            "PUT",
            "/api/v1/releases/launcher/channels/stable",
            "{\"bad\": 1}",
        ),
        ("POST", "/api/v1/packs/no-such-pack/deploy", "{}"),
        ("POST", "/api/v1/packs/maps/deploy", "{}"),
        ("PUT", "/api/v1/packs/no-such-pack/channels/live", "{}"),
        ("POST", "/api/v1/releases/launcher/9.9.9/yank", "{\"x\": 1}"),
    ] {
        assert_eq!(
            raw(method, path, body).await,
            (401, "token_missing".to_owned()),
            "{method} {path} {body}"
        );
    }
    // And a problem's type is a URI the deployment controls: about:blank (RFC 9457).
    let r = hub.api().get("/api/v1/releases/nope").await;
    assert_eq!(r.body["type"], "about:blank", "{}", r.body);
}
