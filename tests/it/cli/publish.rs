//! `release publish`: several files with progress, a >50 MB one, a run killed mid-upload and
//! re-run, and retries through a Hub that is down, then flaky.

use super::*;

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
    let (status, latest) = hub
        .api()
        .get("/api/v1/releases/launcher/latest/linux/x86_64?channel=beta")
        .await
        .parts();
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["artifact"]["kind"], "appimage");
    assert_eq!(latest["artifact"]["size"], BIG);
    assert_eq!(latest["artifact"]["sha256"], file_sha256(big_file()));
    assert_eq!(latest["notes"], "First release");
    let (_, win) = hub
        .api()
        .get("/api/v1/releases/launcher/latest/windows/x86_64?channel=beta")
        .await
        .parts();
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
