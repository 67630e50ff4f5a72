//! Runtime consumers: the Tauri v2 updater (dynamic and static), staged rollouts, and the
//! runner installer run under `dash` as a non-root user.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::api::*;
use crate::support::{TestHub, client, curl, sha256_hex, temp_file, work_dir};

const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
const SIG_FILE: &str = "untrusted comment: signature from minisign secret key\nRUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\ntrusted comment: timestamp:1633700835\tfile:test\tprehashed\nwLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==\n";

fn signature() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(SIG_FILE)
}

pub(crate) fn signed(
    os: &'static str,
    arch: &'static str,
    kind: &'static str,
    content: &str,
    primary: Option<bool>,
) -> Artifact {
    let mut a = Artifact::new(os, arch, kind, content);
    a.signature = Some(signature());
    a.primary = primary;
    a
}

/// The desktop bundles a launcher release carries.
fn launcher_release(tag: &str) -> Vec<Artifact> {
    vec![
        signed(
            "linux",
            "x86_64",
            "appimage",
            &format!("{tag}-ai"),
            Some(true),
        ),
        signed("linux", "x86_64", "deb", &format!("{tag}-deb"), None),
        signed(
            "windows",
            "x86_64",
            "nsis",
            &format!("{tag}-nsis"),
            Some(true),
        ),
        signed("windows", "x86_64", "msi", &format!("{tag}-msi"), None),
        signed("darwin", "aarch64", "app", &format!("{tag}-app"), None),
    ]
}

async fn launcher_hub() -> (TestHub, String, String) {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "launcher", json!({"updaterPublicKey": KEY})).await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    (hub, admin, app)
}

/// GET an updater URL: (status, body bytes, headers).
async fn updater(
    hub: &TestHub,
    path: &str,
    client_id: Option<&str>,
) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let mut r = client().get(hub.at(path));
    if let Some(id) = client_id {
        r = r.header("x-atlas-client-id", id);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.bytes().await.unwrap().to_vec(), headers)
}

/// Checks a 200 body the way Tauri v2's updater parses it.
fn assert_tauri_update(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("update body is JSON");
    let version = v["version"].as_str().expect("version is required");
    semver::Version::parse(version.trim_start_matches('v')).expect("version is SemVer");
    let url = v["url"].as_str().expect("url is required");
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "{url}"
    );
    assert_eq!(
        v["signature"].as_str().expect("signature is required"),
        signature()
    );
    if let Some(date) = v["pub_date"].as_str() {
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339)
            .expect("pub_date is RFC 3339");
    }
    assert!(v["notes"].is_string());
    v
}

#[tokio::test]
async fn the_updater_offers_newer_signed_releases_for_every_platform_and_bundle() {
    let (hub, _, app) = launcher_hub().await;
    let release = launcher_release("1.1.0");
    assert_eq!(
        publish(&hub, &app, "launcher", "1.1.0", Some("stable"), &release)
            .await
            .0,
        201
    );
    let (_, detail) = hub
        .api()
        .get("/api/v1/releases/launcher/1.1.0")
        .await
        .parts();
    let url_of = |os: &str, arch: &str, kind: &str| {
        detail["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["os"] == os && a["arch"] == arch && a["kind"] == kind)
            .unwrap()["downloadUrl"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    for a in &release {
        let path = format!(
            "/api/v1/updater/launcher/{}/{}/1.0.0?bundleType={}",
            a.os, a.arch, a.kind
        );
        let (status, body, _) = updater(&hub, &path, None).await;
        assert_eq!(status, 200, "{path}");
        let update = assert_tauri_update(&body);
        assert_eq!(update["version"], "1.1.0");
        assert_eq!(update["url"], url_of(a.os, a.arch, a.kind), "{path}");
    }
    // Without bundleType: the platform's primary signed artifact.
    for (target, arch, kind) in [
        ("linux", "x86_64", "appimage"),
        ("windows", "x86_64", "nsis"),
        ("darwin", "aarch64", "app"),
    ] {
        let (status, body, _) = updater(
            &hub,
            &format!("/api/v1/updater/launcher/{target}/{arch}/1.0.0"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            assert_tauri_update(&body)["url"],
            url_of(target, arch, kind)
        );
    }
    // No update: same or newer version, a platform or bundle the release lacks. 204, empty.
    for path in [
        "/api/v1/updater/launcher/linux/x86_64/1.1.0",
        "/api/v1/updater/launcher/linux/x86_64/1.2.0",
        "/api/v1/updater/launcher/linux/aarch64/1.0.0",
        "/api/v1/updater/launcher/linux/x86_64/1.0.0?channel=beta",
        "/api/v1/updater/launcher/linux/x86_64/1.1.0%2Bbuild.7",
    ] {
        let (status, body, _) = updater(&hub, path, None).await;
        assert_eq!((status, body.len()), (204, 0), "{path}");
    }
    // Percent-encoded versions with build metadata and a leading v are understood.
    for current in ["1.0.0%2Bbuild.5", "v1.0.0", "1.1.0-beta.1%2Bbuild.5"] {
        let (status, _, _) = updater(
            &hub,
            &format!("/api/v1/updater/launcher/linux/x86_64/{current}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{current}");
    }
    // Malformed input is a 400 problem, never a 404 (Tauri treats 404 as an error).
    for path in [
        "/api/v1/updater/launcher/linux/x86_64/1.x",
        "/api/v1/updater/launcher/freebsd/x86_64/1.0.0",
        "/api/v1/updater/launcher/linux/sparc/1.0.0",
    ] {
        let r = client().get(hub.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn prereleases_compare_by_semver_and_yanked_or_unsigned_releases_are_never_offered() {
    let (hub, _, app) = launcher_hub().await;
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "2.0.0-beta.1",
            Some("beta"),
            &launcher_release("b1")
        )
        .await
        .0,
        201
    );
    let path = |v: &str| format!("/api/v1/updater/launcher/linux/x86_64/{v}?channel=beta");
    let (status, body, _) = updater(&hub, &path("1.9.0"), None).await;
    assert_eq!(status, 200);
    assert_eq!(assert_tauri_update(&body)["version"], "2.0.0-beta.1");
    assert_eq!(updater(&hub, &path("2.0.0-alpha.3"), None).await.0, 200);
    assert_eq!(updater(&hub, &path("2.0.0-beta.2"), None).await.0, 204);
    assert_eq!(updater(&hub, &path("2.0.0"), None).await.0, 204);

    // 2.0.0-beta.2 goes to beta, then beta rolls back and 2.0.0-beta.2 is yanked.
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "2.0.0-beta.2",
            Some("beta"),
            &launcher_release("b2")
        )
        .await
        .0,
        201
    );
    assert_eq!(
        move_channel(
            &hub,
            &app,
            "launcher",
            "beta",
            json!({"version": "2.0.0-beta.1"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        hub.api()
            .bearer(&app)
            .send(
                http::Method::POST,
                "/api/v1/releases/launcher/2.0.0-beta.2/yank",
                None
            )
            .await
            .parts()
            .0,
        200
    );
    let (_, body, _) = updater(&hub, &path("1.0.0"), None).await;
    assert_eq!(assert_tauri_update(&body)["version"], "2.0.0-beta.1");
    assert_eq!(updater(&hub, &path("2.0.0-beta.1"), None).await.0, 204);

    // An unsigned artifact is never offered to the updater.
    let unsigned = [Artifact::new("linux", "x86_64", "appimage", "u")];
    assert_eq!(
        publish(&hub, &app, "launcher", "3.0.0", Some("dev"), &unsigned)
            .await
            .0,
        201
    );
    assert_eq!(
        updater(
            &hub,
            "/api/v1/updater/launcher/linux/x86_64/1.0.0?channel=dev",
            None
        )
        .await
        .0,
        204
    );
}

#[tokio::test]
async fn a_staged_rollout_offers_the_release_to_a_stable_share_of_clients() {
    let (hub, _, app) = launcher_hub().await;
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "1.0.0",
            Some("stable"),
            &launcher_release("a")
        )
        .await
        .0,
        201
    );
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "1.1.0",
            None,
            &launcher_release("b")
        )
        .await
        .0,
        201
    );
    let (status, b) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "rolloutPercent": 25}),
    )
    .await;
    assert_eq!(status, 200, "{b}");

    let ask = |id: String| {
        let hub = &hub;
        async move {
            let (status, body, headers) = updater(
                hub,
                "/api/v1/updater/launcher/linux/x86_64/0.9.0",
                Some(&id),
            )
            .await;
            assert_eq!(status, 200);
            assert!(
                headers["vary"]
                    .to_str()
                    .unwrap()
                    .contains("x-atlas-client-id")
            );
            (
                id,
                assert_tauri_update(&body)["version"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        }
    };
    let ids: Vec<String> = (0..400).map(|i| format!("install-{i}")).collect();
    let first = futures_util::future::join_all(ids.iter().cloned().map(ask)).await;
    let new: Vec<&String> = first
        .iter()
        .filter(|(_, v)| v == "1.1.0")
        .map(|(id, _)| id)
        .collect();
    assert!(first.iter().all(|(_, v)| v == "1.1.0" || v == "1.0.0"));
    assert!(
        (65..=135).contains(&new.len()),
        "{} of 400 got the 25% rollout",
        new.len()
    );
    // The same client always gets the same answer.
    let again = futures_util::future::join_all(ids.iter().take(100).cloned().map(ask)).await;
    assert_eq!(&again[..], &first[..100]);
    // A client outside the rollout that already runs 1.0.0 gets no update.
    let outsider = first.iter().find(|(_, v)| v == "1.0.0").unwrap().0.clone();
    let (status, _, _) = updater(
        &hub,
        "/api/v1/updater/launcher/linux/x86_64/1.0.0",
        Some(&outsider),
    )
    .await;
    assert_eq!(status, 204);
    // Without a client id the answer depends on the address: no shared cache may keep it.
    let (_, _, headers) = updater(&hub, "/api/v1/updater/launcher/linux/x86_64/0.9.0", None).await;
    assert_eq!(headers["cache-control"], "private, no-store");

    // Raising the percent only adds clients.
    assert_eq!(
        move_channel(
            &hub,
            &app,
            "launcher",
            "stable",
            json!({"version": "1.1.0", "rolloutPercent": 60})
        )
        .await
        .0,
        200
    );
    let raised = futures_util::future::join_all(ids.iter().cloned().map(ask)).await;
    for (id, v) in &raised {
        if new.contains(&id) {
            assert_eq!(v, "1.1.0", "{id} lost the release when the rollout grew");
        }
    }
    let now = raised.iter().filter(|(_, v)| v == "1.1.0").count();
    assert!(
        now > new.len() && (200..=280).contains(&now),
        "{now} of 400 at 60%"
    );
}

#[tokio::test]
async fn the_static_manifest_lists_every_signed_platform_and_bundle() {
    let (hub, _, app) = launcher_hub().await;
    assert_eq!(
        publish(
            &hub,
            &app,
            "launcher",
            "1.4.0",
            Some("stable"),
            &launcher_release("m")
        )
        .await
        .0,
        201
    );
    let r = client()
        .get(hub.at("/api/v1/updater/launcher/stable/latest.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["version"], "1.4.0");
    time::OffsetDateTime::parse(
        m["pub_date"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let keys: Vec<&str> = m["platforms"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The deb has no update format: listed only for a client that asks for it.
    assert_eq!(
        keys,
        vec![
            "darwin-aarch64",
            "darwin-aarch64-app",
            "linux-x86_64",
            "linux-x86_64-appimage",
            "macos-aarch64",
            "windows-x86_64",
            "windows-x86_64-msi",
            "windows-x86_64-nsis",
        ]
    );
    for (key, p) in m["platforms"].as_object().unwrap() {
        assert_eq!(p["signature"].as_str().unwrap(), signature(), "{key}");
        assert!(p["url"].as_str().unwrap().starts_with(&hub.url), "{key}");
        let expected = match key.rsplit('-').next().unwrap() {
            "msi" => "wix",
            "nsis" | "x86_64" if key.starts_with("windows") => "nsis",
            "aarch64" | "app" => "app",
            _ => "appimage",
        };
        assert_eq!(p["format"], expected, "{key}");
    }
    assert_eq!(
        m["platforms"]["macos-aarch64"],
        m["platforms"]["darwin-aarch64"]
    );
    let (_, with_deb) = hub
        .api()
        .get("/api/v1/updater/launcher/stable/latest.json?bundleType=deb")
        .await
        .parts();
    assert!(
        with_deb["platforms"]["linux-x86_64-deb"]["url"].is_string(),
        "{with_deb}"
    );
    assert_eq!(
        m["platforms"]["linux-x86_64"],
        m["platforms"]["linux-x86_64-appimage"]
    );
    assert_eq!(
        m["platforms"]["windows-x86_64"],
        m["platforms"]["windows-x86_64-nsis"]
    );
    let again = client()
        .get(hub.at("/api/v1/updater/launcher/stable/latest.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let (status, _) = hub
        .api()
        .get("/api/v1/updater/launcher/beta/latest.json")
        .await
        .parts();
    assert_eq!(status, 404);
}

// ---- The runner installer ------------------------------------------------------------------

struct Install {
    ok: bool,
    output: String,
    dir: std::path::PathBuf,
}

/// Fetches the installer with curl and runs it with dash as an unprivileged user.
fn run_installer(hub: &TestHub, env: &[(&str, &str)], path_prefix: Option<&Path>) -> Install {
    let script = temp_file("install.sh", b"");
    let (ok, out) = curl(&[
        "-fsS",
        "-o",
        script.to_str().unwrap(),
        &hub.at("/download/runner/install"),
    ]);
    assert!(ok, "{out}");
    let dir = work_dir()
        .join("install")
        .join(crate::support::unique_name("i"));
    let run_as = atlas_hub::dev::RunAs::for_servers().unwrap();
    let mut cmd = match &run_as {
        Some(user) => {
            user.prepare_dir(&dir).unwrap();
            user.prepare_dir(script.parent().unwrap()).unwrap();
            user.command(Path::new("/usr/bin/dash"), None)
        }
        None => {
            std::fs::create_dir_all(&dir).unwrap();
            Command::new("dash")
        }
    };
    let mut path = std::env::var("PATH").unwrap_or_default();
    if let Some(prefix) = path_prefix {
        if let Some(user) = &run_as {
            user.prepare_dir(prefix).unwrap();
        }
        path = format!("{}:{path}", prefix.display());
    }
    cmd.arg(&script)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &dir)
        .env("ATLAS_INSTALL_DIR", dir.join("bin"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Install {
        ok: out.status.success(),
        output: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
        dir: dir.join("bin"),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn runner_hub() -> (TestHub, Vec<u8>) {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "runner", json!({})).await;
    let app = app_token(&hub, &admin, &["runner"], ALL_SCOPES, &[]).await;
    let mut x86 = Artifact::new(
        "linux",
        "x86_64",
        "binary",
        "#!/bin/sh\necho runner x86_64\n",
    );
    x86.filename = "atlas-runner".into();
    let mut arm = Artifact::new(
        "linux",
        "aarch64",
        "binary",
        "#!/bin/sh\necho runner aarch64\n",
    );
    arm.filename = "atlas-runner".into();
    let bytes = x86.bytes.clone();
    let (status, body) = publish(&hub, &app, "runner", "1.3.0", Some("stable"), &[x86, arm]).await;
    assert_eq!(status, 201, "{body}");
    (hub, bytes)
}

#[tokio::test]
async fn the_installer_installs_the_runner_under_dash_as_a_non_root_user() {
    let (hub, bytes) = runner_hub().await;
    let r = client()
        .get(hub.at("/download/runner/install"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/x-shellscript; charset=utf-8"
    );
    assert!(
        r.text().await.unwrap().contains(&hub.url),
        "the Hub URL is baked in"
    );
    let r = client()
        .get(hub.at("/download/runner/latest/linux/x86_64"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);

    let install = run_installer(&hub, &[], None);
    assert!(install.ok, "{}", install.output);
    assert!(
        install.output.contains("installed atlas-runner 1.3.0"),
        "{}",
        install.output
    );
    let installed = std::fs::read(install.dir.join("atlas-runner")).unwrap();
    assert_eq!(sha256_hex(&installed), sha256_hex(&bytes));
    assert_eq!(files_in(&install.dir), vec!["atlas-runner".to_owned()]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(install.dir.join("atlas-runner"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[tokio::test]
async fn the_installer_refuses_a_tampered_object_and_leaves_nothing_behind() {
    let (hub, bytes) = runner_hub().await;
    let object = hub.bucket_dir.join(format!(
        "releases/runner/1.3.0/linux-x86_64/binary/{}/atlas-runner",
        sha256_hex(&bytes)
    ));
    assert_eq!(
        std::fs::read(&object).unwrap(),
        bytes,
        "object layout of the local store"
    );
    let mut tampered = bytes.clone();
    tampered[0] ^= 0x20;
    std::fs::write(&object, &tampered).unwrap();
    let install = run_installer(&hub, &[], None);
    assert!(!install.ok, "{}", install.output);
    assert!(
        install.output.contains("checksum mismatch"),
        "{}",
        install.output
    );
    assert_eq!(
        files_in(&install.dir),
        Vec::<String>::new(),
        "partial files left behind"
    );
}

#[tokio::test]
async fn hostile_hub_urls_never_run_as_shell_code() {
    let (hub, _) = runner_hub().await;
    let marker = work_dir().join(crate::support::unique_name("pwned"));
    let m = marker.display();
    for hostile in [
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("http://127.0.0.1:1/\"; touch {m}; \""),
        format!("'; touch {m}; '"),
    ] {
        let install = run_installer(&hub, &[("ATLAS_HUB_URL", hostile.as_str())], None);
        assert!(!install.ok, "{hostile}: {}", install.output);
        assert!(
            !marker.exists(),
            "{hostile:?} ran a command: {}",
            install.output
        );
    }
    // The Hub itself refuses to start with such a URL: it would be pasted into the script.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["serve", "--port", "0"])
        .env("ATLAS_HUB_URL", format!("http://x/$(touch {m})"))
        .env("DATABASE_URL", &hub.database_url)
        .env("ATLAS_S3_BUCKET", "unused")
        .env("ATLAS_S3_ENDPOINT", "http://127.0.0.1:9")
        .env("ATLAS_S3_ACCESS_KEY_ID", "unused")
        .env("ATLAS_S3_SECRET_ACCESS_KEY", "unused")
        .env("ATLAS_TOKEN_PEPPER", crate::support::PEPPER)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ATLAS_HUB_URL"),
        "{stderr}"
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn the_installer_refuses_unsupported_architectures_and_missing_releases() {
    let (hub, _) = runner_hub().await;
    let shim = work_dir()
        .join("shims")
        .join(crate::support::unique_name("u"));
    std::fs::create_dir_all(&shim).unwrap();
    let uname = shim.join("uname");
    std::fs::write(
        &uname,
        "#!/bin/sh\nif [ \"$1\" = -m ]; then echo sparc64; else echo Linux; fi\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&uname, std::fs::Permissions::from_mode(0o755)).unwrap();
    let install = run_installer(&hub, &[], Some(&shim));
    assert!(!install.ok);
    assert!(
        install.output.contains("unsupported architecture: sparc64"),
        "{}",
        install.output
    );
    assert!(files_in(&install.dir).is_empty());

    let install = run_installer(&hub, &[("ATLAS_CHANNEL", "beta")], None);
    assert!(!install.ok);
    assert!(
        install.output.contains("no runner release on channel beta"),
        "{}",
        install.output
    );
    assert!(files_in(&install.dir).is_empty());
}
