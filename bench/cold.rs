//! Binary sizes and cold starts (process start to first answer), each against the
//! hello-world `vercel_runtime` floor.

use super::*;

pub(crate) fn sizes(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
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

pub(crate) fn cold_starts(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
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
