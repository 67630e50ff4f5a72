//! `verify`: the post-deploy checklist on good and broken deployments, S3 and Vercel Blob.

use super::*;

/// A launcher with signed desktop bundles and a runner for two architectures, on stable.
async fn distribution_hub() -> (TestHub, String) {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": ["linux-x86_64"]}),
    )
    .await;
    create_product(
        &hub,
        &admin,
        "runner",
        json!({"requiredPlatforms": ["linux-x86_64", "linux-aarch64"]}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher", "runner"], ALL_SCOPES, &[]).await;
    let d = dir("verify");
    let ai = write(&d, "launcher.AppImage", &b"appimage ".repeat(2000));
    write(&d, "launcher.AppImage.sig", sig().as_bytes());
    let exe = write(&d, "launcher-setup.exe", &b"nsis ".repeat(2000));
    write(&d, "launcher-setup.exe.sig", sig().as_bytes());
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.0.0",
            "--channel",
            "stable",
            &format!("linux/x86_64/appimage={ai}"),
            &format!("windows/x86_64/nsis={exe}"),
        ],
    );
    assert!(run.ok, "{run}");
    let x86 = write(&d, "atlas-runner-x86_64", &b"runner x86 ".repeat(2000));
    let arm = write(&d, "atlas-runner-aarch64", &b"runner arm ".repeat(2000));
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "runner",
            "--version",
            "0.9.0",
            "--channel",
            "stable",
            &format!("linux/x86_64/binary={x86}"),
            &format!("linux/aarch64/binary={arm}"),
        ],
    );
    assert!(run.ok, "{run}");
    (hub, admin)
}

/// The verify table's rows as (result, check, subject).
fn table_rows(run: &Run) -> Vec<(String, String, String)> {
    run.stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            // Columns are separated by at least two spaces.
            let cells: Vec<&str> = l
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            (
                cells[0].to_owned(),
                cells[1].to_owned(),
                cells.get(2).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn verify_passes_on_a_good_deployment_and_names_the_checks_wrong_storage_credentials_break() {
    let (hub, admin) = distribution_hub().await;
    let run = atlas(&hub.url, &[("ATLAS_ADMIN_TOKEN", &admin)], &["verify"]);
    assert!(run.ok, "{run}");
    let rows = table_rows(&run);
    // Empty channels (beta, dev) are skipped; nothing fails or warns.
    assert!(rows.iter().all(|r| r.0 == "pass" || r.0 == "skip"), "{run}");
    for (check, subject) in [
        ("health (deep)", "/api/health?deep=1"),
        ("products", "/api/v1/admin/products"),
        ("latest", "launcher/stable linux-x86_64"),
        ("download", "launcher/stable windows-x86_64"),
        ("updater", "launcher/stable windows-x86_64"),
        ("updater manifest", "launcher/stable"),
        ("download latest", "runner/stable linux-aarch64"),
        ("updater", "runner/stable linux-x86_64"),
        ("runner install", "/download/runner/install"),
    ] {
        assert!(
            rows.iter().any(|r| r.1 == check && r.2 == subject),
            "no {check} {subject}:\n{run}"
        );
    }
    assert!(run.stdout.contains("0 failed"), "{run}");
    // Without an admin token, --product names what to check.
    let run = atlas(
        &hub.url,
        &[],
        &["verify", "--product", "runner", "--channel", "stable"],
    );
    assert!(
        run.ok && run.stdout.contains("runner/stable linux-aarch64"),
        "{run}"
    );

    // The same database and bucket behind a Hub with a wrong storage secret.
    let broken = TestHub::start_with(HubOptions {
        database_url: Some(hub.database_url.clone()),
        env: vec![
            ("ATLAS_S3_BUCKET".into(), hub.bucket.clone()),
            ("ATLAS_S3_SECRET_ACCESS_KEY".into(), "not-the-secret".into()),
        ],
        ..Default::default()
    })
    .await;
    let run = atlas(&broken.url, &[("ATLAS_ADMIN_TOKEN", &admin)], &["verify"]);
    assert!(!run.ok, "{run}");
    let failed: Vec<(String, String)> = table_rows(&run)
        .into_iter()
        .filter(|r| r.0 == "FAIL")
        .map(|r| (r.1, r.2))
        .collect();
    assert!(
        failed.contains(&("health (deep)".into(), "/api/health?deep=1".into())),
        "{run}"
    );
    assert!(
        failed.contains(&("download".into(), "launcher/stable linux-x86_64".into())),
        "{run}"
    );
    assert!(
        failed.contains(&(
            "download latest".into(),
            "runner/stable linux-aarch64".into()
        )),
        "{run}"
    );
    // Lookups that only need the database still pass.
    assert!(
        table_rows(&run)
            .iter()
            .any(|r| r.0 == "pass" && r.1 == "latest"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("storage refused the presigned URL (403"),
        "{run}"
    );
    assert!(
        run.stderr.contains("verify failed:")
            && run.stderr.contains("health (deep) /api/health?deep=1"),
        "{run}"
    );
}

#[tokio::test]
async fn verify_fails_naming_the_platform_a_force_moved_channel_no_longer_serves() {
    let (hub, _admin, app) = launcher_hub(&[]).await;
    let d = dir("forced");
    let x86 = write(&d, "a-x86_64.AppImage", &b"x86 ".repeat(1000));
    let arm = write(&d, "a-aarch64.AppImage", &b"arm ".repeat(1000));
    let x86_2 = write(&d, "b-x86_64.AppImage", &b"x86 two ".repeat(1000));
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.0.0",
            "--channel",
            "stable",
            &format!("linux/x86_64/appimage={x86}"),
            &format!("linux/aarch64/appimage={arm}"),
        ],
    );
    assert!(run.ok, "{run}");
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.1.0",
            &format!("linux/x86_64/appimage={x86_2}"),
        ],
    );
    assert!(run.ok, "{run}");
    let good = atlas(&hub.url, &[], &["verify", "--product", "launcher"]);
    assert!(good.ok, "{good}");

    // A plain promote is refused; a forced move (audited) goes through and breaks aarch64.
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
        !run.ok && run.stderr.contains("platforms_missing") && run.stderr.contains("--force"),
        "{run}"
    );
    let (status, body) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let run = atlas(&hub.url, &[], &["verify", "--product", "launcher"]);
    assert!(!run.ok, "{run}");
    let failed: Vec<(String, String, String)> = table_rows(&run)
        .into_iter()
        .filter(|r| r.0 == "FAIL")
        .collect();
    assert_eq!(failed.len(), 1, "{run}");
    assert_eq!(
        (failed[0].1.as_str(), failed[0].2.as_str()),
        ("latest", "launcher/stable linux-aarch64"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("stable points at 1.1.0, which has no artifact for linux-aarch64"),
        "{run}"
    );
    assert!(
        run.stderr.contains("latest launcher/stable linux-aarch64"),
        "{run}"
    );
}

#[tokio::test]
async fn publish_and_verify_work_the_same_against_a_vercel_blob_hub() {
    // The local Blob-compatible store, on its own thread (the CLI runs blocking here).
    let root_dir = work_dir()
        .join("cli")
        .join(crate::support::unique_name("blob"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = crate::blob_store::LocalBlob::start(
                &root_dir,
                crate::blob_store::READ_WRITE_TOKEN,
                0,
            )
            .await
            .expect("local Blob store");
            tx.send((store.api_url(), store.public_url())).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (api_url, public_url) = rx.recv().unwrap();
    let hub = TestHub::start_with(HubOptions {
        env: [
            ("ATLAS_STORAGE", "vercel-blob"),
            ("BLOB_READ_WRITE_TOKEN", crate::blob_store::READ_WRITE_TOKEN),
            ("VERCEL_BLOB_API_URL", api_url.as_str()),
            ("ATLAS_BLOB_PUBLIC_URL", public_url.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..Default::default()
    })
    .await;
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": ["linux-x86_64"]}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let d = dir("blob-files");
    let ai = write(&d, "launcher.AppImage", &b"blob appimage ".repeat(20_000));
    let exe = write(&d, "launcher-setup.exe", &b"blob nsis ".repeat(5_000));
    let args = [
        "publish",
        "--product",
        "launcher",
        "--version",
        "1.0.0",
        "--channel",
        "stable",
        &format!("linux/x86_64/appimage={ai}"),
        &format!("windows/x86_64/nsis={exe}"),
    ];

    // The CLI sends Blob's own upload headers (a per-pathname client token) as given.
    let run = release(&hub, &app, &args);
    assert!(run.ok, "{run}");
    assert!(
        run.stdout.contains("published launcher 1.0.0 (2 files)"),
        "{run}"
    );
    let again = release(&hub, &app, &args);
    assert!(
        again.ok && again.stdout.contains("already published"),
        "{again}"
    );
    assert_eq!(
        again.stderr.matches("already in storage").count(),
        2,
        "{again}"
    );

    let run = atlas(&hub.url, &[("ATLAS_ADMIN_TOKEN", &admin)], &["verify"]);
    assert!(run.ok, "{run}");
    let rows = table_rows(&run);
    assert!(
        rows.iter()
            .any(|r| r.0 == "pass" && r.1 == "download" && r.2 == "launcher/stable windows-x86_64"),
        "{run}"
    );
    assert!(
        rows.iter().any(|r| r.0 == "pass" && r.1 == "health (deep)"),
        "{run}"
    );
}
