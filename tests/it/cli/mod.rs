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

mod commands;
mod packs;
mod publish;
mod verify;

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
