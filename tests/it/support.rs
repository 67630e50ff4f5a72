//! Test harness: one private PostgreSQL cluster and one local S3 store per test run, a fresh
//! migrated database and bucket per test, and the real `atlas-hub serve` binary as a child
//! process reached over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use atlas_hub::dev::{free_port, postgres::LocalPostgres, s3::LocalS3};

/// Pepper used by every test Hub.
pub const PEPPER: &str = "test-pepper-0123456789abcdef0123456789abcdef";

/// Services shared by the whole test run.
pub struct Services {
    /// Port of the private cluster.
    pub pg_port: u16,
    /// Local S3 endpoint.
    pub s3_endpoint: String,
    /// Root folder of the S3 store (bucket = sub-folder).
    pub s3_root: PathBuf,
}

/// Where test data lives (inside `target/`, ignored by git).
pub fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("atlas-it")
}

/// Starts (once) the cluster and the S3 store on a thread that lives as long as the test
/// process, so `--pdeathsig` stops the servers when the run ends.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let dir = work_dir();
                remove_stale_runs(&dir);
                let pg_port = free_port().unwrap();
                // One cluster per test process, so concurrent `cargo test` runs never share one.
                let pg_dir = dir.join(format!("pg-{}", std::process::id()));
                let pg = LocalPostgres::start(&pg_dir, pg_port).expect("private PostgreSQL");
                let s3_root = dir.join(format!("s3-{}", std::process::id()));
                let s3 = LocalS3::start(&s3_root, "unused", 0)
                    .await
                    .expect("local S3");
                template_database(&pg).await;
                tx.send(Services {
                    pg_port,
                    s3_endpoint: s3.endpoint(),
                    s3_root,
                })
                .unwrap();
                std::future::pending::<()>().await;
                drop((pg, s3));
            });
        });
        rx.recv().expect("services thread died while starting")
    })
}

/// Removes the cluster and store folders of earlier test processes that have exited.
fn remove_stale_runs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("pg-")
            .or_else(|| name.strip_prefix("s3-"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("pg"));
}

async fn template_database(pg: &LocalPostgres) {
    let (client, conn) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // Databases of earlier runs (the cluster folder is reused to skip initdb).
    let old = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 't\\_%' OR datname = 'atlas_template'",
            &[],
        )
        .await
        .unwrap();
    for row in old {
        let name: String = row.get(0);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
    client
        .batch_execute("CREATE DATABASE atlas_template")
        .await
        .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .arg("migrate")
        .env("DATABASE_URL", pg.url("atlas_template"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "migrating the template database failed");
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for a test's database and bucket.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh database: migrated (cloned from the template) unless `migrated` is false.
pub async fn fresh_database(migrated: bool) -> String {
    let s = services();
    let name = unique_name("t");
    let (client, conn) = tokio_postgres::connect(
        &format!("postgres://atlas@127.0.0.1:{}/postgres", s.pg_port),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let sql = if migrated {
        format!("CREATE DATABASE {name} TEMPLATE atlas_template")
    } else {
        format!("CREATE DATABASE {name}")
    };
    client.batch_execute(&sql).await.unwrap();
    format!("postgres://atlas@127.0.0.1:{}/{name}", s.pg_port)
}

/// Connects to a test database directly (for assertions on rows).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A running `atlas-hub serve` with its own database and bucket.
pub struct TestHub {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Its database.
    pub database_url: String,
    /// Its bucket folder in the local S3 store.
    pub bucket_dir: PathBuf,
    /// Its bucket name.
    pub bucket: String,
    /// Where its stderr (the request log) goes.
    pub log_path: PathBuf,
    child: Child,
}

/// Options for [`TestHub::start_with`].
#[derive(Default)]
pub struct HubOptions {
    /// Use this database instead of a fresh migrated one.
    pub database_url: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl TestHub {
    /// A Hub on a fresh migrated database and an empty bucket.
    pub async fn start() -> TestHub {
        Self::start_with(HubOptions::default()).await
    }

    /// A Hub with options.
    pub async fn start_with(options: HubOptions) -> TestHub {
        let s = services();
        let database_url = match options.database_url {
            Some(url) => url,
            None => fresh_database(true).await,
        };
        let bucket = unique_name("b").replace('_', "-");
        let bucket_dir = s.s3_root.join(&bucket);
        std::fs::create_dir_all(&bucket_dir).unwrap();
        let logs = work_dir().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log_path = logs.join(format!("{bucket}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas-hub"));
        cmd.args(["serve", "--port", "0"])
            .env("DATABASE_URL", &database_url)
            .env("ATLAS_S3_ENDPOINT", &s.s3_endpoint)
            .env("ATLAS_S3_BUCKET", &bucket)
            .env("ATLAS_S3_ACCESS_KEY_ID", atlas_hub::dev::s3::ACCESS_KEY)
            .env("ATLAS_S3_SECRET_ACCESS_KEY", atlas_hub::dev::s3::SECRET_KEY)
            .env("ATLAS_TOKEN_PEPPER", PEPPER)
            .env_remove("ATLAS_HUB_URL")
            .env_remove("ATLAS_STORAGE")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap());
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn atlas-hub serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("Atlas Hub listening on ") {
                        break rest.trim().to_owned();
                    }
                }
                _ => panic!(
                    "atlas-hub serve exited before listening; log: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        TestHub {
            url,
            database_url,
            bucket_dir,
            bucket,
            log_path,
            child,
        }
    }

    /// `self.url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The request log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that does not follow redirects (tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs `curl` with `args`, returning (exit success, stdout).
pub fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        // A stalled transfer fails the test instead of hanging the whole run.
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl must be installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Writes `bytes` to a temp file and returns its path.
pub fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = work_dir().join("files").join(unique_name("f"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Project root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Hub configuration on `database_url` and the shared S3 store, as a function reads it.
pub fn config(database_url: &str, extra: &[(&str, &str)]) -> atlas_hub::config::Config {
    let s = services();
    let mut vars: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("ATLAS_HUB_URL", "http://127.0.0.1:9"),
        ("ATLAS_S3_ENDPOINT", s.s3_endpoint.as_str()),
        ("ATLAS_S3_BUCKET", "unused"),
        ("ATLAS_S3_ACCESS_KEY_ID", atlas_hub::dev::s3::ACCESS_KEY),
        ("ATLAS_S3_SECRET_ACCESS_KEY", atlas_hub::dev::s3::SECRET_KEY),
        ("ATLAS_TOKEN_PEPPER", PEPPER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    atlas_hub::config::Config::from_lookup(&|k| vars.get(k).cloned()).expect("test config")
}

/// The path of a function binary built from `api/` (`[[bin]]` name `bin`).
pub fn function_binary(bin: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_atlas-hub")).with_file_name(bin)
}

/// One `api/` function binary started alone, as Vercel runs it (`VERCEL_DEV_PORT`).
pub struct Function {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Where its stderr (the request log) goes.
    pub log_path: PathBuf,
    child: Child,
}

impl Function {
    /// Starts the `[[bin]]` named `bin` on `database_url`, with its own empty bucket.
    pub fn start(bin: &str, database_url: &str) -> Function {
        let s = services();
        let bucket = unique_name("fn").replace('_', "-");
        std::fs::create_dir_all(s.s3_root.join(&bucket)).unwrap();
        let logs = work_dir().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log_path = logs.join(format!("{bucket}-{bin}.log"));
        let port = free_port().unwrap();
        let mut child = Command::new(function_binary(bin))
            .env("VERCEL_DEV_PORT", port.to_string())
            .env("DATABASE_URL", database_url)
            .env("ATLAS_HUB_URL", format!("http://127.0.0.1:{port}"))
            .env("ATLAS_S3_ENDPOINT", &s.s3_endpoint)
            .env("ATLAS_S3_BUCKET", &bucket)
            .env("ATLAS_S3_ACCESS_KEY_ID", atlas_hub::dev::s3::ACCESS_KEY)
            .env("ATLAS_S3_SECRET_ACCESS_KEY", atlas_hub::dev::s3::SECRET_KEY)
            .env("ATLAS_TOKEN_PEPPER", PEPPER)
            .env_remove("ATLAS_STORAGE")
            .env_remove("ATLAS_DB_POOLER")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("VERCEL_IPC_PATH")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn function {bin}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let expected = format!("Dev server listening: {port}");
        loop {
            match lines.next() {
                Some(Ok(line)) if line.trim() == expected => break,
                Some(Ok(_)) => continue,
                _ => panic!(
                    "function {bin} exited before listening; stderr: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Function {
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            child,
        }
    }

    /// `self.url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Its request log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON log lines carrying `request_id` (there should be exactly one per request).
pub fn log_lines_for(log: &str, request_id: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["requestId"] == request_id && v.get("status").is_some())
        .collect()
}
