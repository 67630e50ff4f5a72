//! Presign and publish latency over HTTP, and presign CPU per call (criterion).

use super::*;

pub(crate) fn presign_and_publish(
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

pub(crate) fn criterion(ctx: &mut Ctx, rows: &mut Vec<Row>) -> Result<(), String> {
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
