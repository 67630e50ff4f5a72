//! Function binaries started as Vercel starts them: `VERCEL_DEV_PORT`, a clean environment,
//! ready when they print "Dev server listening". Memory and socket inspection via /proc.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running function binary.
pub struct Function {
    pub name: String,
    pub port: u16,
    child: Child,
    /// From exec to the "Dev server listening" line.
    pub ready_after: Duration,
}

impl Function {
    /// Starts `bin` with exactly `env` (plus `VERCEL_DEV_PORT`), stderr (the request log)
    /// to `log` or discarded. `started` is taken just before exec. With a `wrapper` (a
    /// program and its arguments, e.g. valgrind, which must pass the function's stdout
    /// through) `bin` is run by it, and the pid is the wrapper's.
    pub fn start_under(
        wrapper: &[String],
        bin: &Path,
        env: &[(String, String)],
        log: Option<&Path>,
    ) -> Result<Function, String> {
        let port = atlas_hub::dev::free_port().map_err(|e| e.to_string())?;
        let stderr = match log {
            Some(p) => Stdio::from(std::fs::File::create(p).map_err(|e| e.to_string())?),
            None => Stdio::null(),
        };
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.env_clear();
        if !wrapper.is_empty() {
            // A wrapper finds its own helpers by PATH (valgrind its tools).
            cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("VERCEL_DEV_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| match wrapper.first() {
            Some(program) => format!("{program}: {e} (bench/run needs it; see its header)"),
            None => format!("{}: {e}", bin.display()),
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the start line, then keeps draining stdout so the pipe never fills.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !sent && line.contains("Dev server listening") {
                            let _ = tx.send(Instant::now());
                            sent = true;
                        }
                    }
                }
            }
        });
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A function under valgrind takes a while to start.
        let patience = Duration::from_secs(if wrapper.is_empty() { 20 } else { 120 });
        match rx.recv_timeout(patience) {
            Ok(at) => Ok(Function {
                name,
                port,
                child,
                ready_after: at - started,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "{name} did not start (exit status {status:?}); rerun with ATLAS_BENCH_LOGS=1 to keep its stderr"
                ))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resident set size in bytes (VmRSS).
    pub fn rss_bytes(&self) -> Result<u64, String> {
        rss_bytes(self.pid())
    }

    /// CPU seconds used so far ([`cpu_seconds`]).
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        cpu_seconds(self.pid())
    }

    /// Stops it (SIGKILL: nothing is left to flush in a benchmark).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmRSS".to_owned())
}

/// CPU time used so far by every thread of each of `pids`, in nanoseconds, by thread: the
/// scheduler's own account (`/proc/<pid>/task/<tid>/schedstat`), where `/proc/<pid>/stat`
/// counts 10 ms ticks, too coarse for one statistics write. Compare two snapshots with
/// [`cpu_ns_between`]: a thread that ends between them must not take its past time away.
pub fn cpu_ns_by_thread(pids: &[u32]) -> Result<HashMap<u32, u64>, String> {
    let mut threads = HashMap::new();
    for pid in pids {
        let tasks = format!("/proc/{pid}/task");
        // A process that ended since it was listed has nothing more to add.
        let Ok(listing) = std::fs::read_dir(&tasks) else {
            continue;
        };
        for task in listing.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let ns = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{tasks}/{tid}/schedstat: {text}"))?;
            threads.insert(tid, ns);
        }
    }
    if threads.is_empty() {
        return Err(format!(
            "no schedstat readable for {pids:?} (a kernel without CONFIG_SCHEDSTATS?)"
        ));
    }
    Ok(threads)
}

/// CPU nanoseconds between two [`cpu_ns_by_thread`] snapshots: each thread's own growth, a
/// thread new in `after` with all its time.
pub fn cpu_ns_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// The PostgreSQL server whose postmaster is `postmaster` and every process it started
/// (backends, WAL writer, checkpointer, …), by `/proc/*/stat`'s parent field.
pub fn postgres_pids(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the name (which may hold spaces): state, then the parent's pid.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// CPU time the process has used so far (user + system), in seconds: fields 14 and 15 of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s (Linux reports USER_HZ, 100 on every
/// architecture the bench runs on).
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // After the name, field 3 (state) is at index 0, so utime (14) is at 11, stime (15) at 12.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => Err(format!("/proc/{pid}/stat: no utime/stime")),
    }
}

/// The process's inet sockets that are not listening (TCP in any state but LISTEN, any UDP):
/// evidence of network I/O. Returns `(description)` per socket.
pub fn active_inet_sockets(pid: u32) -> Result<Vec<String>, String> {
    let mut inodes = HashSet::new();
    let fd_dir = format!("/proc/{pid}/fd");
    for entry in std::fs::read_dir(&fd_dir).map_err(|e| format!("{fd_dir}: {e}"))? {
        let Ok(entry) = entry else { continue };
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut found = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let path = format!("/proc/{pid}/net/{table}");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.contains(f[9]) {
                continue;
            }
            let listening = table.starts_with("tcp") && f[3] == "0A";
            if !listening {
                found.push(format!("{table} {} -> {} state {}", f[1], f[2], f[3]));
            }
        }
    }
    Ok(found)
}

/// Size in bytes of a file.
pub fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether an ELF file still has a symbol table (i.e. is not stripped).
pub fn has_symtab(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(8).any(|w| w == b".symtab\0"))
}
