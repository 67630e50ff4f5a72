//! The pinned third-party tools some tests drive, provisioned by the tests themselves on first
//! use: `npm ci` of a pinned `package.json` + `package-lock.json`, or a Python venv from a
//! pinned `requirements.txt`. Each install happens once per checkout (a stamp holding the
//! lock file's sha256 says it is current), under a file lock so parallel tests and parallel
//! test processes never race. A tool that cannot be provisioned fails the test that needs it
//! with one line naming the fix: a test that did not run never passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::support::{root, sha256_hex};

/// `tests/blob-npm`, with the official `@vercel/blob` package installed in its
/// `node_modules` (`tests/it/blob.rs` runs its script there with `node`).
pub fn vercel_blob() -> PathBuf {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    installed(&DONE, || provision_npm("tests/blob-npm", "@vercel/blob"))
}

/// `tests/oidc-provider`, with the certified `oidc-provider` package installed in its
/// `node_modules` (`tests/it/signin/oidc_provider.rs` runs its `server.mjs` there with `node`).
pub fn oidc_provider() -> PathBuf {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    installed(&DONE, || {
        provision_npm("tests/oidc-provider", "oidc-provider")
    })
}

/// `tests/console`, with `playwright-core` installed in its `node_modules`, and the path of
/// Debian's `chromium` it drives (`tests/it/console.rs`). Playwright never downloads a
/// browser here: the machine's own is used, and its absence fails the test naming the fix.
pub fn console_browser() -> (PathBuf, PathBuf) {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = installed(&DONE, || provision_npm("tests/console", "playwright-core"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        runs(&chromium.to_string_lossy()),
        "the console tests drive Debian's chromium and {} does not run: apt-get install \
         chromium (or set CHROMIUM to a Chromium binary)",
        chromium.display()
    );
    (dir, chromium)
}

/// `tests/contract/.venv/bin/schemathesis` (`tests/it/contract.rs`).
pub fn schemathesis() -> PathBuf {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    installed(&DONE, || provision_venv("tests/contract")).join("bin/schemathesis")
}

/// The outcome of `provision`, run once per test process; a failure fails the calling test
/// with its one line.
fn installed(
    done: &OnceLock<Result<PathBuf, String>>,
    provision: impl FnOnce() -> Result<PathBuf, String>,
) -> PathBuf {
    match done.get_or_init(provision) {
        Ok(path) => path.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `npm ci` in `dir` unless its stamp says the lock file is already installed; then checks
/// that `node` runs (the tests need it, not only npm).
fn provision_npm(dir: &str, package: &str) -> Result<PathBuf, String> {
    let folder = root().join(dir);
    let fix = format!(
        "install Node.js >= 20 with npm (Debian: apt-get install nodejs npm), then run the \
         tests again; they run `npm ci --prefix {dir}` themselves"
    );
    if !runs("node") {
        return Err(format!(
            "{package} is needed and `node` is not on PATH: {fix}"
        ));
    }
    let lock = read(&folder.join("package-lock.json"))?;
    let stamp = folder.join("node_modules/.atlas-installed");
    with_lock(&folder, &stamp, &sha256_hex(&lock), || {
        if !runs("npm") {
            return Err(format!(
                "{package} is needed and `npm` is not on PATH: {fix}"
            ));
        }
        eprintln!("tests: npm ci --prefix {dir} (once; {package}, pinned by package-lock.json)");
        let out = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&folder)
            .output()
            .map_err(|e| format!("npm ci --prefix {dir} could not start: {e}: {fix}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci --prefix {dir} failed (is the npm registry reachable?): {}",
                last_line(&out.stderr)
            ));
        }
        Ok(())
    })?;
    Ok(folder)
}

/// A venv at `dir/.venv` with `dir/requirements.txt` installed, unless its stamp says it is
/// already current.
fn provision_venv(dir: &str) -> Result<PathBuf, String> {
    let folder = root().join(dir);
    let venv = folder.join(".venv");
    let requirements = read(&folder.join("requirements.txt"))?;
    let stamp = venv.join(".atlas-installed");
    let fix = "install Python 3 with venv and pip (Debian: apt-get install python3 python3-venv), \
               then run the tests again; they build the venv themselves";
    with_lock(&folder, &stamp, &sha256_hex(&requirements), || {
        if !runs("python3") {
            return Err(format!(
                "schemathesis is needed and `python3` is not on PATH: {fix}"
            ));
        }
        eprintln!("tests: a venv in {dir}/.venv from {dir}/requirements.txt (once)");
        if !venv.join("bin/pip").is_file() {
            let out = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .output()
                .map_err(|e| format!("python3 -m venv could not start: {e}: {fix}"))?;
            if !out.status.success() {
                return Err(format!(
                    "python3 -m venv {dir}/.venv failed ({}): {fix}",
                    last_line(&out.stderr)
                ));
            }
        }
        let out = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(folder.join("requirements.txt"))
            .output()
            .map_err(|e| format!("pip could not start: {e}: {fix}"))?;
        if !out.status.success() {
            return Err(format!(
                "pip install -r {dir}/requirements.txt failed (is PyPI reachable?): {}",
                last_line(&out.stderr)
            ));
        }
        Ok(())
    })?;
    Ok(venv)
}

/// Runs `install` unless `stamp` holds `digest`, holding an exclusive lock on a file in
/// `folder` meanwhile (other test processes wait, then find the stamp written); writes the
/// stamp after a successful install.
fn with_lock(
    folder: &Path,
    stamp: &Path,
    digest: &str,
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    // Threads of this process first (a file lock is per open file, so two threads of one
    // process would each get their own), then other processes.
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let current = || std::fs::read_to_string(stamp).is_ok_and(|s| s.trim() == digest);
    if current() {
        return Ok(());
    }
    let lock_path = folder.join(".install.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if !current() {
        install()?;
        std::fs::write(stamp, digest)
            .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The last non-empty line a failed command printed (its error, usually).
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing printed)")
        .trim()
        .to_owned()
}

/// The Blob cross-check run with no `node` on `PATH` fails, naming the fix: never `ok`.
#[test]
fn a_test_whose_tool_is_missing_fails_naming_the_fix() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "blob::hub_tokens_and_the_official_vercel_blob_package_agree",
            "--test-threads",
            "1",
        ])
        // An empty folder as the whole PATH: no node, no npm.
        .env("PATH", crate::support::work_dir().join("empty-path"))
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "passed without node:\n{output}");
    assert!(output.contains("1 failed"), "{output}");
    assert!(
        output.contains("`node` is not on PATH") && output.contains("apt-get install nodejs npm"),
        "the failure does not name the fix:\n{output}"
    );
}
