//! Load generators: `wrk` against function binaries, `pgbench` for the database floors.
//! Everything targets 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

/// One load run's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LoadResult {
    pub tool: String,
    pub target: String,
    pub connections: u32,
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Responses outside 2xx/3xx (wrk) or failed transactions (pgbench).
    pub bad_responses: u64,
    /// Connect/read/write errors and timeouts (wrk).
    pub socket_errors: u64,
}

impl LoadResult {
    pub fn clean(&self) -> bool {
        self.bad_responses == 0 && self.socket_errors == 0 && self.requests > 0
    }
}

/// What a wrk run sends: GETs cycling through `paths`, or POSTs built by a Lua body template.
pub enum Requests<'a> {
    Get(&'a [String]),
    /// `(path, headers, body format)`: the body's `%d`s get the thread number and a counter.
    PostUnique(&'a str, &'a [(String, String)], &'a str),
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#;

fn script(requests: &Requests<'_>) -> String {
    match requests {
        Requests::Get(paths) => {
            let list: Vec<String> = paths.iter().map(|p| lua_string(p)).collect();
            // Requests are formatted once per thread, so Lua costs little per request.
            format!(
                "local paths = {{{}}}\nlocal n = #paths\nlocal reqs = {{}}\nlocal i = 0\n\
                 init = function(args)\n  for k = 1, n do reqs[k] = wrk.format(\"GET\", paths[k]) end\n  \
                 i = math.random(n) - 1\nend\n\
                 request = function()\n  i = i % n + 1\n  return reqs[i]\nend\n{DONE}",
                list.join(",\n")
            )
        }
        Requests::PostUnique(path, headers, body) => {
            let hs: Vec<String> = headers
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_string(v)))
                .collect();
            format!(
                "local threads = 0\nsetup = function(thread) thread:set(\"tid\", threads); threads = threads + 1 end\n\
                 local counter = 0\nlocal headers = {{{}}}\n\
                 request = function()\n  counter = counter + 1\n  \
                 return wrk.format(\"POST\", {}, headers, string.format({}, tid, counter))\nend\n{DONE}",
                hs.join(", "),
                lua_string(path),
                lua_string(body)
            )
        }
    }
}

/// Runs wrk against `base` (`http://127.0.0.1:port`).
pub fn wrk(
    work_dir: &Path,
    target: &str,
    base: &str,
    requests: &Requests<'_>,
    connections: u32,
    threads: u32,
    seconds: u32,
) -> Result<LoadResult, String> {
    let script_path = work_dir.join(format!("{}.lua", target.replace(['/', ' '], "_")));
    std::fs::write(&script_path, script(requests)).map_err(|e| e.to_string())?;
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "5s", "-s"])
        .arg(&script_path)
        .arg(base)
        .output()
        .map_err(|e| format!("wrk: {e} (install it: apt-get install wrk)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCHJSON "))
        .ok_or_else(|| {
            format!(
                "wrk {target}: no result ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let v: Value = serde_json::from_str(line).map_err(|e| format!("wrk output {line}: {e}"))?;
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let seconds = n("duration_us") / 1e6;
    Ok(LoadResult {
        tool: "wrk".into(),
        target: target.into(),
        connections,
        seconds,
        requests: n("requests") as u64,
        per_second: n("requests") / seconds.max(1e-9),
        p50_ms: n("p50") / 1e3,
        p90_ms: n("p90") / 1e3,
        p99_ms: n("p99") / 1e3,
        max_ms: n("max") / 1e3,
        bad_responses: n("status") as u64,
        socket_errors: (n("connect") + n("read") + n("write") + n("timeout")) as u64,
    })
}

/// How pgbench sends statements.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Named prepared statements (parse once per connection).
    Prepared,
    /// Unnamed statements (parse and plan every time): what works through PgBouncer 1.18.
    Extended,
}

/// A pgbench run.
pub struct Pgbench<'a> {
    pub bin: &'a Path,
    pub port: u16,
    pub database: &'a str,
    pub script: &'a str,
    pub mode: Mode,
    pub clients: u32,
    pub threads: u32,
    pub seconds: u32,
    /// Share of transactions logged for latency percentiles (0 disables the log).
    pub sampling: f64,
}

/// Runs pgbench; latency percentiles from its per-transaction log (sampled).
pub fn pgbench(work_dir: &Path, target: &str, p: &Pgbench<'_>) -> Result<LoadResult, String> {
    let slug = target.replace(['/', ' '], "_");
    let script_path = work_dir.join(format!("{slug}.sql"));
    std::fs::write(&script_path, p.script).map_err(|e| e.to_string())?;
    let log_dir = work_dir.join(format!("pgbench-{slug}"));
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(p.bin);
    cmd.args(["-n", "-h", "127.0.0.1", "-U", "atlas"])
        .args(["-p", &p.port.to_string()])
        .args([
            "-M",
            match p.mode {
                Mode::Prepared => "prepared",
                Mode::Extended => "extended",
            },
        ])
        .args(["-c", &p.clients.to_string(), "-j", &p.threads.to_string()])
        .args(["-T", &p.seconds.to_string(), "-f"])
        .arg(&script_path);
    if p.sampling > 0.0 {
        cmd.arg("-l")
            .arg(format!("--sampling-rate={}", p.sampling))
            .arg(format!("--log-prefix={}", log_dir.join("tx").display()));
    }
    cmd.arg(p.database);
    let out = cmd.output().map_err(|e| format!("pgbench: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgbench {target} failed ({}): {} {}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |prefix: &str| -> Option<f64> {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
    };
    let tps = field("tps = ").ok_or_else(|| format!("pgbench {target}: no tps in {stdout}"))?;
    let processed = field("number of transactions actually processed:").unwrap_or(0.0);
    let failed = field("number of failed transactions:").unwrap_or(0.0);
    let mut lat_us = read_latencies(&log_dir)?;
    lat_us.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((q / 100.0) * (lat_us.len() - 1) as f64).round() as usize;
        lat_us[i.min(lat_us.len() - 1)] as f64 / 1e3
    };
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok(LoadResult {
        tool: "pgbench".into(),
        target: target.into(),
        connections: p.clients,
        seconds: p.seconds as f64,
        requests: processed as u64,
        per_second: tps,
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        max_ms: lat_us.last().map(|v| *v as f64 / 1e3).unwrap_or(f64::NAN),
        bad_responses: failed as u64,
        socket_errors: 0,
    })
}

/// Per-transaction latencies (µs, third column) from every pgbench log file in `dir`.
fn read_latencies(dir: &Path) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .collect();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| e.to_string())?;
        out.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2))
                .filter_map(|v| v.parse::<u64>().ok()),
        );
    }
    Ok(out)
}
