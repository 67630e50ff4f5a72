//! Release distribution end to end: real PostgreSQL, the real S3 server, curl as the
//! upload/download client.

use serde_json::json;

use crate::api::*;
use crate::support::{TestHub, client, curl, temp_file};

mod channels;
mod lookup;
mod publishing;
mod reads;

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
    let (status, channels) = hub
        .api()
        .get("/api/v1/releases/launcher/channels")
        .await
        .parts();
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
    let (status, body) = hub
        .api()
        .bearer(&app)
        .send(
            http::Method::POST,
            "/api/v1/releases/launcher/1.1.0/yank",
            None,
        )
        .await
        .parts();
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
    let (status, body) = hub
        .api()
        .bearer(&app)
        .send(
            http::Method::POST,
            "/api/v1/releases/launcher/1.1.0/yank",
            None,
        )
        .await
        .parts();
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
    let (status, _) = hub
        .api()
        .bearer(&app)
        .send(
            http::Method::POST,
            "/api/v1/releases/launcher/1.1.0/unyank",
            None,
        )
        .await
        .parts();
    assert_eq!(status, 200);
    assert_eq!(
        count_rows(&hub, "audit_log", "action = 'release.yank'").await,
        1
    );
}

async fn body_download_url(hub: &TestHub, version: &str) -> String {
    let (_, r) = hub
        .api()
        .get(&format!("/api/v1/releases/launcher/{version}"))
        .await
        .parts();
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
    let (status, body) = hub
        .api()
        .bearer(&app)
        .post(
            "/api/v1/releases/launcher/publish",
            json!({"version": "2.0.0", "notes": "changed", "artifacts": entries}),
        )
        .await
        .parts();
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
