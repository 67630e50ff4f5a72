//! promote, roll back, yank (with a reason) and status as single commands; errors that name
//! the fix.

use super::*;

#[tokio::test]
async fn promote_roll_back_yank_and_status_are_single_commands() {
    let (hub, _admin, app) = launcher_hub(&["linux-x86_64"]).await;
    let d = dir("channels");
    let one = write(&d, "one.AppImage", &b"one ".repeat(1000));
    let two = write(&d, "two.AppImage", &b"two ".repeat(1000));
    let publish = |version: &str, file: &str, channel: Option<&str>| {
        let spec = format!("linux/x86_64/appimage={file}");
        let mut args = vec![
            "publish",
            "--product",
            "launcher",
            "--version",
            version,
            &spec,
        ];
        if let Some(c) = channel {
            args.extend(["--channel", c]);
        }
        release(&hub, &app, &args)
    };
    let run = publish("1.0.0", &one, Some("stable"));
    assert!(run.ok, "{run}");
    let run = publish("1.1.0", &two, None);
    assert!(
        run.ok && run.stdout.contains("published launcher 1.1.0 (1 file)\n"),
        "{run}"
    );

    let run = release(
        &hub,
        &app,
        &[
            "promote",
            "--product",
            "launcher",
            "--channel",
            "stable",
            "--version",
            "1.1.0",
        ],
    );
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("launcher/stable: 1.0.0 -> 1.1.0 (100% of clients)"),
        "{run}"
    );
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.1.0")
    );

    let run = atlas(
        &hub.url,
        &[],
        &["release", "status", "--product", "launcher"],
    );
    assert!(run.ok, "{run}");
    let stable = run
        .stdout
        .lines()
        .find(|l| l.starts_with("stable "))
        .unwrap_or_default();
    assert_eq!(
        stable.split_whitespace().take(4).collect::<Vec<_>>(),
        ["stable", "1.1.0", "100%", "1.0.0"],
        "{run}"
    );
    assert!(run.stdout.contains("linux-x86_64"), "{run}");

    let rollback = [
        "rollback",
        "--product",
        "launcher",
        "--channel",
        "stable",
        "--from",
        "1.1.0",
    ];
    let run = release(&hub, &app, &rollback);
    assert!(run.ok, "{run}");
    assert!(run.stdout.contains("rolled back: 1.1.0 -> 1.0.0"), "{run}");
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );
    // Re-running the rollback does not flip the channel forward again.
    let run = release(&hub, &app, &rollback);
    assert!(
        run.ok && run.stdout.contains("already rolled back from 1.1.0"),
        "{run}"
    );
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );

    let run = release(
        &hub,
        &app,
        &["yank", "--product", "launcher", "--version", "1.0.0"],
    );
    assert!(!run.ok, "{run}");
    assert!(run.stderr.contains("409 channel_points_here"), "{run}");
    assert!(
        run.stderr
            .contains("fix: move the channel off this release first"),
        "{run}"
    );
    // A reason the Hub refuses is its refusal, naming the field; nothing is yanked.
    let run = release(
        &hub,
        &app,
        &[
            "yank",
            "--product",
            "launcher",
            "--version",
            "1.1.0",
            "--reason",
            "two\nlines",
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("400 invalid_input") && run.stderr.contains("reason"),
        "{run}"
    );
    let run = release(
        &hub,
        &app,
        &[
            "yank",
            "--product",
            "launcher",
            "--version",
            "1.1.0",
            "--reason",
            "corrupts saves (#42)",
        ],
    );
    assert!(
        run.ok
            && run
                .stdout
                .contains("yanked launcher 1.1.0 (corrupts saves (#42))"),
        "{run}"
    );
    let (_, detail) = hub
        .api()
        .get("/api/v1/releases/launcher/1.1.0")
        .await
        .parts();
    assert_eq!(
        (detail["yanked"].as_bool(), detail["yankReason"].as_str()),
        (Some(true), Some("corrupts saves (#42)")),
        "{detail}"
    );
    // Without --reason: a yank as before (no body); the reason stays.
    let run = release(
        &hub,
        &app,
        &["yank", "--product", "launcher", "--version", "1.1.0"],
    );
    assert!(
        run.ok && run.stdout.contains("yanked launcher 1.1.0:"),
        "{run}"
    );
    let run = release(
        &hub,
        &app,
        &[
            "yank",
            "--product",
            "launcher",
            "--version",
            "1.1.0",
            "--undo",
            "--reason",
            "x",
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("cannot be used with"),
        "{run}"
    );
    let run = release(
        &hub,
        &app,
        &[
            "promote",
            "--product",
            "launcher",
            "--channel",
            "stable",
            "--version",
            "1.1.0",
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("release_yanked") && run.stderr.contains("--undo"),
        "{run}"
    );
    let run = release(
        &hub,
        &app,
        &[
            "yank",
            "--product",
            "launcher",
            "--version",
            "1.1.0",
            "--undo",
        ],
    );
    assert!(run.ok, "{run}");
    let (_, detail) = hub
        .api()
        .get("/api/v1/releases/launcher/1.1.0")
        .await
        .parts();
    assert_eq!(
        (detail["yanked"].as_bool(), detail["yankReason"].clone()),
        (Some(false), json!(null)),
        "unyank clears the reason: {detail}"
    );
}

#[tokio::test]
async fn errors_say_which_variable_to_set_and_what_already_exists() {
    let (hub, admin, app) = launcher_hub(&[]).await;
    let d = dir("errors");
    let a = write(&d, "app.AppImage", &b"a ".repeat(1000));
    let b = write(&d, "other.AppImage", &b"b ".repeat(1000));
    let spec_a = format!("linux/x86_64/appimage={a}");
    let spec_b = format!("linux/x86_64/appimage={b}");
    let publish = [
        "release",
        "publish",
        "--product",
        "launcher",
        "--version",
        "1.0.0",
        spec_a.as_str(),
    ];

    let run = atlas(&hub.url, &[], &publish);
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr.contains("ATLAS_APP_DEPLOY_TOKEN is not set"),
        "{run}"
    );
    let run = atlas("", &[("ATLAS_APP_DEPLOY_TOKEN", &app)], &publish);
    assert!(
        !run.ok && run.stderr.contains("ATLAS_HUB_URL is not set"),
        "{run}"
    );
    assert_eq!(count_rows(&hub, "uploads", "true").await, 0);

    // A revoked token: the Hub's code, and the variable to update.
    let (_, tokens) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/tokens")
        .await
        .parts();
    let old = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let (_, after) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/tokens")
        .await
        .parts();
    let known: Vec<&Value> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    let id = after["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .find(|id| !known.contains(id))
        .unwrap();
    let (status, _) = hub
        .api()
        .bearer(&admin)
        .delete(&format!("/api/v1/admin/tokens/{}", id.as_str().unwrap()))
        .await
        .parts();
    assert_eq!(status, 204);
    let run = atlas(&hub.url, &[("ATLAS_APP_DEPLOY_TOKEN", &old)], &publish);
    assert!(!run.ok, "{run}");
    assert!(run.stderr.contains("401 token_revoked"), "{run}");
    assert!(run.stderr.contains("set ATLAS_APP_DEPLOY_TOKEN"), "{run}");

    // A token without the promote scope.
    let upload_only = app_token(&hub, &admin, &["launcher"], &["upload", "publish"], &[]).await;
    assert!(
        atlas(
            &hub.url,
            &[("ATLAS_APP_DEPLOY_TOKEN", &upload_only)],
            &publish
        )
        .ok
    );
    let run = atlas(
        &hub.url,
        &[("ATLAS_APP_DEPLOY_TOKEN", &upload_only)],
        &[
            "release",
            "promote",
            "--product",
            "launcher",
            "--channel",
            "stable",
            "--version",
            "1.0.0",
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("403 scope_denied") && run.stderr.contains("promote"),
        "{run}"
    );

    // Other content under a published version: 409, with what the release holds.
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.0.0",
            &spec_b,
        ],
    );
    assert!(!run.ok, "{run}");
    assert!(run.stderr.contains("409 version_exists"), "{run}");
    assert!(run.stderr.contains("launcher 1.0.0 exists"), "{run}");
    assert!(
        run.stderr.contains("linux/x86_64/appimage  app.AppImage"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("fix: releases are immutable: publish under a new --version"),
        "{run}"
    );
    assert_eq!(count_rows(&hub, "releases", "true").await, 1);
}
