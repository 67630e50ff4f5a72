//! Channel moves: coverage, expected versions, forced moves in the audit log, and races.

use super::*;

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
    let (_, audit) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/audit?limit=100")
        .await
        .parts();
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
        hub.api()
            .bearer(&app)
            .post("/api/v1/releases/launcher/publish", body.clone())
    });
    let results = futures_util::future::join_all(calls).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let identical = results.iter().filter(|r| r.status == 200).count();
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
