//! The operator console in a real browser: Debian's chromium driven by `playwright-core`
//! (`tests/console/e2e.mjs`, pinned in `tests/console/package-lock.json`) against the local Hub,
//! signing in through the loopback OpenID provider. This file sets the Hub and its releases
//! up, runs the browser script, and checks what it did from the database.

use std::process::Command;

use serde_json::json;

use crate::api::{ALL_SCOPES, Artifact, admin_token, app_token, create_product, upload_all};
use crate::signin::grant;
use crate::signin::oidc_provider::OidcProvider;
use crate::support::{HubOptions, TestHub, connect, work_dir};
use crate::tools;

const TENANT: &str = "3c1e6f0a-5b2d-4e8f-9a7c-0d1e2f3a4b5c";
const CLIENT_SECRET: &str = "console-client-secret-0123456789";
/// Release notes an attacker could have written: they must show as text.
const NOTES: &str =
    "Fixes <script>window.__xss=1</script> and <img src=x onerror=\"window.__xss=2\"> & more";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_work_the_console_end_to_end_in_chromium() {
    let (console_dir, chromium) = tools::console_browser();
    let port = atlas_hub::dev::free_port().unwrap();
    let idp = OidcProvider::start(
        &[TENANT],
        "console-client",
        CLIENT_SECRET,
        &[format!(
            "http://127.0.0.1:{port}/api/v1/auth/callback/microsoft"
        )],
    );
    let hub = TestHub::start_with(HubOptions {
        env: [
            ("ATLAS_SIGNIN_MICROSOFT_CLIENT_ID", "console-client"),
            ("ATLAS_SIGNIN_MICROSOFT_CLIENT_SECRET", CLIENT_SECRET),
            ("ATLAS_SIGNIN_MICROSOFT_TENANTS", TENANT),
            ("ATLAS_SIGNIN_MICROSOFT_AUTHORITY", idp.base.as_str()),
            // The usage page is read right after the checks it shows.
            ("ATLAS_STATS_WRITE_SECS", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        port: Some(port),
        ..Default::default()
    })
    .await;
    grant(
        &hub,
        "microsoft_group",
        &format!("{TENANT}/release-admins"),
        "admin",
        &[],
    );
    grant(&hub, "microsoft_tenant", TENANT, "viewer", &[]);

    // launcher: 1.0.0 on stable and beta, 1.1.0 (notes with markup) on no channel, 1.2.0 for
    // Linux only (a move to it would drop Windows).
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"name": "Launcher", "requiredPlatforms": ["linux-x86_64", "windows-x86_64"]}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    for (version, notes, windows, channels) in [
        ("1.0.0", "First release", true, &["stable", "beta"][..]),
        ("1.1.0", NOTES, true, &[][..]),
        ("1.2.0", "Linux only", false, &[][..]),
    ] {
        let mut artifacts = vec![Artifact {
            filename: format!("launcher-{version}.AppImage"),
            ..Artifact::new("linux", "x86_64", "appimage", &format!("linux {version} "))
        }];
        if windows {
            artifacts.push(Artifact {
                filename: format!("launcher-{version}-setup.exe"),
                ..Artifact::new("windows", "x86_64", "nsis", &format!("windows {version} "))
            });
        }
        let entries = upload_all(&hub, &app, "launcher", version, &artifacts).await;
        let body = json!({"version": version, "notes": notes, "artifacts": entries});
        let r = hub
            .api()
            .bearer(&app)
            .post("/api/v1/releases/launcher/publish", body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        for channel in channels {
            let r = hub
                .api()
                .bearer(&app)
                .put(
                    &format!("/api/v1/releases/launcher/channels/{channel}"),
                    json!({"version": version}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }

    // A pack with two builds deployed to its `live` channel (by the admin token).
    let r = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "name": "Maps"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let auth = format!("Bearer {admin}");
    for build in ["2026.1", "2026.2"] {
        let bytes = format!("maps {build} ").repeat(300).into_bytes();
        let (status, p) = crate::packs::pack_call(
            &hub,
            "POST",
            "/api/v1/storage/presign",
            ("authorization", &auth),
            crate::packs::presign_body(build, "maps.zip", &bytes),
        )
        .await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(crate::api::curl_upload(&p, &bytes), 200);
        let deploy = json!({"build": build, "channel": "live", "artifacts": [
            {"uploadId": p["uploadId"], "size": bytes.len(), "sha256": crate::support::sha256_hex(&bytes)}]});
        let (status, b) = crate::packs::pack_call(
            &hub,
            "POST",
            "/api/v1/packs/maps/deploy",
            ("authorization", &auth),
            deploy,
        )
        .await;
        assert_eq!(status, 201, "{b}");
    }

    // Some traffic for the usage page: clients on two versions check for updates, some
    // download.
    let http = crate::support::client();
    for i in 0..30 {
        let (os, version) = if i % 3 == 0 {
            ("windows", "0.9.0")
        } else {
            ("linux", "1.0.0")
        };
        let r = http
            .get(hub.at(&format!("/api/v1/updater/launcher/{os}/x86_64/{version}")))
            .header("x-atlas-client-id", format!("console-client-{i}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        if i % 4 == 0 {
            let r = http
                .get(hub.at(&format!(
                    "/download/launcher/latest/{os}/x86_64?clientId=console-client-{i}"
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302);
        }
    }

    let shots = work_dir().join("console");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg("e2e.mjs")
        .current_dir(&console_dir)
        .env("HUB_URL", &hub.url)
        .env("IDP_URL", &idp.base)
        .env("TENANT", TENANT)
        .env("ADMIN_OID", "oid-admin")
        .env("VIEWER_OID", "oid-viewer")
        .env("NOTES", NOTES)
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}\nHub log tail:\n{}",
        hub.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // What the browser did, as the database has it: each move, the yank with its reason, the
    // token issued and revoked, all by the admin, none by the viewer.
    let db = connect(&hub.database_url).await;
    let person = format!("microsoft:{TENANT}/oid-admin");
    let actions: Vec<(String, String)> = db
        .query(
            "SELECT action, subject FROM audit_log WHERE actor = $1 ORDER BY id",
            &[&person],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for expected in [
        ("channel.move", "launcher/stable"),
        ("channel.move", "launcher/beta"),
        ("channel.move", "launcher/dev"),
        ("release.yank", "launcher@1.2.0"),
        ("token.issue", ""),
        ("token.revoke", ""),
        ("pack.channel.move", "maps/live"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, s)| a == expected.0 && s.starts_with(expected.1)),
            "{expected:?} not in {actions:?}"
        );
    }
    let forced: bool = db
        .query_one(
            "SELECT (detail->>'forced')::bool FROM audit_log
             WHERE action = 'channel.move' AND subject = 'launcher/beta' AND actor = $1
             ORDER BY id LIMIT 1",
            &[&person],
        )
        .await
        .unwrap()
        .get(0);
    assert!(forced, "the forced move is audited as forced");
    let viewer_writes: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE actor LIKE '%oid-viewer' AND action NOT LIKE 'session.%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(viewer_writes, 0);
    let (stable, rollout): (String, i16) = db
        .query_one(
            "SELECT r.version, c.rollout_percent FROM channels c JOIN releases r ON r.id = c.release_id
             JOIN products p ON p.id = c.product_id WHERE p.slug = 'launcher' AND c.name = 'stable'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((stable.as_str(), rollout), ("1.1.0", 25));

    // Every page's screenshot was written (and is looked at by people, not only counted).
    for page in [
        "signin",
        "products",
        "product",
        "promote-dialog",
        "force-dialog",
        "history-yanked",
        "release",
        "token-issued",
        "tokens",
        "audit",
        "packs",
        "access",
        "usage",
        "product-phone",
        "viewer-product",
    ] {
        let png = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "{} is missing or empty", png.display());
    }
}
