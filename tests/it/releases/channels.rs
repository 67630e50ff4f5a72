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

/// `?dryRun=true` runs every check of a real move and changes nothing: not the channel, not
/// what clients are served, not the audit log.
#[tokio::test]
async fn dry_run_moves_run_every_check_and_change_nothing() {
    let (hub, admin, app) = setup(&["linux-x86_64"]).await;
    let both = |tag: &str| {
        [
            Artifact::new("linux", "x86_64", "appimage", tag),
            Artifact::new("windows", "x86_64", "nsis", tag),
        ]
    };
    let linux_only = [Artifact::new("linux", "x86_64", "appimage", "linux")];
    for (version, channel, files) in [
        ("1.0.0", Some("stable"), &both("one")[..]),
        ("1.1.0", None, &linux_only[..]),
        ("1.2.0", None, &both("two")[..]),
        ("1.3.0", None, &both("three")[..]),
    ] {
        let (s, b) = publish(&hub, &app, "launcher", version, channel, files).await;
        assert_eq!(s, 201, "{version}: {b}");
    }
    let (s, b) = hub
        .api()
        .bearer(&app)
        .post("/api/v1/releases/launcher/1.3.0/yank", json!({}))
        .await
        .parts();
    assert_eq!(s, 200, "{b}");
    let dry = |channel: &str, body: serde_json::Value| {
        let path = format!("/api/v1/releases/launcher/channels/{channel}?dryRun=true");
        let api = hub.api().bearer(&app);
        async move { api.put(&path, body).await }
    };
    let beta_only = app_token(&hub, &admin, &["launcher"], &["promote"], &["beta"]).await;
    let no_promote = app_token(&hub, &admin, &["launcher"], &["publish"], &[]).await;
    let before = Unchanged::now(&hub).await;
    let unchanged = |what: &'static str| before.check(&hub, what);

    // A release missing a platform stable serves: refused as the real move is, naming it.
    let r = dry("stable", json!({"version": "1.1.0"})).await;
    assert_eq!(
        (r.status, r.code()),
        (422, Some("platforms_missing")),
        "{r:?}"
    );
    assert_eq!(r.body["missing"], json!(["windows-x86_64"]));
    unchanged("a refused dry run").await;
    // Compare-and-swap, yank state and unknown channels: the real move's answers.
    let r = dry(
        "stable",
        json!({"version": "1.2.0", "expectedVersion": "0.9.0"}),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, Some("channel_moved")), "{r:?}");
    assert_eq!(r.body["currentVersion"], "1.0.0");
    let r = dry("stable", json!({"version": "1.3.0"})).await;
    assert_eq!((r.status, r.code()), (409, Some("release_yanked")), "{r:?}");
    let r = dry("nightly", json!({"version": "1.2.0"})).await;
    assert_eq!((r.status, r.code()), (404, Some("not_found")), "{r:?}");
    unchanged("refused dry runs").await;

    // An acceptable move: 200, the channel as the move would leave it, and nothing moved.
    let r = dry(
        "stable",
        json!({"version": "1.2.0", "expectedVersion": "1.0.0", "rolloutPercent": 25}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["dryRun"], true);
    assert_eq!(r.body["product"], "launcher");
    let would = &r.body["channel"];
    assert_eq!(
        (
            would["name"].as_str(),
            would["version"].as_str(),
            would["previousVersion"].as_str(),
            would["rolloutPercent"].as_i64()
        ),
        (Some("stable"), Some("1.2.0"), Some("1.0.0"), Some(25)),
        "{r:?}"
    );
    unchanged("an accepted dry run").await;
    // Forced past the missing platform: 200, still nothing moved and nothing audited.
    let r = dry("stable", json!({"version": "1.1.0", "force": true})).await;
    assert_eq!(
        (r.status, r.body["dryRun"].as_bool()),
        (200, Some(true)),
        "{r:?}"
    );
    assert_eq!(r.body["channel"]["version"], "1.1.0");
    unchanged("a forced dry run").await;

    // The same scope checks: a token that may not move stable may not dry-run it either.
    let r = hub
        .api()
        .bearer(&beta_only)
        .put(
            "/api/v1/releases/launcher/channels/stable?dryRun=true",
            json!({"version": "1.2.0"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, Some("scope_denied")), "{r:?}");
    let r = hub
        .api()
        .bearer(&no_promote)
        .put(
            "/api/v1/releases/launcher/channels/beta?dryRun=1",
            json!({"version": "1.2.0"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, Some("scope_denied")), "{r:?}");
    for query in ["dryRun=yes", "dryRun=true&dryRun=true", "dryrun=true"] {
        let r = hub
            .api()
            .bearer(&app)
            .put(
                &format!("/api/v1/releases/launcher/channels/stable?{query}"),
                json!({"version": "1.2.0"}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some("invalid_input")),
            "{query}: {r:?}"
        );
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("dryrun"),
            "{query}: {r:?}"
        );
    }
    unchanged("a token without the scope, and bad dryRun values").await;

    // The real move afterwards: exactly what the dry run said, and audited.
    let (s, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.2.0", "expectedVersion": "1.0.0", "rolloutPercent": 25}),
    )
    .await;
    assert_eq!((s, b["dryRun"].as_bool()), (200, Some(false)), "{b}");
    assert_eq!(b["channel"]["version"], would["version"]);
    assert_eq!(b["channel"]["previousVersion"], would["previousVersion"]);
    assert_eq!(b["channel"]["rolloutPercent"], would["rolloutPercent"]);
    assert_eq!(
        count_rows(&hub, "audit_log", "true").await,
        before.audit_rows + 1
    );
    let (s, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.2.0", "expectedVersion": "1.2.0"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = hub
        .api()
        .bearer(&app)
        .put(
            "/api/v1/releases/launcher/channels/stable?dryRun=false",
            json!({"version": "1.0.0", "expectedVersion": "1.2.0"}),
        )
        .await
        .parts();
    assert_eq!((s, b["dryRun"].as_bool()), (200, Some(false)), "{b}");
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );
}

/// What a dry run must leave as it was: every channel of launcher, the audit log, and what
/// stable serves.
struct Unchanged {
    channels: serde_json::Value,
    audit_rows: i64,
}

impl Unchanged {
    async fn now(hub: &TestHub) -> Self {
        Unchanged {
            channels: hub
                .api()
                .get("/api/v1/releases/launcher/channels")
                .await
                .body,
            audit_rows: count_rows(hub, "audit_log", "true").await,
        }
    }

    async fn check(&self, hub: &TestHub, what: &str) {
        let now = Unchanged::now(hub).await;
        assert_eq!(now.channels, self.channels, "{what} changed a channel");
        assert_eq!(now.audit_rows, self.audit_rows, "{what} wrote an audit row");
        assert_eq!(
            latest_version(hub, "launcher", "stable", "windows", "x86_64")
                .await
                .as_deref(),
            Some("1.0.0"),
            "{what} changed what stable serves"
        );
    }
}
