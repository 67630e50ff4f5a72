//! The Hub's updater routes driven by a real Tauri-protocol client nobody here wrote:
//! `cargo-packager-updater` 0.2.3 (CrabNebula's), with keys and `.sig` files made exactly as
//! `tauri signer` makes them (the `minisign` crate, trusted comment
//! `timestamp:<unix>\tfile:<name>`), published with the real CLI. The client checks, follows
//! the download redirect to storage, verifies the signature and hands back the bytes; Linux,
//! Windows and a macOS target, the dynamic endpoint and `latest.json` (with a `deb` beside).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cargo_packager_updater::{Config, Update, UpdaterBuilder, semver, url::Url};
use serde_json::{Value, json};

use crate::api::{ALL_SCOPES, Artifact, admin_token, app_token, create_product, publish};
use crate::cli::{dir, release, write};
use crate::support::TestHub;

/// A key pair as `tauri signer generate` makes one (no password): the `pubkey` string
/// (base64 of the `.pub` file) and the secret key.
pub(crate) struct SigningKey {
    pub(crate) pubkey: String,
    secret: minisign::SecretKey,
}

impl SigningKey {
    pub(crate) fn generate() -> SigningKey {
        let minisign::KeyPair { pk, sk } =
            minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        SigningKey {
            pubkey: STANDARD.encode(pk.to_box().unwrap().to_string()),
            secret: sk,
        }
    }

    /// The `.sig` file content for `bytes` named `file`, as `tauri signer sign` writes it
    /// (base64 of the minisign signature box).
    pub(crate) fn sign(&self, bytes: &[u8], file: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sig = minisign::sign(
            None,
            &self.secret,
            std::io::Cursor::new(bytes),
            Some(&format!("timestamp:{now}\tfile:{file}")),
            Some("signature from tauri secret key"),
        )
        .unwrap();
        STANDARD.encode(sig.to_string())
    }
}

/// Incompressible, reproducible bytes of a fake bundle.
fn bundle(seed: &str, len: usize) -> Vec<u8> {
    let mut x = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One updater client, as an app built with cargo-packager-updater runs it.
struct Client {
    endpoint: String,
    pubkey: String,
    current: &'static str,
    /// cargo-packager-updater's `target` override: replaces `{{target}}` and the manifest key.
    target: Option<&'static str>,
}

impl Client {
    /// `check()` then, for an update, `download()` (which verifies the signature and
    /// returns the bytes without installing anything). Blocking, as the library is.
    async fn run(&self) -> Result<Option<(Update, Result<Vec<u8>, String>)>, String> {
        let endpoint = Url::parse(&self.endpoint).unwrap();
        let pubkey = self.pubkey.clone();
        let current = semver::Version::parse(self.current).unwrap();
        let target = self.target;
        tokio::task::spawn_blocking(move || {
            let config = Config {
                endpoints: vec![endpoint],
                pubkey,
                ..Default::default()
            };
            let mut builder = UpdaterBuilder::new(current, config)
                .header("x-atlas-client-id", "updater-client-test")
                .unwrap()
                .timeout(Duration::from_secs(20));
            if let Some(t) = target {
                builder = builder.target(t);
            }
            let updater = builder.build().map_err(|e| e.to_string())?;
            match updater.check().map_err(|e| e.to_string())? {
                None => Ok(None),
                Some(update) => {
                    let bytes = update.download().map_err(|e| e.to_string());
                    Ok(Some((update, bytes)))
                }
            }
        })
        .await
        .unwrap()
    }
}

/// The files of one release: (os/arch/kind spec, file name, bytes).
fn release_files(version: &str) -> Vec<(&'static str, String, Vec<u8>)> {
    vec![
        (
            "linux/x86_64/appimage",
            format!("atlas_{version}_amd64.AppImage"),
            bundle(&format!("appimage {version}"), 3000),
        ),
        (
            "linux/x86_64/deb",
            format!("atlas_{version}_amd64.deb"),
            bundle(&format!("deb {version}"), 2000),
        ),
        (
            "windows/x86_64/nsis",
            format!("atlas_{version}_x64-setup.exe"),
            bundle(&format!("nsis {version}"), 2500),
        ),
        (
            "darwin/aarch64/app",
            format!("atlas_{version}_aarch64.app.tar.gz"),
            bundle(&format!("app {version}"), 2200),
        ),
    ]
}

/// Publishes `version` with the CLI, each file with a `.sig` beside it signed by `key`.
fn publish_signed(hub: &TestHub, token: &str, key: &SigningKey, version: &str, channel: &str) {
    let d = dir(&format!("updater-{version}"));
    let mut args: Vec<String> = [
        "publish",
        "--product",
        "launcher",
        "--version",
        version,
        "--channel",
        channel,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(["--primary".into(), "linux/x86_64/appimage".into()]);
    for (spec, name, bytes) in release_files(version) {
        let path = write(&d, &name, &bytes);
        std::fs::write(format!("{path}.sig"), key.sign(&bytes, &name)).unwrap();
        args.push(format!("{spec}={path}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = release(hub, token, &refs);
    assert!(run.ok, "{run}");
    assert!(
        run.stderr
            .contains("signatures verified with launcher's updater key"),
        "{run}"
    );
}

#[tokio::test]
async fn cargo_packager_updater_updates_linux_windows_and_macos_clients_from_the_hub() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    let key = SigningKey::generate();
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"updaterPublicKey": key.pubkey}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;

    // The key reads back in exactly the form it was given: what Tauri's `pubkey` takes.
    let (_, products) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/products")
        .await
        .parts();
    assert_eq!(
        products["products"][0]["updaterPublicKey"],
        key.pubkey.as_str()
    );
    let (_, listing) = hub.api().get("/api/v1/releases/launcher").await.parts();
    assert_eq!(listing["updaterPublicKey"], key.pubkey.as_str());

    publish_signed(&hub, &app, &key, "1.0.0", "stable");
    publish_signed(&hub, &app, &key, "1.1.0", "stable");
    let newest = release_files("1.1.0");
    let bytes_of = |spec: &str| newest.iter().find(|f| f.0 == spec).unwrap().2.clone();

    let dynamic = hub.at("/api/v1/updater/launcher/{{target}}/{{arch}}/{{current_version}}");
    let manifest = hub.at("/api/v1/updater/launcher/stable/latest.json");
    // (endpoint, target override, the file it must get). The dynamic endpoint's arch is the
    // test machine's (x86_64) unless the URL names one; the manifest is looked up by
    // `{target}-{arch}`, or by the override alone.
    let cases = [
        (dynamic.clone(), None, "linux/x86_64/appimage", "appimage"),
        (manifest.clone(), None, "linux/x86_64/appimage", "appimage"),
        (
            dynamic.clone(),
            Some("windows"),
            "windows/x86_64/nsis",
            "nsis",
        ),
        (
            manifest.clone(),
            Some("windows-x86_64"),
            "windows/x86_64/nsis",
            "nsis",
        ),
        (
            hub.at("/api/v1/updater/launcher/{{target}}/aarch64/{{current_version}}"),
            Some("macos"),
            "darwin/aarch64/app",
            "app",
        ),
        (
            manifest.clone(),
            Some("macos-aarch64"),
            "darwin/aarch64/app",
            "app",
        ),
    ];
    for (endpoint, target, spec, format) in &cases {
        let what = format!("{endpoint} as {target:?}");
        // The old version is offered 1.1.0; the library verifies the signature over the
        // bytes it downloaded through the Hub's redirect.
        let old = Client {
            endpoint: endpoint.clone(),
            pubkey: key.pubkey.clone(),
            current: "1.0.0",
            target: *target,
        };
        let (update, bytes) = old
            .run()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .unwrap_or_else(|| panic!("{what}: no update offered"));
        assert_eq!(update.version, "1.1.0", "{what}");
        assert_eq!(update.format.to_string().to_lowercase(), *format, "{what}");
        assert_eq!(
            bytes.unwrap_or_else(|e| panic!("{what}: {e}")),
            bytes_of(spec),
            "{what}"
        );

        // The new version: no update (204 for the dynamic endpoint).
        let new = Client {
            current: "1.1.0",
            ..old
        };
        assert!(
            new.run().await.unwrap().is_none(),
            "{what}: offered an update to 1.1.0"
        );

        // A client with another key refuses the update.
        let stranger = Client {
            pubkey: SigningKey::generate().pubkey,
            current: "1.0.0",
            ..new
        };
        let (_, bytes) = stranger.run().await.unwrap().unwrap();
        assert!(
            bytes.is_err(),
            "{what}: a client with another key accepted the update"
        );
    }

    // The manifest has the `deb` only for a client that asks for it: every entry of the
    // default document has a format, so a client that parses all of them accepts it.
    let (status, doc) = hub
        .api()
        .get("/api/v1/updater/launcher/stable/latest.json")
        .await
        .parts();
    assert_eq!(status, 200, "{doc}");
    let platforms = doc["platforms"].as_object().unwrap();
    assert!(platforms.values().all(|e| e["format"].is_string()), "{doc}");
    assert!(!platforms.contains_key("linux-x86_64-deb"), "{doc}");
    for k in [
        "linux-x86_64",
        "linux-x86_64-appimage",
        "windows-x86_64",
        "windows-x86_64-nsis",
        "darwin-aarch64",
        "darwin-aarch64-app",
        "macos-aarch64",
    ] {
        assert!(platforms.contains_key(k), "no {k}: {doc}");
    }
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
        with_deb["platforms"]["linux-x86_64"],
        doc["platforms"]["linux-x86_64"]
    );
    // Tauri's `unknown` bundle type and a bundle the release lacks fall back to the primary.
    for bundle in ["unknown", "rpm"] {
        let (status, body) = hub
            .api()
            .get(&format!(
                "/api/v1/updater/launcher/linux/x86_64/1.0.0?bundleType={bundle}"
            ))
            .await
            .parts();
        assert_eq!(status, 200, "bundleType={bundle}: {body}");
        assert_eq!(body["format"], "appimage", "bundleType={bundle}: {body}");
    }
    let (_, deb) = hub
        .api()
        .get("/api/v1/updater/launcher/linux/x86_64/1.0.0?bundleType=deb")
        .await
        .parts();
    assert!(
        deb["url"].is_string() && deb.get("format").is_none(),
        "{deb}"
    );
    // No notes were published: none are served, rather than "".
    assert!(doc.get("notes").is_none(), "{doc}");

    // A signature made with the product's key over other bytes: the Hub cannot tell without
    // the bytes (published here past the CLI), and the client refuses it.
    let mut tampered = Artifact::new("linux", "x86_64", "appimage", "tampered");
    tampered.signature = Some(key.sign(b"other bytes", &tampered.filename));
    let (status, body) = publish(&hub, &app, "launcher", "1.2.0", Some("beta"), &[tampered]).await;
    assert_eq!(status, 201, "{body}");
    let beta = Client {
        endpoint: hub
            .at("/api/v1/updater/launcher/{{target}}/{{arch}}/{{current_version}}?channel=beta"),
        pubkey: key.pubkey.clone(),
        current: "1.0.0",
        target: None,
    };
    let (update, bytes) = beta.run().await.unwrap().unwrap();
    assert_eq!(update.version, "1.2.0");
    assert!(
        bytes.is_err(),
        "the client accepted a signature over other bytes"
    );
}

#[tokio::test]
async fn the_cli_refuses_a_signature_over_other_bytes_before_uploading_anything() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    let key = SigningKey::generate();
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"updaterPublicKey": key.pubkey}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let d = dir("bad-sig");
    let bytes = bundle("real build", 4000);
    let path = write(&d, "app.AppImage", &bytes);
    let spec = format!("linux/x86_64/appimage={path}");
    let publish = [
        "publish",
        "--product",
        "launcher",
        "--version",
        "1.0.0",
        spec.as_str(),
    ];

    let cases = [
        (
            "over other bytes",
            key.sign(b"another build", "app.AppImage"),
            "does not match the file's bytes",
        ),
        (
            "with another key",
            SigningKey::generate().sign(&bytes, "app.AppImage"),
            "was made with key",
        ),
    ];
    for (what, sig, expected) in cases {
        std::fs::write(format!("{path}.sig"), sig).unwrap();
        let run = release(&hub, &app, &publish);
        assert!(!run.ok, "{what}: {run}");
        assert!(
            run.stderr.contains("does not verify")
                && run.stderr.contains(expected)
                && run.stderr.contains("nothing was uploaded"),
            "{what}: {run}"
        );
        assert_eq!(
            crate::api::count_rows(&hub, "uploads", "true").await,
            0,
            "{what}: presigned"
        );
    }
    let stored = walk(&hub.bucket_dir);
    assert!(stored.is_empty(), "objects were stored: {stored:?}");

    // Signed right, it publishes.
    std::fs::write(format!("{path}.sig"), key.sign(&bytes, "app.AppImage")).unwrap();
    let run = release(&hub, &app, &publish);
    assert!(run.ok, "{run}");
    // And the Hub refuses a signature naming another version (Tauri's updater would).
    let mut other = Artifact::new("linux", "x86_64", "appimage", "versioned");
    let sig = minisign::sign(
        None,
        &key.secret,
        std::io::Cursor::new(&other.bytes),
        Some("timestamp:1\tfile:x\tversion:9.9.9"),
        None,
    )
    .unwrap();
    other.signature = Some(STANDARD.encode(sig.to_string()));
    let (status, body): (u16, Value) =
        crate::api::publish(&hub, &app, "launcher", "2.0.0", None, &[other]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("signature_version_mismatch")),
        "{body}"
    );
}

/// Files under `dir` (s3s-fs keeps metadata in dot-files, skipped).
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            out.push(p.display().to_string());
        }
    }
    out
}
