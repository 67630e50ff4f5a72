//! `atlas-bench`: the Hub against its floors (issue 8). Run it with `bash bench/run`, which
//! builds the release binaries it measures next to this one first.
//!
//! It starts a private PostgreSQL, the S3 store (s3s-fs, in this process) and PgBouncer,
//! seeds a catalogue, then measures each function binary as Vercel runs it (its own process,
//! `VERCEL_DEV_PORT`) against floors measured in the same run: `pgbench` running the route's
//! SQL, and a hello-world `vercel_runtime` binary for HTTP. It prints one markdown table and
//! writes it with the raw figures (JSON) to `results/`.
//!
//! Settings (environment): `ATLAS_BENCH_SECONDS` (load run length, default 10),
//! `ATLAS_BENCH_COLD_RUNS` (default 25), `ATLAS_BENCH_OUT` (default `results`),
//! `ATLAS_BENCH_LOGS=1` (keep each function's request log in the work folder),
//! `ATLAS_BENCH_ONLY` (a comma list of `sizes`, `cold`, `lookups`, `presign`, `criterion`).

mod http;
mod load;
mod procs;
mod report;
mod seed;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use atlas_hub::dev::pgbouncer::LocalPgBouncer;
use atlas_hub::dev::postgres::LocalPostgres;
use atlas_hub::dev::s3::LocalS3;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use load::{LoadResult, Mode, Pgbench, Requests};
use procs::Function;
use report::{Row, mb, ms, ratio, rps, us};

const DATABASE: &str = "atlas_bench";
const BUCKET: &str = "atlas-bench";
const PEPPER: &str = "atlas-bench-pepper-0123456789abcdef0123456789abcdef";
const APP_TOKEN: &str = "atlas_app_BenchmarkTokenBenchmarkTokenBenchmarkToke";
const CONNECTIONS: u32 = 64;
const WARMUP_SECS: u32 = 2;
const PRESIGN_SECS: u32 = 5;
const PUBLISH_RUNS: usize = 10;
const ARTIFACT_BYTES: usize = 256 * 1024;

// Budget (issue 8).
const MIN_FLOOR_RATIO: f64 = 0.35;
const MAX_P99_MS: f64 = 5.0;
const MAX_COLD_RATIO: f64 = 10.0;
const MAX_PRESIGN_P50_MS: f64 = 1.0;
const MAX_PRESIGN_CPU_US: f64 = 50.0;
const MAX_BINARY_BYTES: u64 = 12_000_000;
const MAX_RSS_BYTES: u64 = 30_000_000;
const MIN_RSS_REQUESTS: u64 = 10_000;

/// Function binaries measured (built by bench/run), and the floor binary.
const FUNCTIONS: [&str; 5] = [
    "releases_latest",
    "updater",
    "download",
    "storage_presign",
    "releases_publish",
];
const HELLO: &str = "bench_hello";

fn main() -> ExitCode {
    match run() {
        Ok(all_pass) => {
            if all_pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("atlas-bench: {e}");
            ExitCode::from(2)
        }
    }
}

struct Settings {
    seconds: u32,
    cold_runs: usize,
    out: PathBuf,
    keep_logs: bool,
}

impl Settings {
    fn from_env() -> Self {
        let num = |k: &str, d: u32| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        Settings {
            seconds: num("ATLAS_BENCH_SECONDS", 10).max(1),
            cold_runs: num("ATLAS_BENCH_COLD_RUNS", 25).max(1) as usize,
            out: std::env::var_os("ATLAS_BENCH_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("results")),
            keep_logs: std::env::var("ATLAS_BENCH_LOGS").is_ok_and(|v| v == "1"),
        }
    }
}

/// Everything the measurements share.
struct Ctx {
    settings: Settings,
    bin_dir: PathBuf,
    work: PathBuf,
    pgbench: PathBuf,
    pg_port: u16,
    bouncer_port: u16,
    s3_endpoint: String,
    raw: BTreeMap<String, Value>,
    loads: Vec<LoadResult>,
}

fn log(msg: &str) {
    eprintln!("[atlas-bench] {msg}");
}

impl Ctx {
    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    fn function_env(&self, database_url: &str, pooler: &str) -> Vec<(String, String)> {
        [
            ("DATABASE_URL", database_url),
            ("ATLAS_DB_POOLER", pooler),
            ("ATLAS_HUB_URL", "https://hub.example.com"),
            ("ATLAS_S3_ENDPOINT", &self.s3_endpoint),
            ("ATLAS_S3_BUCKET", BUCKET),
            ("ATLAS_S3_ACCESS_KEY_ID", atlas_hub::dev::s3::ACCESS_KEY),
            ("ATLAS_S3_SECRET_ACCESS_KEY", atlas_hub::dev::s3::SECRET_KEY),
            ("ATLAS_TOKEN_PEPPER", PEPPER),
            // The limits stay on (their statements are measured) but out of reach of one
            // token presigning as fast as it can.
            ("ATLAS_LIMIT_PRESIGN", "1000000/s"),
            ("ATLAS_LIMIT_PUBLISH", "1000000/s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        // Experiments: the pool size of the measured functions (default: the Hub's).
        .chain(
            std::env::var("ATLAS_DB_POOL_SIZE")
                .ok()
                .map(|v| ("ATLAS_DB_POOL_SIZE".to_owned(), v)),
        )
        .collect()
    }

    fn direct_url(&self) -> String {
        format!("postgres://atlas@127.0.0.1:{}/{DATABASE}", self.pg_port)
    }

    fn bouncer_url(&self) -> String {
        format!(
            "postgres://atlas@127.0.0.1:{}/{DATABASE}",
            self.bouncer_port
        )
    }

    fn start(&self, name: &str, env: &[(String, String)]) -> Result<Function, String> {
        let log_path = self
            .settings
            .keep_logs
            .then(|| self.work.join(format!("{name}-{}.log", self.loads.len())));
        Function::start(&self.bin(name), env, log_path.as_deref())
    }

    fn wrk(
        &mut self,
        target: &str,
        base: &str,
        requests: &Requests<'_>,
        connections: u32,
        threads: u32,
        seconds: u32,
    ) -> Result<LoadResult, String> {
        let r = load::wrk(
            &self.work,
            target,
            base,
            requests,
            connections,
            threads,
            seconds,
        )?;
        log(&format!(
            "{target}: {} p50 {} p99 {} ({} requests, {} bad, {} socket errors)",
            rps(r.per_second),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.requests,
            r.bad_responses,
            r.socket_errors
        ));
        self.loads.push(r.clone());
        Ok(r)
    }

    fn pgbench(
        &mut self,
        target: &str,
        script: &str,
        port: u16,
        mode: Mode,
        clients: u32,
        seconds: u32,
    ) -> Result<LoadResult, String> {
        let warm = Pgbench {
            bin: &self.pgbench,
            port,
            database: DATABASE,
            script,
            mode,
            clients,
            threads: clients.min(2),
            seconds: WARMUP_SECS,
            sampling: 0.0,
        };
        load::pgbench(&self.work, &format!("{target} warm-up"), &warm)?;
        let run = Pgbench {
            seconds,
            sampling: if clients > 1 { 0.05 } else { 1.0 },
            ..warm
        };
        let r = load::pgbench(&self.work, target, &run)?;
        log(&format!(
            "{target}: {} p50 {} p99 {} ({} transactions, {} failed)",
            rps(r.per_second),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.requests,
            r.bad_responses
        ));
        self.loads.push(r.clone());
        Ok(r)
    }
}

/// A deterministic shuffle (xorshift), so consecutive requests spread over the catalogue.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// GETs a few of `paths` once each and fails on anything but 2xx/3xx, with the body.
fn preflight(f: &Function, paths: &[String]) -> Result<(), String> {
    for p in paths.iter().take(12) {
        let r = http::request(&f.authority(), "GET", p, &[], &[])
            .map_err(|e| format!("{} {p}: {e}", f.name))?;
        if r.status >= 400 {
            return Err(format!("{} {p}: {} {}", f.name, r.status, r.text()));
        }
    }
    Ok(())
}

fn run() -> Result<bool, String> {
    let settings = Settings::from_env();
    let started = Instant::now();
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("no binary folder")?
        .to_path_buf();
    for name in FUNCTIONS.iter().chain([&HELLO]) {
        if !bin_dir.join(name).exists() {
            return Err(format!(
                "{} is missing: run `bash bench/run`, which builds it",
                bin_dir.join(name).display()
            ));
        }
    }
    let pgbench = atlas_hub::dev::postgres::bin_dir()?.join("pgbench");
    if !pgbench.exists() {
        return Err(format!("{} not found", pgbench.display()));
    }
    if std::process::Command::new("wrk")
        .arg("-v")
        .output()
        .is_err()
    {
        return Err("wrk not found: apt-get install wrk".into());
    }

    let work = std::path::absolute(bin_dir.join("../atlas-bench")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    log("starting PostgreSQL, S3 store, PgBouncer");
    let pg_port = atlas_hub::dev::free_port().map_err(|e| e.to_string())?;
    let pg = LocalPostgres::start(&work.join("pg"), pg_port)?;
    rt.block_on(pg.ensure_database(DATABASE))?;
    let s3 = rt.block_on(LocalS3::start(&work.join("s3"), BUCKET, 0))?;
    let bouncer_port = atlas_hub::dev::free_port().map_err(|e| e.to_string())?;
    let bouncer = LocalPgBouncer::start(&work.join("pgbouncer"), bouncer_port, pg_port)?;

    let mut ctx = Ctx {
        settings,
        bin_dir,
        work: work.clone(),
        pgbench,
        pg_port,
        bouncer_port,
        s3_endpoint: s3.endpoint(),
        raw: BTreeMap::new(),
        loads: Vec::new(),
    };

    log("migrating and seeding");
    let seeded = Instant::now();
    let catalogue = rt.block_on(migrate_and_seed(&ctx.direct_url()))?;
    log(&format!(
        "seeded in {:.1} s: {} products, {} releases, {} release artifacts, {} packs",
        seeded.elapsed().as_secs_f64(),
        catalogue["products"],
        catalogue["releases"],
        catalogue["releaseArtifacts"],
        catalogue["packs"]
    ));
    ctx.raw.insert("catalogue".into(), catalogue.clone());

    let mut rows: Vec<Row> = Vec::new();
    // `ATLAS_BENCH_ONLY=cold,lookups` runs only those parts (while working on one figure);
    // a table without every part is not a budget check.
    let only = std::env::var("ATLAS_BENCH_ONLY").ok();
    let part = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p.trim() == name))
    };
    if part("sizes") {
        sizes(&mut ctx, &mut rows)?;
    }
    if part("cold") {
        cold_starts(&mut ctx, &mut rows)?;
    }
    if part("lookups") {
        lookups(&mut ctx, &mut rows)?;
    }
    if part("presign") {
        presign_and_publish(&mut ctx, &catalogue, &mut rows)?;
    }
    if part("criterion") {
        criterion(&mut ctx, &mut rows)?;
    }

    // Zero non-2xx/3xx responses in every load run (floors included).
    let bad: Vec<String> = ctx
        .loads
        .iter()
        .filter(|l| !l.clean())
        .map(|l| {
            format!(
                "{} ({} bad, {} socket errors)",
                l.target, l.bad_responses, l.socket_errors
            )
        })
        .collect();
    let total_requests: u64 = ctx.loads.iter().map(|l| l.requests).sum();
    let total_bad: u64 = ctx
        .loads
        .iter()
        .map(|l| l.bad_responses + l.socket_errors)
        .sum();
    rows.push(Row {
        figure: format!(
            "Non-2xx/3xx or failed, all {} load runs ({} requests)",
            ctx.loads.len(),
            total_requests
        ),
        hub: total_bad.to_string(),
        floor: "—".into(),
        ratio: "—".into(),
        budget: "0".into(),
        pass: Some(bad.is_empty()),
    });
    if !bad.is_empty() {
        log(&format!("load runs with errors: {}", bad.join("; ")));
    }

    drop(bouncer);
    drop(s3);
    pg.stop();

    if let Some(c) = ctx.raw.get_mut("catalogue").and_then(Value::as_object_mut) {
        c.remove("downloadIds");
    }
    let all_pass = rows.iter().all(|r| r.pass != Some(false));
    let machine = machine();
    let date = now_utc();
    let elapsed = started.elapsed().as_secs_f64();
    let table = report::markdown(&rows);
    let header = format!(
        "Atlas Hub benchmark, {date}, {machine}; {} s load runs at {CONNECTIONS} connections; \
         benchmark took {:.0} s.\n\n",
        ctx.settings.seconds, elapsed
    );
    println!("\n{header}{table}");
    println!(
        "{}",
        if all_pass {
            "Every budget line holds."
        } else {
            "Some budget lines FAIL (see above)."
        }
    );

    std::fs::create_dir_all(&ctx.settings.out).map_err(|e| e.to_string())?;
    let stamp = date.replace([':', '-'], "");
    let raw = json!({
        "date": date,
        "machine": machine,
        "seconds": ctx.settings.seconds,
        "connections": CONNECTIONS,
        "elapsedSeconds": elapsed,
        "allPass": all_pass,
        "rows": rows,
        "loadRuns": ctx.loads,
        "figures": ctx.raw,
    });
    let json_text = serde_json::to_string_pretty(&raw).map_err(|e| e.to_string())?;
    let md_text = format!("{header}{table}");
    for name in [format!("bench-{stamp}"), "latest".to_owned()] {
        std::fs::write(ctx.settings.out.join(format!("{name}.md")), &md_text)
            .map_err(|e| e.to_string())?;
        std::fs::write(ctx.settings.out.join(format!("{name}.json")), &json_text)
            .map_err(|e| e.to_string())?;
    }
    log(&format!(
        "wrote {}/bench-{stamp}.md and .json ({:.0} s)",
        ctx.settings.out.display(),
        elapsed
    ));
    Ok(all_pass)
}

async fn migrate_and_seed(url: &str) -> Result<Value, String> {
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("DATABASE_URL", url.to_owned()),
        ("ATLAS_DB_POOL_SIZE", "1".into()),
        ("ATLAS_HUB_URL", "http://127.0.0.1".into()),
        ("ATLAS_S3_BUCKET", BUCKET.into()),
        ("ATLAS_S3_ACCESS_KEY_ID", "unused".into()),
        ("ATLAS_S3_SECRET_ACCESS_KEY", "unused".into()),
        ("ATLAS_TOKEN_PEPPER", PEPPER.into()),
    ]);
    let config = atlas_hub::config::Config::from_lookup(&|k| vars.get(k).cloned())
        .map_err(|e| e.to_string())?;
    let db = atlas_hub::db::Db::new(&config)?;
    let mut conn = db
        .raw_conn()
        .await
        .map_err(|e| format!("connect: {}", e.detail))?;
    atlas_hub::db::migrate::run(&mut conn, atlas_hub::db::migrate::MIGRATIONS)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);

    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let pepper = atlas_hub::config::Secret::new(PEPPER);
    let digest = hex::encode(atlas_hub::domain::tokens::digest(&pepper, APP_TOKEN));
    client
        .batch_execute(&seed::sql(&digest))
        .await
        .map_err(|e| format!("seed: {e}"))?;
    // Steady state before measuring: freshly written tables vacuumed (visibility map, hint
    // bits) and their pages flushed, so neither autovacuum nor the first checkpoint lands in
    // a load run. Separate statements: VACUUM cannot run in the seed's implicit transaction.
    for sql in ["VACUUM (ANALYZE)", "CHECKPOINT"] {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .map_err(|e| e.to_string())
        }
    };
    let ids: Vec<String> = client
        .query(
            "SELECT download_id FROM artifacts WHERE release_id IS NOT NULL ORDER BY md5(download_id) LIMIT 4000",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let product2: i64 = client
        .query_one("SELECT id FROM products WHERE slug = 'product-2'", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    Ok(json!({
        "products": count("SELECT count(*) FROM products").await?,
        "releases": count("SELECT count(*) FROM releases").await?,
        "releaseArtifacts": count("SELECT count(*) FROM artifacts WHERE release_id IS NOT NULL").await?,
        "channels": count("SELECT count(*) FROM channels").await?,
        "packs": count("SELECT count(*) FROM packs").await?,
        "packBuilds": count("SELECT count(*) FROM pack_builds").await?,
        "packArtifacts": count("SELECT count(*) FROM artifacts WHERE pack_build_id IS NOT NULL").await?,
        "tokenDigestHex": digest,
        "product2Id": product2,
        "downloadIds": ids,
    }))
}

fn sizes(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let hello = procs::file_size(&ctx.bin(HELLO))?;
    let mut raw = serde_json::Map::new();
    raw.insert(HELLO.into(), json!(hello));
    for name in FUNCTIONS {
        let path = ctx.bin(name);
        let size = procs::file_size(&path)?;
        let stripped = !procs::has_symtab(&path);
        raw.insert(name.into(), json!({"bytes": size, "stripped": stripped}));
        rows.push(Row {
            figure: format!(
                "Binary size, `{name}`{}",
                if stripped {
                    " (stripped)"
                } else {
                    " (NOT stripped)"
                }
            ),
            hub: mb(size),
            floor: mb(hello),
            ratio: ratio(size as f64, hello as f64),
            budget: "≤ 12 MB".into(),
            pass: Some(size <= MAX_BINARY_BYTES && stripped),
        });
    }
    ctx.raw.insert("binaryBytes".into(), Value::Object(raw));
    Ok(())
}

/// Exec → first 200, `runs` times, sequentially. Returns milliseconds.
fn cold_series(
    ctx: &Ctx,
    name: &str,
    env: &[(String, String)],
    path: &str,
    runs: usize,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut first_200 = Vec::with_capacity(runs);
    let mut listening = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        let f = ctx.start(name, env)?;
        let r = http::request(&f.authority(), "GET", path, &[], &[])
            .map_err(|e| format!("{name} {path}: {e}"))?;
        let elapsed = t0.elapsed();
        if r.status != 200 {
            return Err(format!(
                "{name} {path}: first answer {} {}",
                r.status,
                r.text()
            ));
        }
        first_200.push(elapsed.as_secs_f64() * 1e3);
        listening.push(f.ready_after.as_secs_f64() * 1e3);
        f.stop();
    }
    Ok((first_200, listening))
}

fn cold_starts(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let runs = ctx.settings.cold_runs;
    log(&format!("cold starts: {runs} runs each"));
    let env = ctx.function_env(&ctx.direct_url(), "none");
    let latest_path = "/api/v1/releases/product-1/latest/linux/x86_64";
    // One unmeasured start of each, so both binaries are in the page cache.
    cold_series(ctx, HELLO, &[], "/", 1)?;
    cold_series(ctx, "releases_latest", &env, latest_path, 1)?;
    let (mut hello, mut hello_listen) = cold_series(ctx, HELLO, &[], "/", runs)?;
    let (mut hub, mut hub_listen) = cold_series(ctx, "releases_latest", &env, latest_path, runs)?;
    let (h, f) = (median(&mut hub), median(&mut hello));
    let max = |v: &[f64]| v.iter().cloned().fold(f64::NAN, f64::max);
    log(&format!(
        "cold start: releases_latest median {} (max {}), hello median {} (max {})",
        ms(h),
        ms(max(&hub)),
        ms(f),
        ms(max(&hello))
    ));
    rows.push(Row {
        figure: format!(
            "Cold start, exec → first 200, `releases_latest` (DB connect + query), median of {runs}"
        ),
        hub: ms(h),
        floor: ms(f),
        ratio: ratio(h, f),
        budget: "≤ 10× floor".into(),
        pass: Some(h <= MAX_COLD_RATIO * f),
    });

    // No network I/O before the first request: inet sockets other than the listener,
    // 200 ms after the function said it listens.
    let mut found = Vec::new();
    for _ in 0..3 {
        let f = ctx.start("releases_latest", &env)?;
        std::thread::sleep(Duration::from_millis(200));
        found.extend(procs::active_inet_sockets(f.pid())?);
        f.stop();
    }
    rows.push(Row {
        figure: "Network connections opened before the first request (`releases_latest`, 3 starts)"
            .into(),
        hub: found.len().to_string(),
        floor: "0".into(),
        ratio: "—".into(),
        budget: "0".into(),
        pass: Some(found.is_empty()),
    });
    ctx.raw.insert(
        "coldStart".into(),
        json!({
            "runs": runs,
            "releasesLatestMs": hub, "releasesLatestListeningMs": median(&mut hub_listen),
            "helloMs": hello, "helloListeningMs": median(&mut hello_listen),
            "socketsBeforeFirstRequest": found,
        }),
    );
    Ok(())
}

/// One function under load: RSS after start, preflight, warm-up, measured run, RSS after.
struct Measured {
    load: LoadResult,
    rss_start: u64,
    rss_after: u64,
    requests_served: u64,
}

fn measure(
    ctx: &mut Ctx,
    label: &str,
    name: &str,
    env: &[(String, String)],
    paths: &[String],
) -> Result<Measured, String> {
    let f = ctx.start(name, env)?;
    let rss_start = f.rss_bytes()?;
    preflight(&f, paths)?;
    let seconds = ctx.settings.seconds;
    let warm = ctx.wrk(
        &format!("{label} warm-up"),
        &f.url(),
        &Requests::Get(paths),
        CONNECTIONS,
        2,
        WARMUP_SECS,
    )?;
    let load = ctx.wrk(
        label,
        &f.url(),
        &Requests::Get(paths),
        CONNECTIONS,
        2,
        seconds,
    )?;
    let rss_after = f.rss_bytes()?;
    f.stop();
    Ok(Measured {
        requests_served: warm.requests + load.requests + paths.len().min(12) as u64,
        load,
        rss_start,
        rss_after,
    })
}

/// What a lookup's p99 is held to.
#[derive(Clone, Copy)]
enum P99Budget {
    /// The budget for lookup routes: ≤ 5 ms at 64 connections.
    Absolute,
    /// Behind PgBouncer the issue budgets throughput; the p99 is held to its own floor (the
    /// pgbench floor through PgBouncer is itself 9–12 ms here).
    Floor,
}

fn lookup_rows(
    rows: &mut Vec<Row>,
    label: &str,
    hub: &LoadResult,
    floor: &LoadResult,
    floor_name: &str,
    hello: &LoadResult,
    p99_budget: P99Budget,
) {
    let r = hub.per_second / floor.per_second;
    rows.push(Row {
        figure: format!("{label}: throughput at {CONNECTIONS} connections vs {floor_name}"),
        hub: rps(hub.per_second),
        floor: rps(floor.per_second),
        ratio: ratio(hub.per_second, floor.per_second),
        budget: "≥ 0.35× floor".into(),
        pass: Some(r >= MIN_FLOOR_RATIO),
    });
    rows.push(Row {
        figure: format!("{label}: throughput vs hello-world HTTP floor"),
        hub: rps(hub.per_second),
        floor: rps(hello.per_second),
        ratio: ratio(hub.per_second, hello.per_second),
        budget: "—".into(),
        pass: None,
    });
    rows.push(Row {
        figure: format!("{label}: p50 latency (floor: {floor_name})"),
        hub: ms(hub.p50_ms),
        floor: ms(floor.p50_ms),
        ratio: ratio(hub.p50_ms, floor.p50_ms),
        budget: "—".into(),
        pass: None,
    });
    rows.push(Row {
        figure: format!("{label}: p99 latency (floor: {floor_name})"),
        hub: ms(hub.p99_ms),
        floor: ms(floor.p99_ms),
        ratio: ratio(hub.p99_ms, floor.p99_ms),
        budget: match p99_budget {
            P99Budget::Absolute => "≤ 5 ms".into(),
            P99Budget::Floor => "≤ 1× floor".into(),
        },
        pass: Some(match p99_budget {
            P99Budget::Absolute => hub.p99_ms <= MAX_P99_MS,
            P99Budget::Floor => hub.p99_ms <= floor.p99_ms,
        }),
    });
}

fn rss_rows(rows: &mut Vec<Row>, name: &str, m: &Measured, hello: &Measured) {
    rows.push(Row {
        figure: format!("RSS after start, `{name}`"),
        hub: mb(m.rss_start),
        floor: mb(hello.rss_start),
        ratio: ratio(m.rss_start as f64, hello.rss_start as f64),
        budget: "—".into(),
        pass: None,
    });
    rows.push(Row {
        figure: format!(
            "RSS after {} requests, `{name}` (floor: hello after {})",
            m.requests_served, hello.requests_served
        ),
        hub: mb(m.rss_after),
        floor: mb(hello.rss_after),
        ratio: ratio(m.rss_after as f64, hello.rss_after as f64),
        budget: "≤ 30 MB after ≥ 10k".into(),
        pass: Some(m.rss_after <= MAX_RSS_BYTES && m.requests_served >= MIN_RSS_REQUESTS),
    });
}

fn lookups(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let seconds = ctx.settings.seconds;
    let mut latest_paths = Vec::new();
    let mut updater_paths = Vec::new();
    for p in 1..=seed::PRODUCTS {
        for (os, arch) in seed::PLATFORMS {
            latest_paths.push(format!("/api/v1/releases/product-{p}/latest/{os}/{arch}"));
            // Three of four launchers are behind (200 with an update), one is current (204).
            for current in ["1.0.0", "1.5.3", "1.8.19", seed::STABLE_VERSION] {
                updater_paths.push(format!("/api/v1/updater/product-{p}/{os}/{arch}/{current}"));
            }
        }
    }
    shuffle(&mut latest_paths, 0x9e37_79b9_7f4a_7c15);
    shuffle(&mut updater_paths, 0x2545_f491_4f6c_dd1d);
    let download_paths: Vec<String> = ctx.raw["catalogue"]["downloadIds"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str())
                .map(|id| format!("/api/v1/download/{id}"))
                .collect()
        })
        .unwrap_or_default();
    let release_artifacts = ctx.raw["catalogue"]["releaseArtifacts"]
        .as_i64()
        .unwrap_or(0);

    // The route's SQL, as the route sends it, with the same spread of parameters.
    // Direct connections prepare the lookup statement; behind PgBouncer the route calls the
    // SQL function holding the same query (`lib/routes/releases.rs`).
    let route_sql = |sql: &str| {
        let bound = sql
            .replace("$1", "'product-' || :p::int")
            .replace("$2", "'stable'")
            .replace(
                "$3",
                "(ARRAY['linux','linux','windows','windows','darwin','darwin'])[:k::int]",
            )
            .replace(
                "$4",
                "(ARRAY['x86_64','aarch64','x86_64','aarch64','x86_64','aarch64'])[:k::int]",
            );
        format!("\\set p random(1, 20)\n\\set k random(1, 6)\n{bound};\n")
    };
    let lookup_sql = route_sql(atlas_hub::domain::lookup::CHANNEL_PLATFORM_SQL);
    let pooled_lookup_sql = route_sql(atlas_hub::domain::lookup::CHANNEL_PLATFORM_POOLED);
    let download_sql = format!(
        "\\set n random(1, {release_artifacts})\n\
         SELECT id, storage_key, filename FROM artifacts WHERE download_id = 'dl_' || md5(:n::text);\n"
    );

    log("HTTP floor: hello-world");
    let hello = measure(
        ctx,
        "hello-world (HTTP floor)",
        HELLO,
        &[],
        &["/".to_owned()],
    )?;
    log("database floors: pgbench, prepared");
    let lookup_floor = ctx.pgbench(
        "pgbench channel lookup (prepared)",
        &lookup_sql,
        ctx.pg_port,
        Mode::Prepared,
        CONNECTIONS,
        seconds,
    )?;
    let download_floor = ctx.pgbench(
        "pgbench artifacts by download_id (prepared)",
        &download_sql,
        ctx.pg_port,
        Mode::Prepared,
        CONNECTIONS,
        seconds,
    )?;

    let env = ctx.function_env(&ctx.direct_url(), "none");
    let latest = measure(
        ctx,
        "releases_latest",
        "releases_latest",
        &env,
        &latest_paths,
    )?;
    let updater = measure(ctx, "updater", "updater", &env, &updater_paths)?;
    let download = measure(ctx, "download", "download", &env, &download_paths)?;

    log("behind PgBouncer (transaction mode)");
    let bouncer_floor = ctx.pgbench(
        "pgbench atlas_channel_platform via PgBouncer (extended)",
        &pooled_lookup_sql,
        ctx.bouncer_port,
        Mode::Extended,
        CONNECTIONS,
        seconds,
    )?;
    let bouncer_env = ctx.function_env(&ctx.bouncer_url(), "transaction");
    let bouncer = measure(
        ctx,
        "releases_latest via PgBouncer",
        "releases_latest",
        &bouncer_env,
        &latest_paths,
    )?;

    let floor_name = "pgbench, route SQL, prepared";
    lookup_rows(
        rows,
        "`releases_latest` (latest)",
        &latest.load,
        &lookup_floor,
        floor_name,
        &hello.load,
        P99Budget::Absolute,
    );
    lookup_rows(
        rows,
        "`updater` (Tauri dynamic)",
        &updater.load,
        &lookup_floor,
        floor_name,
        &hello.load,
        P99Budget::Absolute,
    );
    lookup_rows(
        rows,
        "`download` (302 by id)",
        &download.load,
        &download_floor,
        floor_name,
        &hello.load,
        P99Budget::Absolute,
    );
    lookup_rows(
        rows,
        "`releases_latest` behind PgBouncer",
        &bouncer.load,
        &bouncer_floor,
        "pgbench via PgBouncer, unnamed",
        &hello.load,
        P99Budget::Floor,
    );
    rss_rows(rows, "releases_latest", &latest, &hello);
    rss_rows(rows, "updater", &updater, &hello);
    rss_rows(rows, "download", &download, &hello);
    ctx.raw.insert(
        "rss".into(),
        json!({
            "hello": [hello.rss_start, hello.rss_after, hello.requests_served],
            "releases_latest": [latest.rss_start, latest.rss_after, latest.requests_served],
            "updater": [updater.rss_start, updater.rss_after, updater.requests_served],
            "download": [download.rss_start, download.rss_after, download.requests_served],
            "releases_latest_pgbouncer": [bouncer.rss_start, bouncer.rss_after, bouncer.requests_served],
        }),
    );
    Ok(())
}

fn presign_and_publish(
    ctx: &mut Ctx,
    catalogue: &Value,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let digest = catalogue["tokenDigestHex"].as_str().unwrap_or_default();
    let product_id = catalogue["product2Id"].as_i64().unwrap_or(2);
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    // The presign route's statements for a new upload, in its order: token check (and
    // lastUsedAt when a minute old, unless the address is blocked), the presign limit, product, release,
    // upload by key, upload insert. (No ':' inside string literals: pgbench would take it
    // for a variable.)
    let floor_sql = format!(
        "\\set n random(1, 2000000000)\n\
WITH t AS (SELECT id, name, kind, products, pack_id, scopes, channels, digest, last_used_at FROM deploy_tokens WHERE digest = decode('{digest}', 'hex') AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AND NOT EXISTS (SELECT 1 FROM rate_limits WHERE key = 'authfail' || chr(58) || '127.0.0.1' AND tat > now() + make_interval(secs => 40))), touched AS (UPDATE deploy_tokens d SET last_used_at = now() FROM t WHERE d.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')) SELECT id, name, kind, products, pack_id, scopes, channels, digest FROM t;\n\
SELECT atlas_rate_take('presign' || chr(58) || 'floor-' || :client_id, 1000000, 1) AS wait;\n\
SELECT id, slug, name, required_platforms, max_artifact_size, updater_public_key, created_at, updated_at FROM products WHERE slug = 'product-2';\n\
SELECT id, version, notes, published_at, published_by, yanked_at, content_digest FROM releases WHERE product_id = {product_id} AND version = '3.0.0-floor';\n\
SELECT id, storage_key, product_id, version, os, arch, kind, filename, size, sha256, content_type FROM uploads WHERE storage_key = 'releases/product-2/3.0.0-floor/linux-x86_64/appimage/Floor-' || :client_id || '-' || :n || '.AppImage';\n\
INSERT INTO uploads (id, storage_key, product_id, version, os, arch, kind, filename, size, sha256, content_type, created_by) VALUES (gen_random_uuid(), 'releases/product-2/3.0.0-floor/linux-x86_64/appimage/Floor-' || :client_id || '-' || :n || '.AppImage', {product_id}, '3.0.0-floor', 'linux', 'x86_64', 'appimage', 'Floor-' || :client_id || '-' || :n || '.AppImage', 1048576, '{sha}', 'application/octet-stream', 'token' || chr(58) || 'bench-ci') ON CONFLICT (storage_key) DO NOTHING RETURNING id, storage_key, product_id, version, os, arch, kind, filename, size, sha256, content_type;\n"
    );
    log("presign: pgbench floor (1 client)");
    let floor = ctx.pgbench(
        "pgbench presign statements (prepared, 1 client)",
        &floor_sql,
        ctx.pg_port,
        Mode::Prepared,
        1,
        PRESIGN_SECS,
    )?;

    let env = ctx.function_env(&ctx.direct_url(), "none");
    let presign_fn = ctx.start("storage_presign", &env)?;
    let headers = vec![
        ("Authorization".to_owned(), format!("Bearer {APP_TOKEN}")),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ];
    let body = |tag: &str| {
        format!(
            "{{\"product\":\"product-2\",\"version\":\"3.0.0-bench.{tag}\",\"os\":\"linux\",\"arch\":\"x86_64\",\
             \"kind\":\"appimage\",\"filename\":\"Atlas-%d-%d.AppImage\",\"size\":1048576,\
             \"sha256\":\"{sha}\",\"contentType\":\"application/octet-stream\"}}"
        )
    };
    // Preflight: one presign answers 200.
    let probe = http::request(
        &presign_fn.authority(),
        "POST",
        "/api/v1/storage/presign",
        &headers,
        body("probe").replace("%d", "0").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    if probe.status != 200 {
        return Err(format!("presign probe: {} {}", probe.status, probe.text()));
    }
    log("presign: route (1 connection)");
    let warm_body = body("w");
    ctx.wrk(
        "storage_presign warm-up",
        &presign_fn.url(),
        &Requests::PostUnique("/api/v1/storage/presign", &headers, &warm_body),
        1,
        1,
        1,
    )?;
    let run_body = body("m");
    let hub = ctx.wrk(
        "storage_presign (1 connection)",
        &presign_fn.url(),
        &Requests::PostUnique("/api/v1/storage/presign", &headers, &run_body),
        1,
        1,
        PRESIGN_SECS,
    )?;
    rows.push(Row {
        figure: "`storage_presign`: p50 latency, 1 connection (floor: pgbench, its 6 statements)"
            .into(),
        hub: ms(hub.p50_ms),
        floor: ms(floor.p50_ms),
        ratio: ratio(hub.p50_ms, floor.p50_ms),
        budget: "≤ 1 ms".into(),
        pass: Some(hub.p50_ms <= MAX_PRESIGN_P50_MS),
    });
    rows.push(Row {
        figure: "`storage_presign`: p99 latency, 1 connection".into(),
        hub: ms(hub.p99_ms),
        floor: ms(floor.p99_ms),
        ratio: ratio(hub.p99_ms, floor.p99_ms),
        budget: "—".into(),
        pass: None,
    });

    // Publish of a 6-artifact release end to end, as CI does it: presign each, PUT each to
    // storage, publish. Floor: the six PUTs alone.
    let publish_fn = ctx.start("releases_publish", &env)?;
    let files: Vec<(&str, &str, &str, Vec<u8>)> = seed::PLATFORMS
        .iter()
        .enumerate()
        .map(|(i, (os, arch))| {
            let kind = match *os {
                "linux" => "appimage",
                "windows" => "nsis",
                _ => "app",
            };
            let mut x: u64 = 0x1234_5678_9abc_def0 ^ (i as u64 + 1);
            let data: Vec<u8> = (0..ARTIFACT_BYTES)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (*os, *arch, kind, data)
        })
        .collect();
    let shas: Vec<String> = files
        .iter()
        .map(|f| hex::encode(Sha256::digest(&f.3)))
        .collect();
    let mut totals = Vec::new();
    let mut puts = Vec::new();
    let mut presigns = Vec::new();
    let mut publishes = Vec::new();
    for run in 0..=PUBLISH_RUNS {
        let version = format!("4.0.{run}");
        let t0 = Instant::now();
        let mut put_time = Duration::ZERO;
        let mut presign_time = Duration::ZERO;
        let mut listed = Vec::new();
        for (i, (os, arch, kind, data)) in files.iter().enumerate() {
            let body = json!({
                "product": "product-1", "version": version, "os": os, "arch": arch, "kind": kind,
                "filename": format!("Atlas_{version}_{os}_{arch}.bin"), "size": data.len(),
                "sha256": shas[i], "contentType": "application/octet-stream",
            });
            let tp = Instant::now();
            let r = http::request(
                &presign_fn.authority(),
                "POST",
                "/api/v1/storage/presign",
                &headers,
                body.to_string().as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            presign_time += tp.elapsed();
            if r.status != 200 {
                return Err(format!("publish run presign: {} {}", r.status, r.text()));
            }
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            let url = v["url"].as_str().unwrap_or_default();
            let put_headers: Vec<(String, String)> = v["uploadHeaders"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let (authority, path) = http::split_url(url).map_err(|e| e.to_string())?;
            let tu = Instant::now();
            let r = http::request(&authority, "PUT", &path, &put_headers, data)
                .map_err(|e| e.to_string())?;
            put_time += tu.elapsed();
            if r.status != 200 {
                return Err(format!("publish run PUT: {} {}", r.status, r.text()));
            }
            listed.push(
                json!({"uploadId": v["uploadId"], "os": os, "arch": arch, "kind": kind,
                               "size": data.len(), "sha256": shas[i]}),
            );
        }
        let body = json!({"version": version, "notes": "Benchmark release.", "artifacts": listed});
        let tpub = Instant::now();
        let r = http::request(
            &publish_fn.authority(),
            "POST",
            "/api/v1/releases/product-1/publish",
            &headers,
            body.to_string().as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let publish_time = tpub.elapsed();
        if r.status != 201 {
            return Err(format!("publish: {} {}", r.status, r.text()));
        }
        if run > 0 {
            totals.push(t0.elapsed().as_secs_f64() * 1e3);
            puts.push(put_time.as_secs_f64() * 1e3);
            presigns.push(presign_time.as_secs_f64() * 1e3);
            publishes.push(publish_time.as_secs_f64() * 1e3);
        }
    }
    presign_fn.stop();
    publish_fn.stop();
    let (t, p) = (median(&mut totals), median(&mut puts));
    log(&format!(
        "publish e2e: median {} (PUTs {}, presigns {}, publish {})",
        ms(t),
        ms(p),
        ms(median(&mut presigns)),
        ms(median(&mut publishes))
    ));
    rows.push(Row {
        figure: format!(
            "Publish, 6 artifacts × 256 KiB end to end (6 presign + 6 PUT + publish), median of {PUBLISH_RUNS} (floor: the 6 PUTs alone)"
        ),
        hub: ms(t),
        floor: ms(p),
        ratio: ratio(t, p),
        budget: "—".into(),
        pass: None,
    });
    ctx.raw.insert(
        "publish".into(),
        json!({"totalMs": totals, "putsMs": puts, "presignsMs": presigns, "publishMs": publishes}),
    );
    Ok(())
}

fn criterion(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
    let exe = ctx.bin_dir.join("examples/presign");
    if !exe.exists() {
        return Err("the criterion bench `presign` is not built: run `bash bench/run`".into());
    }
    log("presign CPU: criterion");
    let home =
        std::path::absolute(ctx.settings.out.join("criterion")).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&exe)
        .arg("--bench")
        .env("CRITERION_HOME", &home)
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "criterion: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let estimate = |name: &str| -> Result<(f64, f64), String> {
        let p = home.join("presign").join(name).join("new/estimates.json");
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
        )
        .map_err(|e| e.to_string())?;
        Ok((
            v["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN) / 1e3,
            v["mean"]["point_estimate"].as_f64().unwrap_or(f64::NAN) / 1e3,
        ))
    };
    let put = estimate("hub_put")?;
    let get = estimate("hub_get")?;
    let floor = estimate("floor_sigv4")?;
    log(&format!(
        "presign CPU: PUT {} GET {} floor {}",
        us(put.0),
        us(get.0),
        us(floor.0)
    ));
    rows.push(Row {
        figure: "Presign CPU per call, upload PUT (criterion median; floor: hand-written SigV4)"
            .into(),
        hub: us(put.0),
        floor: us(floor.0),
        ratio: ratio(put.0, floor.0),
        budget: "≤ 50 µs".into(),
        pass: Some(put.0 <= MAX_PRESIGN_CPU_US),
    });
    rows.push(Row {
        figure: "Presign CPU per call, download GET (criterion median)".into(),
        hub: us(get.0),
        floor: us(floor.0),
        ratio: ratio(get.0, floor.0),
        budget: "≤ 50 µs".into(),
        pass: Some(get.0 <= MAX_PRESIGN_CPU_US),
    });
    ctx.raw.insert(
        "presignCpuUs".into(),
        json!({"putMedian": put.0, "putMean": put.1, "getMedian": get.0, "getMean": get.1,
               "floorMedian": floor.0, "floorMean": floor.1}),
    );
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::process::Command::new("uname")
        .arg("-sr")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {kernel} (load average at end {load})")
}

fn now_utc() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}
