//! A private PostgreSQL cluster from the OS's installed binaries, initialised once in a
//! project-local folder and started as a child process that dies with its parent.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{RunAs, server_command};

/// A running private cluster.
pub struct LocalPostgres {
    /// The cluster's data directory.
    pub data_dir: PathBuf,
    /// Loopback TCP port.
    pub port: u16,
    child: Child,
}

/// The PostgreSQL binaries directory: `ATLAS_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin`, else wherever `initdb` is on `PATH`.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ATLAS_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .ok_or_else(|| {
            "PostgreSQL server binaries not found: install them (apt-get install postgresql) \
             or set DATABASE_URL to an existing database"
                .to_owned()
        })
}

impl LocalPostgres {
    /// Initialises `data_dir` if needed and starts the server on `port`. The server gets
    /// `death_signal` when this thread's process exits (see `setpriv --pdeathsig`).
    pub fn start(data_dir: &Path, port: u16) -> Result<Self, String> {
        let bin = bin_dir()?;
        let run_as = RunAs::for_servers()?;
        let data_dir = absolute(data_dir)?;
        if let Some(r) = &run_as {
            r.prepare_dir(&data_dir)?;
        } else {
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("{}: {e}", data_dir.display()))?;
        }
        if !data_dir.join("PG_VERSION").exists() {
            let out = server_command(&bin.join("initdb"), run_as.as_ref(), None)
                .arg("-D")
                .arg(&data_dir)
                .args([
                    "-U",
                    "atlas",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("initdb: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        // A server left by a hard-killed run holds the lock; a stale pid file is fine.
        let log = std::fs::File::create(data_dir.join("server.log"))
            .map_err(|e| format!("server.log: {e}"))?;
        if let Some(r) = &run_as {
            let _ = std::os::unix::fs::chown(data_dir.join("server.log"), Some(r.uid), Some(r.gid));
        }
        let child = server_command(&bin.join("postgres"), run_as.as_ref(), Some("INT"))
            .arg("-D")
            .arg(&data_dir)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data_dir.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        let mut pg = LocalPostgres {
            data_dir,
            port,
            child,
        };
        pg.wait_ready(Duration::from_secs(30))?;
        Ok(pg)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!(
                    "postgres exited ({status}) while starting on port {}: {}",
                    self.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::fs::read_to_string(self.data_dir.join("postmaster.pid"))
                    .is_ok_and(|pid| pid.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
            {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "postgres did not become ready on port {}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection string for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://atlas@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` unless it exists.
    pub async fn ensure_database(&self, database: &str) -> Result<(), String> {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE \"{database}\""))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fast shutdown, waiting for the server to exit.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}
