//! The release client: the real `atlas-hub` binary run as a process, as CI and operators run
//! it, against a local Hub with the real S3 server — publish (a >50 MB file included), a
//! publish killed mid-upload and re-run, promote / roll back / yank / status, errors that name
//! the fix, `verify` on good and broken deployments, and pack deploys with GitHub OIDC
//! requested from an Actions runtime served on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::api::*;
use crate::support::{HubOptions, TestHub, curl, root, temp_file, work_dir};

/// A minisign signature file (as `tauri signer` writes it), base64 as in a `.sig` file.
const SIG_FILE: &str = "untrusted comment: signature from minisign secret key\nRUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\ntrusted comment: timestamp:1633700835\tfile:test\tprehashed\nwLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==\n";

/// Size of the large artifact: over 50 MB, so it takes many body chunks and progress lines.
const BIG: u64 = 60 << 20;

pub(crate) fn sig() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(SIG_FILE)
}

/// Variables a developer's shell or CI might have set that would change what the CLI does.
const CLIENT_VARS: &[&str] = &[
    "ATLAS_HUB_URL",
    "ATLAS_APP_DEPLOY_TOKEN",
    "ATLAS_ADMIN_TOKEN",
    "ATLAS_PACK_DEPLOY_TOKEN",
    "ATLAS_OIDC_AUDIENCE",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITHUB_ACTIONS",
];

/// `atlas-hub <args>` against `hub_url` with exactly the client variables in `env`.
fn command(hub_url: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas-hub"));
    for var in CLIENT_VARS {
        cmd.env_remove(var);
    }
    cmd.env("ATLAS_HUB_URL", hub_url)
        .envs(env.iter().copied())
        .args(args);
    cmd
}

/// What a finished CLI run printed.
pub(crate) struct Run {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: {}\n--- stdout\n{}--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

pub(crate) fn atlas(hub_url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    Run::from(command(hub_url, env, args).output().expect("run atlas-hub"))
}

/// Runs the CLI with an app deploy token.
pub(crate) fn release(hub: &TestHub, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["release"];
    all.extend_from_slice(args);
    atlas(&hub.url, &[("ATLAS_APP_DEPLOY_TOKEN", token)], &all)
}

/// A folder for this test's files.
pub(crate) fn dir(name: &str) -> PathBuf {
    let d = work_dir()
        .join("cli")
        .join(crate::support::unique_name(name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

/// The >50 MB artifact, generated under target/tmp (never committed) and reused by later runs:
/// its content is fixed, so a file of the right size is the right file.
fn big_file() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let d = work_dir().join("cli");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("atlas-launcher-60MiB.AppImage");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == BIG) {
            return path;
        }
        let partial = d.join(format!(".atlas-launcher-{}.part", std::process::id()));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
        // xorshift: incompressible, reproducible, fast.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..(BIG >> 20) {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
        drop(f);
        std::fs::rename(&partial, &path).unwrap();
        path
    })
}

/// sha256 of a file, streamed.
fn file_sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Objects stored in the Hub's bucket (relative keys).
fn stored_objects(hub: &TestHub) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                // s3s-fs keeps metadata beside objects in dot-files.
                if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&hub.bucket_dir, &hub.bucket_dir, &mut out);
    out.sort();
    out
}

async fn launcher_hub(required: &[&str]) -> (TestHub, String, String) {
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
async fn publish_uploads_several_files_with_progress_and_a_rerun_changes_nothing() {
    let (hub, _admin, app) = launcher_hub(&["linux-x86_64"]).await;
    let d = dir("publish");
    let big = big_file().display().to_string();
    let deb = write(&d, "atlas-launcher.deb", &b"deb package ".repeat(3000));
    let nsis = write(
        &d,
        "atlas-launcher-setup.exe",
        &b"windows installer ".repeat(2000),
    );
    write(&d, "atlas-launcher-setup.exe.sig", sig().as_bytes());
    let args = [
        "publish",
        "--product",
        "launcher",
        "--version",
        "v1.0.0",
        "--channel",
        "beta",
        "--notes",
        "First release",
        "--primary",
        "linux/x86_64/appimage",
        &format!("linux/x86_64/appimage={big}"),
        &format!("linux/amd64/deb={deb}"),
        &format!("windows/x86_64/nsis={nsis}"),
    ];

    let run = release(&hub, &app, &args);
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("published launcher 1.0.0 (3 files); beta now serves it"),
        "{run}"
    );
    let big_name = big_file()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let progress = run
        .stderr
        .lines()
        .filter(|l| l.contains(&big_name) && l.ends_with("%)"))
        .count();
    assert!(
        progress >= 5,
        "expected a progress line per 10% of the big file\n{run}"
    );
    assert!(run.stderr.contains("uploaded 60.0 MiB"), "{run}");

    // What the Hub serves is what was on disk, the signature included.
    let (status, latest) = call(
        &hub,
        "GET",
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=beta",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["artifact"]["kind"], "appimage");
    assert_eq!(latest["artifact"]["size"], BIG);
    assert_eq!(latest["artifact"]["sha256"], file_sha256(big_file()));
    assert_eq!(latest["notes"], "First release");
    let (_, win) = call(
        &hub,
        "GET",
        "/api/v1/releases/launcher/latest/windows/x86_64?channel=beta",
        None,
        None,
    )
    .await;
    assert_eq!(win["artifact"]["signature"], sig());
    let out = temp_file("big-download", b"");
    let (ok, msg) = curl(&[
        "-fL",
        "-o",
        out.to_str().unwrap(),
        latest["artifact"]["downloadUrl"].as_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    assert_eq!(file_sha256(&out), file_sha256(big_file()));
    std::fs::remove_file(&out).unwrap();

    // Re-running the same command uploads nothing and publishes nothing new.
    let again = release(&hub, &app, &args);
    assert!(again.ok, "{again}");
    assert!(
        again
            .stdout
            .contains("already published with these exact files"),
        "{again}"
    );
    assert_eq!(
        again.stderr.matches("already in storage").count(),
        3,
        "{again}"
    );
    assert!(!again.stderr.contains(": uploaded "), "{again}");
    assert_eq!(count_rows(&hub, "releases", "true").await, 1);
    assert_eq!(count_rows(&hub, "uploads", "true").await, 3);
    assert_eq!(
        count_rows(&hub, "artifacts", "release_id IS NOT NULL").await,
        3
    );
    assert_eq!(stored_objects(&hub).len(), 3, "{:?}", stored_objects(&hub));
}

#[tokio::test]
async fn a_publish_killed_mid_upload_completes_when_run_again_without_duplicates() {
    let (hub, _admin, app) = launcher_hub(&[]).await;
    let d = dir("killed");
    let big = big_file().display().to_string();
    let big_name = big_file()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let deb = write(&d, "atlas-launcher.deb", &b"deb ".repeat(5000));
    let tar = write(&d, "atlas-launcher.tar.gz", &b"tarball ".repeat(5000));
    let files = [
        format!("linux/x86_64/deb={deb}"),
        format!("darwin/aarch64/tar.gz={tar}"),
        format!("linux/x86_64/appimage={big}"),
    ];
    let mut args: Vec<&str> = vec![
        "release",
        "publish",
        "--product",
        "launcher",
        "--version",
        "2.0.0",
        "--channel",
        "stable",
        "--primary",
        "linux/x86_64/appimage",
    ];
    args.extend(files.iter().map(String::as_str));

    // Throttled to 8 MiB/s, the big upload takes ~7 s: kill the client once it is under way.
    let mut throttled = args.clone();
    throttled.extend(["--limit-rate", "8M"]);
    let mut child = command(&hub.url, &[("ATLAS_APP_DEPLOY_TOKEN", &app)], &throttled)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let under_way = line.contains(&big_name) && line.ends_with("%)");
        seen.push(line);
        if under_way {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the client finished before it was killed:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|l| l.contains(&big_name) && l.ends_with("%)")),
        "no upload progress before the kill:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("atlas-launcher.tar.gz: uploaded")),
        "{}",
        seen.join("\n")
    );
    // Nothing was published and storage holds no partial object.
    assert_eq!(count_rows(&hub, "releases", "true").await, 0);
    assert!(
        !stored_objects(&hub).iter().any(|k| k.ends_with(&big_name)),
        "{:?}",
        stored_objects(&hub)
    );

    let run = atlas(&hub.url, &[("ATLAS_APP_DEPLOY_TOKEN", &app)], &args);
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("published launcher 2.0.0 (3 files); stable now serves it"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("atlas-launcher.deb is already in storage"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("atlas-launcher.tar.gz is already in storage"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains(&format!("{big_name}: uploaded 60.0 MiB")),
        "{run}"
    );
    assert_eq!(count_rows(&hub, "releases", "true").await, 1);
    assert_eq!(count_rows(&hub, "uploads", "true").await, 3);
    assert_eq!(
        count_rows(&hub, "artifacts", "release_id IS NOT NULL").await,
        3
    );
    assert_eq!(
        count_rows(&hub, "audit_log", "action = 'release.publish'").await,
        1
    );
    assert_eq!(stored_objects(&hub).len(), 3, "{:?}", stored_objects(&hub));
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("2.0.0")
    );
}

/// A Hub that is down, then flaky: nothing listens on the port until `up_after`; then the
/// first requests are answered with `statuses` (problem+json, connection closed); later
/// connections are forwarded to `hub` byte for byte.
fn flaky_hub(hub: &TestHub, up_after: std::time::Duration, statuses: &[u16]) -> String {
    let port = atlas_hub::dev::free_port().unwrap();
    let target = hub.url.trim_start_matches("http://").to_owned();
    let mut statuses = statuses.to_vec();
    statuses.reverse();
    std::thread::spawn(move || {
        std::thread::sleep(up_after);
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        for stream in listener.incoming().flatten() {
            if let Some(status) = statuses.pop() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let body = json!({"code": "unavailable", "detail": "flaky"}).to_string();
                let _ = write!(
                    reader.into_inner(),
                    "HTTP/1.1 {status} Flaky\r\ncontent-type: application/problem+json\r\n\
                     retry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            let upstream = std::net::TcpStream::connect(&target).unwrap();
            let (mut a, mut b) = (stream.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut a, &mut b));
            let (mut a, mut b) = (upstream, stream);
            std::thread::spawn(move || std::io::copy(&mut a, &mut b));
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn connection_errors_5xx_and_429_are_retried_with_backoff() {
    let (hub, _admin, app) = launcher_hub(&[]).await;
    let d = dir("retries");
    let file = write(&d, "app.AppImage", &b"retry ".repeat(1000));
    let flaky = flaky_hub(&hub, std::time::Duration::from_millis(1200), &[503, 429]);
    let run = atlas(
        &flaky,
        &[("ATLAS_APP_DEPLOY_TOKEN", &app)],
        &[
            "release",
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.0.0",
            "--attempts",
            "8",
            &format!("linux/x86_64/appimage={file}"),
        ],
    );
    assert!(run.ok, "{run}");
    assert!(
        run.stdout.contains("published launcher 1.0.0 (1 file)"),
        "{run}"
    );
    let retries: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("retrying in"))
        .collect();
    assert!(
        retries.iter().any(|l| l.contains("Connection refused")),
        "{run}"
    );
    assert!(retries.iter().any(|l| l.contains("answered 503")), "{run}");
    assert!(
        retries
            .iter()
            .any(|l| l.contains("answered 429") && l.contains("retrying in 1.0s")),
        "{run}"
    );
    assert_eq!(count_rows(&hub, "releases", "true").await, 1);
    assert_eq!(count_rows(&hub, "uploads", "true").await, 1);

    // Without enough attempts, the last failure is reported.
    let down = format!("http://127.0.0.1:{}", atlas_hub::dev::free_port().unwrap());
    let run = atlas(
        &down,
        &[("ATLAS_APP_DEPLOY_TOKEN", &app)],
        &[
            "release",
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.0.1",
            "--attempts",
            "2",
            &format!("linux/x86_64/appimage={file}"),
        ],
    );
    assert!(!run.ok, "{run}");
    assert_eq!(run.stderr.matches("retrying in").count(), 1, "{run}");
    assert!(
        run.stderr
            .contains("atlas-hub: presign linux/x86_64/appimage"),
        "{run}"
    );
}

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
    let run = release(
        &hub,
        &app,
        &["yank", "--product", "launcher", "--version", "1.1.0"],
    );
    assert!(
        run.ok && run.stdout.contains("yanked launcher 1.1.0"),
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
    let (_, tokens) = call(&hub, "GET", "/api/v1/admin/tokens", Some(&admin), None).await;
    let old = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let (_, after) = call(&hub, "GET", "/api/v1/admin/tokens", Some(&admin), None).await;
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
    let (status, _) = call(
        &hub,
        "DELETE",
        &format!("/api/v1/admin/tokens/{}", id.as_str().unwrap()),
        Some(&admin),
        None,
    )
    .await;
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
            let store = atlas_hub::dev::blob::LocalBlob::start(
                &root_dir,
                atlas_hub::dev::blob::READ_WRITE_TOKEN,
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
            (
                "BLOB_READ_WRITE_TOKEN",
                atlas_hub::dev::blob::READ_WRITE_TOKEN,
            ),
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

/// The GitHub Actions runtime's OIDC token endpoint and the issuer behind it, on loopback:
/// `/token` mints an RS256 token for the requested audience (when the runtime's bearer
/// token is right); discovery and JWKS let the Hub verify it.
struct ActionsRuntime {
    url: String,
    /// (query, authorization header) of every token request.
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

const RUNTIME_TOKEN: &str = "actions-runtime-token";

fn actions_runtime() -> ActionsRuntime {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let key = std::fs::read(root().join("tests/fixtures/issuer-key.der"))
        .expect("tests/fixtures/issuer-key.der");
    let mut jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/issuer-jwk.json")).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!("k1");
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    let (issuer, seen) = (url.clone(), requests.clone());
    static JTI: AtomicUsize = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_owned());
            }
            let target = head
                .first()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("/")
                .to_owned();
            let auth = head
                .iter()
                .find_map(|h| {
                    h.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let (status, body) = match path {
                "/.well-known/openid-configuration" => (
                    "200 OK",
                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}),
                ),
                "/jwks" => ("200 OK", json!({"keys": [jwk]})),
                "/token" => {
                    seen.lock().unwrap().push((query.to_owned(), auth.clone()));
                    let audience = form_urlencoded::parse(query.as_bytes())
                        .find(|(k, _)| k == "audience")
                        .map(|(_, v)| v.into_owned());
                    if auth != format!("Bearer {RUNTIME_TOKEN}") {
                        ("401 Unauthorized", json!({"message": "bad runtime token"}))
                    } else {
                        let now = time::OffsetDateTime::now_utc().unix_timestamp();
                        let claims = json!({
                            "iss": issuer, "aud": audience, "sub": "repo:octo/packs:environment:production",
                            "repository": "octo/packs", "repository_id": "1001",
                            "repository_owner": "octo", "repository_owner_id": "2002",
                            "workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1.0.0",
                            "job_workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1.0.0",
                            "ref": "refs/tags/v1.0.0", "environment": "production", "event_name": "push",
                            "run_id": "555", "jti": format!("cli-{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::SeqCst)),
                            "exp": now + 300, "nbf": now - 5, "iat": now - 5,
                        });
                        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                        header.kid = Some("k1".into());
                        let jwt = jsonwebtoken::encode(
                            &header,
                            &claims,
                            &jsonwebtoken::EncodingKey::from_rsa_der(&key),
                        )
                        .unwrap();
                        ("200 OK", json!({"value": jwt}))
                    }
                }
                _ => ("404 Not Found", json!({})),
            };
            let body = body.to_string();
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    ActionsRuntime { url, requests }
}

#[tokio::test]
async fn pack_deploy_requests_a_fresh_oidc_token_per_call_inside_actions_or_uses_the_pack_token() {
    let runtime = actions_runtime();
    let hub = TestHub::start_with(HubOptions {
        env: vec![
            ("ATLAS_OIDC_ISSUER".into(), runtime.url.clone()),
            ("ATLAS_OIDC_AUDIENCE".into(), "atlas-test".into()),
        ],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&hub);
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/admin/packs",
        Some(&admin),
        Some(json!({"slug": "maps", "name": "Maps", "github": {
        "repository": "octo/packs", "repositoryId": 1001, "repositoryOwnerId": 2002,
        "workflow": "deploy.yml", "environment": "production", "refPattern": "refs/tags/*"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let d = dir("pack");
    let terrain = write(&d, "terrain.zip", &b"terrain ".repeat(3000));
    let index = write(&d, "index.json", br#"{"tiles": 12}"#);
    let in_actions = [
        ("GITHUB_ACTIONS", "true"),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            &format!("{}/token?api-version=2.0", runtime.url),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", RUNTIME_TOKEN),
        ("ATLAS_OIDC_AUDIENCE", "atlas-test"),
    ];
    let deploy = [
        "pack",
        "deploy",
        "--pack",
        "maps",
        "--build",
        "b1",
        "--channel",
        "live",
        terrain.as_str(),
        index.as_str(),
    ];

    let run = atlas(&hub.url, &in_actions, &deploy);
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("deployed maps build b1 (2 files); pack channel live serves it"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("authenticating with the GitHub Actions OIDC token"),
        "{run}"
    );
    // One token per Hub call (two presigns, one deploy): the Hub accepts each token once.
    let requests = runtime.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for (query, auth) in &requests {
        assert_eq!(query, "api-version=2.0&audience=atlas-test");
        assert_eq!(auth, &format!("Bearer {RUNTIME_TOKEN}"));
    }
    let (status, live) = call(&hub, "GET", "/api/v1/packs/maps/channels/live", None, None).await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["build"], "b1");
    assert_eq!(live["artifacts"].as_array().unwrap().len(), 2, "{live}");

    // Re-running uploads nothing and changes nothing.
    let run = atlas(&hub.url, &in_actions, &deploy);
    assert!(
        run.ok && run.stdout.contains("already deployed maps build b1"),
        "{run}"
    );
    assert_eq!(run.stderr.matches("already in storage").count(), 2, "{run}");

    // Outside Actions: the pack deploy token, or a message naming the variable.
    let run = atlas(
        &hub.url,
        &[],
        &[
            "pack",
            "deploy",
            "--pack",
            "maps",
            "--build",
            "b2",
            "--channel",
            "live",
            &index,
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("set ATLAS_PACK_DEPLOY_TOKEN"),
        "{run}"
    );
    let (status, created) = call(
        &hub,
        "POST",
        "/api/v1/admin/tokens",
        Some(&admin),
        Some(json!({"name": "maps ci", "kind": "pack", "pack": "maps"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let run = atlas(
        &hub.url,
        &[(
            "ATLAS_PACK_DEPLOY_TOKEN",
            created["token"].as_str().unwrap(),
        )],
        &[
            "pack",
            "deploy",
            "--pack",
            "maps",
            "--build",
            "b2",
            "--channel",
            "live",
            &index,
        ],
    );
    assert!(run.ok, "{run}");
    let (_, live) = call(&hub, "GET", "/api/v1/packs/maps/channels/live", None, None).await;
    assert_eq!(live["build"], "b2");
}
