//! A transaction-mode PgBouncer in front of a local cluster (tests of the pooler path).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{RunAs, server_command};

/// A running PgBouncer.
pub struct LocalPgBouncer {
    pub port: u16,
    child: Child,
}

impl LocalPgBouncer {
    /// Starts PgBouncer (`pool_mode = transaction`) on `port`, forwarding every database to
    /// the cluster on `pg_port`; its files live in `dir`.
    pub fn start(dir: &Path, port: u16, pg_port: u16) -> Result<Self, String> {
        let run_as = RunAs::for_servers()?;
        let dir = std::path::absolute(dir).map_err(|e| e.to_string())?;
        match &run_as {
            Some(r) => r.prepare_dir(&dir)?,
            None => std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?,
        }
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port={pg_port} user=atlas\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n\
                 auth_file = {auth}\npool_mode = transaction\nmax_client_conn = 500\n\
                 default_pool_size = 20\nunix_socket_dir =\nignore_startup_parameters = extra_float_digits\n",
                auth = dir.join("users.txt").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(dir.join("users.txt"), "\"atlas\" \"\"\n").map_err(|e| e.to_string())?;
        let program = which("pgbouncer").ok_or("pgbouncer not found: apt-get install pgbouncer")?;
        let child = server_command(&program, run_as.as_ref(), Some("TERM"))
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("pgbouncer: {e}"))?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("pgbouncer did not listen on {port}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { port, child })
    }

    /// Immediate shutdown (SIGTERM, what a service manager's stop sends): PgBouncer tells
    /// its clients it is shutting down, closes every connection and exits; waits for that.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// A connection string for `database` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://atlas@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for LocalPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|p| p.join(name))
        .find(|p| p.exists())
}
