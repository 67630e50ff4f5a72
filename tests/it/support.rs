//! Test harness: one private PostgreSQL cluster and one local S3 store per test run, a fresh
//! migrated database and bucket per test, and the real `atlas-hub serve` binary as a child
//! process reached over HTTP.

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
            // `s3-<pid>-private-…`: a test's own store.
            .and_then(|p| p.split('-').next()?.parse::<u32>().ok());
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
    migrate(&pg.url("atlas_template"));
}

/// `atlas-hub migrate` on `database_url`.
fn migrate(database_url: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "atlas-hub migrate failed on {database_url}"
    );
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

/// Abuse limits far above anything a test sends, so floods of publishes (soak), bad tokens
/// (bad input corpus) and fuzzing never trip them; `limits.rs` sets low ones and trips them.
/// A test's own environment overrides these.
pub const UNLIMITED: &[(&str, &str)] = &[
    ("ATLAS_LIMIT_PRESIGN", "1000000/s"),
    ("ATLAS_LIMIT_PUBLISH", "1000000/s"),
    ("ATLAS_LIMIT_AUTH_FAILURES", "1000000/s"),
];

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
    env: Vec<(String, String)>,
    port: u16,
    child: Child,
}

/// Options for [`TestHub::start_with`].
#[derive(Default)]
pub struct HubOptions {
    /// Use this database instead of a fresh migrated one.
    pub database_url: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Listen on this port (default: any free one), e.g. to register the Hub's callback URL
    /// with an identity provider started before it.
    pub port: Option<u16>,
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
        let port = options.port.unwrap_or(0);
        let (child, url) = spawn_serve(&database_url, &bucket, &log_path, &options.env, port);
        TestHub {
            url,
            database_url,
            bucket_dir,
            bucket,
            log_path,
            env: options.env,
            port,
            child,
        }
    }

    /// Kills the process with SIGKILL (`kill -9`: no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again on the same database, bucket and settings (a new port, unless
    /// it was started on a given one); its log goes on in the same file.
    pub fn restart(&mut self) {
        self.kill();
        let (child, url) = spawn_serve(
            &self.database_url,
            &self.bucket,
            &self.log_path,
            &self.env,
            self.port,
        );
        self.child = child;
        self.url = url;
    }

    /// `self.url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The request log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What the process printed on stdout so far (start-up lines).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_path.with_extension("stdout")).unwrap_or_default()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `atlas-hub serve` on a free port, appending its stderr to `log_path`; returns it
/// with its base URL once it listens.
fn spawn_serve(
    database_url: &str,
    bucket: &str,
    log_path: &Path,
    env: &[(String, String)],
    port: u16,
) -> (Child, String) {
    let s = services();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas-hub"));
    cmd.args(["serve", "--port", &port.to_string()])
        .env("DATABASE_URL", database_url)
        .env("ATLAS_S3_ENDPOINT", &s.s3_endpoint)
        .env("ATLAS_S3_BUCKET", bucket)
        .env("ATLAS_S3_ACCESS_KEY_ID", atlas_hub::dev::s3::ACCESS_KEY)
        .env("ATLAS_S3_SECRET_ACCESS_KEY", atlas_hub::dev::s3::SECRET_KEY)
        .env("ATLAS_TOKEN_PEPPER", PEPPER)
        .env_remove("ATLAS_HUB_URL")
        .env_remove("ATLAS_STORAGE")
        .envs(UNLIMITED.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn atlas-hub serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                let listening = line
                    .strip_prefix("Atlas Hub listening on ")
                    .map(|rest| rest.trim().to_owned());
                printed.push(line);
                if let Some(url) = listening {
                    break url;
                }
            }
            _ => panic!(
                "atlas-hub serve exited before listening; log: {}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            ),
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe; it goes to a file
    // beside the log (`secrets.rs` reads both).
    let stdout_path = log_path.with_extension("stdout");
    std::thread::spawn(move || {
        use std::io::Write;
        let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stdout_path)
        else {
            return;
        };
        for line in printed.into_iter().map(Ok).chain(lines) {
            let Ok(line) = line else { break };
            let _ = writeln!(file, "{line}");
        }
    });
    (child, url)
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
    .chain(UNLIMITED.iter().copied())
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
    bin: String,
    port: u16,
    env: Vec<(String, String)>,
    child: Child,
}

impl Function {
    /// Starts the `[[bin]]` named `bin` on `database_url`, with its own empty bucket.
    pub fn start(bin: &str, database_url: &str) -> Function {
        let bucket = unique_name("fn").replace('_', "-");
        std::fs::create_dir_all(services().s3_root.join(&bucket)).unwrap();
        Self::start_with(bin, database_url, &bucket, &[])
    }

    /// Starts the `[[bin]]` named `bin` on `database_url` and an existing `bucket` of the
    /// shared store (e.g. a [`TestHub`]'s), with extra environment variables.
    pub fn start_with(
        bin: &str,
        database_url: &str,
        bucket: &str,
        extra: &[(&str, &str)],
    ) -> Function {
        let logs = work_dir().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log_path = logs.join(format!("{}-{bin}.log", unique_name("fn")));
        let port = free_port().unwrap();
        let mut env = vec![
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("ATLAS_S3_BUCKET".to_owned(), bucket.to_owned()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let child = spawn_function(bin, port, &env, &log_path);
        Function {
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            bin: bin.to_owned(),
            port,
            env,
            child,
        }
    }

    /// Kills the process with SIGKILL (`kill -9`) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the binary again on the same port and settings; its log goes on in the same file.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_function(&self.bin, self.port, &self.env, &self.log_path);
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

/// Spawns the function `bin` on `port` with `env` over the defaults every function needs,
/// appending its stderr to `log_path`; returns once it listens.
fn spawn_function(bin: &str, port: u16, env: &[(String, String)], log_path: &Path) -> Child {
    let s = services();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let mut cmd = Command::new(function_binary(bin));
    cmd.env("VERCEL_DEV_PORT", port.to_string())
        .env("ATLAS_HUB_URL", format!("http://127.0.0.1:{port}"))
        .env("ATLAS_S3_ENDPOINT", &s.s3_endpoint)
        .env("ATLAS_S3_ACCESS_KEY_ID", atlas_hub::dev::s3::ACCESS_KEY)
        .env("ATLAS_S3_SECRET_ACCESS_KEY", atlas_hub::dev::s3::SECRET_KEY)
        .env("ATLAS_TOKEN_PEPPER", PEPPER)
        .env_remove("ATLAS_STORAGE")
        .env_remove("ATLAS_DB_POOLER")
        .envs(UNLIMITED.iter().copied())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("VERCEL_IPC_PATH")
        .stdout(Stdio::piped())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
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
                std::fs::read_to_string(log_path).unwrap_or_default()
            ),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// The JSON log lines carrying `request_id` (there should be exactly one per request).
pub fn log_lines_for(log: &str, request_id: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["requestId"] == request_id && v.get("status").is_some())
        .collect()
}

/// A PostgreSQL cluster of one test's own, which the test may stop and start again on the
/// same port and data (the shared cluster serves every other test). Its folder is reused
/// across runs (no initdb each time); the server stops when the test's thread ends.
pub struct PrivatePostgres {
    /// Loopback port, the same across restarts.
    pub port: u16,
    dir: PathBuf,
    server: Option<LocalPostgres>,
}

impl PrivatePostgres {
    /// Starts the cluster `name` with a fresh, migrated database `atlas`.
    pub async fn start(name: &str) -> PrivatePostgres {
        let dir = work_dir().join(format!("cluster-{name}"));
        let port = free_port().unwrap();
        let server = LocalPostgres::start(&dir, port).expect("private PostgreSQL");
        let admin = connect(&server.url("postgres")).await;
        for sql in [
            "DROP DATABASE IF EXISTS atlas WITH (FORCE)",
            "CREATE DATABASE atlas",
        ] {
            admin.batch_execute(sql).await.unwrap();
        }
        migrate(&server.url("atlas"));
        PrivatePostgres {
            port,
            dir,
            server: Some(server),
        }
    }

    /// The migrated database.
    pub fn url(&self) -> String {
        format!("postgres://atlas@127.0.0.1:{}/atlas", self.port)
    }

    /// Fast shutdown (what `pg_ctl stop` does): sessions are ended, the port refuses.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&mut self) {
        self.stop();
        self.server = Some(LocalPostgres::start(&self.dir, self.port).expect("PostgreSQL restart"));
    }

    /// Suspends every process of the cluster (SIGSTOP): connections stay open and nothing
    /// answers, as with a hung server or a black-holed network. [`Self::thaw`] (or drop)
    /// resumes them.
    pub fn freeze(&mut self) {
        for pid in self.processes() {
            signal(pid, "-STOP");
        }
    }

    /// Resumes the processes [`Self::freeze`] suspended.
    pub fn thaw(&mut self) {
        for pid in self.processes() {
            signal(pid, "-CONT");
        }
    }

    /// The postmaster and its children, by pid.
    fn processes(&self) -> Vec<u32> {
        let Some(server) = &self.server else {
            return Vec::new();
        };
        let postmaster = server.pid();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces, so split after its `)`.
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                // `s3-<pid>-private-…`: a test's own store.
                .and_then(|p| p.split('-').next()?.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// Sends `sig`; a process that already exited is fine (and not worth a line on stderr).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.thaw();
        self.stop();
    }
}

/// An S3 server (s3s-fs) of one test's own, on a folder and port of its own, which the test
/// may stop, stall or start again. (Not the shared store's folder: s3s-fs names its temporary
/// files with a per-server counter and deletes leftover ones when it starts, so two servers
/// on one folder break each other's uploads.)
pub struct PrivateS3 {
    /// Loopback port, the same across restarts.
    pub port: u16,
    root: PathBuf,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

/// What a [`PrivateS3`] does on its port.
#[derive(Clone, Copy)]
enum S3Mode {
    /// Serves S3.
    Serve,
    /// Accepts connections and never answers (a hung server or a black-holed network).
    Stall,
}

impl PrivateS3 {
    /// Serves on a free port.
    pub fn start() -> PrivateS3 {
        let mut s3 = PrivateS3 {
            port: free_port().unwrap(),
            root: work_dir().join(format!(
                "s3-{}-private-{}",
                std::process::id(),
                unique_name("s3")
            )),
            running: None,
        };
        s3.run(S3Mode::Serve);
        s3
    }

    /// Creates `bucket` (e.g. a [`TestHub`]'s, to point the Hub here).
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.join(bucket)).unwrap();
    }

    /// The endpoint to configure (`ATLAS_S3_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops: the port refuses connections and every open connection is closed.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }

    /// Serves again on the same port.
    pub fn resume(&mut self) {
        self.run(S3Mode::Serve);
    }

    /// Replaces the server with one that accepts connections and never answers.
    pub fn stall(&mut self) {
        self.run(S3Mode::Stall);
    }

    /// Runs `mode` on a thread with its own runtime: dropping the runtime on stop drops every
    /// connection task, so clients see their sockets close as if the process had died.
    fn run(&mut self, mode: S3Mode) {
        self.stop();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (root, port) = (self.root.clone(), self.port);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                match mode {
                    S3Mode::Serve => {
                        let s3 = LocalS3::start(&root, "unused", port).await;
                        ready_tx
                            .send(s3.as_ref().map(|_| ()).map_err(Clone::clone))
                            .unwrap();
                        let _ = stop_rx.await;
                        drop(s3);
                    }
                    S3Mode::Stall => {
                        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
                        let listener = match listener {
                            Ok(l) => l,
                            Err(e) => {
                                ready_tx.send(Err(e.to_string())).unwrap();
                                return;
                            }
                        };
                        ready_tx.send(Ok(())).unwrap();
                        let mut held = Vec::new();
                        tokio::pin!(stop_rx);
                        loop {
                            tokio::select! {
                                accepted = listener.accept() => {
                                    if let Ok((socket, _)) = accepted {
                                        held.push(socket);
                                    }
                                }
                                _ = &mut stop_rx => break,
                            }
                        }
                    }
                }
            });
        });
        ready_rx
            .recv()
            .expect("S3 thread died")
            .unwrap_or_else(|e| panic!("private S3 on port {}: {e}", self.port));
        self.running = Some((stop_tx, thread));
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        self.stop();
    }
}
