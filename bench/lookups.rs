//! The hot read routes under load (latest, updater, download, and latest behind PgBouncer)
//! against `pgbench` running their SQL and the hello-world floor; RSS after the run.

use super::*;

/// One function under load: RSS after start, preflight, warm-up, measured run, RSS after.
pub(crate) struct Measured {
    pub(crate) load: LoadResult,
    rss_start: u64,
    rss_after: u64,
    requests_served: u64,
    /// The function's own CPU (user + system) per request of the measured run, in µs: what
    /// the route costs the instance, unlike throughput independent of what else the
    /// machine's cores are doing.
    pub(crate) cpu_us_per_request: f64,
}

pub(crate) fn measure(
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
    let cpu_before = f.cpu_seconds()?;
    let load = ctx.wrk(
        label,
        &f.url(),
        &Requests::Get(paths),
        CONNECTIONS,
        2,
        seconds,
    )?;
    let cpu_us_per_request = (f.cpu_seconds()? - cpu_before) * 1e6 / load.requests.max(1) as f64;
    let rss_after = f.rss_bytes()?;
    f.stop();
    Ok(Measured {
        requests_served: warm.requests + load.requests + paths.len().min(12) as u64,
        load,
        rss_start,
        rss_after,
        cpu_us_per_request,
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
        figure: format!("CPU per request, `{name}` process, user + system (floor: hello)"),
        hub: us(m.cpu_us_per_request),
        floor: us(hello.cpu_us_per_request),
        ratio: ratio(m.cpu_us_per_request, hello.cpu_us_per_request),
        budget: "—".into(),
        pass: None,
    });
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

pub(crate) fn lookups(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
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
    ctx.raw.insert(
        "cpuMicrosPerRequest".into(),
        json!({
            "hello": hello.cpu_us_per_request,
            "releases_latest": latest.cpu_us_per_request,
            "updater": updater.cpu_us_per_request,
            "download": download.cpu_us_per_request,
            "releases_latest_pgbouncer": bouncer.cpu_us_per_request,
        }),
    );
    Ok(())
}
