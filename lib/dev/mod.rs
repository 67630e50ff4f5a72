//! What the local command starts when nothing is configured: a private PostgreSQL from the
//! OS's binaries and an S3-compatible store (s3s-fs) on loopback. Tests and the benchmark
//! reuse both, and PgBouncer.

pub mod pgbouncer;
pub mod postgres;
pub mod s3;

use std::path::Path;
use std::process::Command;

/// The unprivileged account servers run as when this process is root (`initdb` and
/// `postgres` refuse root).
#[derive(Debug, Clone)]
pub struct RunAs {
    /// Account name, for `setpriv --reuid`.
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `None` when not root; else the `postgres` account (or `nobody`).
    pub fn for_servers() -> Result<Option<RunAs>, String> {
        if current_uid()? != 0 {
            return Ok(None);
        }
        let passwd =
            std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
        for wanted in ["postgres", "nobody"] {
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() > 3
                    && f[0] == wanted
                    && let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse())
                {
                    return Ok(Some(RunAs {
                        user: wanted.to_owned(),
                        uid,
                        gid,
                    }));
                }
            }
        }
        Err("running as root and no `postgres` or `nobody` account exists to run PostgreSQL".into())
    }

    /// Makes `dir` (created if needed) owned by this account, and every ancestor
    /// traversable by it (adds only the search bit where missing, e.g. a 0700 temp dir).
    pub fn prepare_dir(&self, dir: &Path) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        let mut ancestor = dir.parent();
        while let Some(a) = ancestor {
            if let Ok(meta) = std::fs::metadata(a) {
                let mode = meta.permissions().mode();
                if mode & 0o001 == 0 {
                    let mut p = meta.permissions();
                    p.set_mode(mode | 0o001);
                    std::fs::set_permissions(a, p)
                        .map_err(|e| format!("chmod o+x {}: {e}", a.display()))?;
                }
            }
            ancestor = a.parent();
        }
        Ok(())
    }

    /// Wraps `program` so it runs as this account.
    pub fn command(&self, program: &Path, death_signal: Option<&str>) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups");
        if let Some(sig) = death_signal {
            c.arg(format!("--pdeathsig={sig}"));
        }
        c.arg(program);
        c
    }
}

/// A command for `program`, as `run_as` when given, dying with its parent when
/// `death_signal` is set (so a killed Hub never leaves a server behind).
pub fn server_command(
    program: &Path,
    run_as: Option<&RunAs>,
    death_signal: Option<&str>,
) -> Command {
    match (run_as, death_signal) {
        (Some(r), sig) => r.command(program, sig),
        (None, Some(sig)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--pdeathsig={sig}")).arg(program);
            c
        }
        (None, None) => Command::new(program),
    }
}

fn current_uid() -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("/proc/self: {e}"))
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
