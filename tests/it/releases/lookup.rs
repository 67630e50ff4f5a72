//! The hot lookup: the prepared statement and the pooler's SQL function agree, and batched
//! concurrent lookups each get their own answer.

use super::*;

/// The hot lookup runs as a prepared statement on direct connections and through the
/// `atlas_channel_platform` SQL function behind a pooler: both must give the same rows, for
/// a channel in a staged rollout (current and previous releases), every platform, every
/// channel, and a product that does not exist.
#[tokio::test]
async fn the_lookup_statement_and_the_pooler_function_agree() {
    let (hub, _admin, app) = setup(&[]).await;
    let mut primary = Artifact::new("linux", "x86_64", "appimage", "one");
    primary.primary = Some(true);
    let v1 = [
        primary,
        Artifact::new("linux", "x86_64", "deb", "one-deb"),
        Artifact::new("windows", "x86_64", "nsis", "one-win"),
    ];
    let (status, body) = publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &v1).await;
    assert_eq!(status, 201, "{body}");
    let v2 = [
        Artifact::new("linux", "x86_64", "appimage", "two"),
        Artifact::new("darwin", "aarch64", "app", "two-mac"),
    ];
    let (status, body) = publish(&hub, &app, "launcher", "1.1.0", Some("beta"), &v2).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "rolloutPercent": 30, "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let db = crate::support::connect(&hub.database_url).await;
    let prepared = db
        .prepare(atlas_hub::domain::lookup::CHANNEL_PLATFORM_SQL)
        .await
        .unwrap();
    let mut compared = 0;
    for product in ["launcher", "nothing"] {
        for channel in ["stable", "beta", "dev"] {
            for (os, arch) in [
                ("linux", "x86_64"),
                ("windows", "x86_64"),
                ("darwin", "aarch64"),
                ("linux", "riscv64"),
            ] {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&product, &channel, &os, &arch];
                let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
                    rows.iter()
                        .map(|r| {
                            (0..r.len())
                                .map(|i| format!("{}={:?}", r.columns()[i].name(), text_of(r, i)))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect()
                };
                let direct = rows(db.query(&prepared, &params).await.unwrap());
                let pooled = rows(
                    db.query(atlas_hub::domain::lookup::CHANNEL_PLATFORM_POOLED, &params)
                        .await
                        .unwrap(),
                );
                // Same columns (by name, in order) and values.
                let sorted = |mut v: Vec<String>| {
                    v.iter_mut().for_each(|row| {
                        let mut cols: Vec<&str> = row.split(',').collect();
                        cols.sort_unstable();
                        *row = cols.join(",");
                    });
                    v
                };
                assert_eq!(
                    sorted(direct.clone()),
                    sorted(pooled),
                    "{product}/{channel} {os}-{arch}"
                );
                compared += direct.len();
            }
        }
    }
    // current + previous on stable for linux, beta's release, windows' previous, mac's current.
    assert!(compared >= 7, "only {compared} rows compared");

    // The batched forms (every lookup above in one statement) agree too, lookup by lookup.
    use atlas_hub::config::Pooler;
    let mut keys: [Vec<&str>; 4] = Default::default();
    for product in ["launcher", "nothing"] {
        for channel in ["stable", "beta", "dev"] {
            for (os, arch) in [("linux", "x86_64"), ("darwin", "aarch64")] {
                for (k, v) in keys.iter_mut().zip([product, channel, os, arch]) {
                    k.push(v);
                }
            }
        }
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&keys[0], &keys[1], &keys[2], &keys[3]];
    let batch = |pooler| atlas_hub::domain::lookup::batch_sql(pooler);
    let direct = db.query(batch(Pooler::None), &params).await.unwrap();
    let pooled = db.query(batch(Pooler::Transaction), &params).await.unwrap();
    let flat = |rows: &[tokio_postgres::Row]| -> Vec<String> {
        rows.iter()
            .map(|r| {
                let mut cols: Vec<String> = (0..r.len())
                    .filter(|i| r.columns()[*i].name() != "i")
                    .map(|i| format!("{}={:?}", r.columns()[i].name(), text_of(r, i)))
                    .collect();
                cols.sort_unstable();
                format!("#{} {}", r.get::<_, i64>("i"), cols.join(","))
            })
            .collect()
    };
    assert_eq!(flat(&direct), flat(&pooled));
    assert!(direct.len() >= 5, "only {} batched rows", direct.len());
}

/// A column's value as text, whatever its type.
fn text_of(row: &tokio_postgres::Row, i: usize) -> String {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    match ty {
        Type::TEXT | Type::VARCHAR => format!("{:?}", row.get::<_, Option<String>>(i)),
        Type::INT2 => format!("{:?}", row.get::<_, Option<i16>>(i)),
        Type::INT8 => format!("{:?}", row.get::<_, Option<i64>>(i)),
        Type::BOOL => format!("{:?}", row.get::<_, Option<bool>>(i)),
        Type::TIMESTAMPTZ => format!("{:?}", row.get::<_, Option<time::OffsetDateTime>>(i)),
        other => panic!(
            "column {} has unexpected type {other}",
            row.columns()[i].name()
        ),
    }
}

/// Concurrent lookups are batched per instance (`LookupBatcher`): hundreds in flight at once,
/// over several products, channels and platforms, each gets its own answer.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_lookups_each_get_their_own_answer() {
    let (hub, admin, _) = setup(&[]).await;
    let mut expected = Vec::new();
    for (n, product) in ["alpha", "beta-app", "gamma"].into_iter().enumerate() {
        create_product(&hub, &admin, product, json!({})).await;
        let app = app_token(&hub, &admin, &[product], ALL_SCOPES, &[]).await;
        for (channel, version) in [("stable", format!("1.{n}.0")), ("beta", format!("2.{n}.0"))] {
            let files = [
                Artifact::new(
                    "linux",
                    "x86_64",
                    "appimage",
                    &format!("{product}{version}l"),
                ),
                Artifact::new("windows", "aarch64", "msi", &format!("{product}{version}w")),
            ];
            let (status, body) =
                publish(&hub, &app, product, &version, Some(channel), &files).await;
            assert_eq!(status, 201, "{body}");
            for (os, arch, kind) in [
                ("linux", "x86_64", "appimage"),
                ("windows", "aarch64", "msi"),
            ] {
                expected.push((product, channel, os, arch, version.clone(), kind));
            }
        }
        // A platform without a release: 404, in the same batches.
        expected.push((product, "stable", "darwin", "aarch64", String::new(), ""));
    }
    let client = crate::support::client();
    let mut tasks = Vec::new();
    for round in 0..40 {
        for (i, (product, channel, os, arch, version, kind)) in expected.iter().enumerate() {
            if (i + round) % 2 == 0 {
                continue;
            }
            let url = hub.at(&format!(
                "/api/v1/releases/{product}/latest/{os}/{arch}?channel={channel}"
            ));
            let client = client.clone();
            let want = (version.clone(), *kind, *product, *os, *arch);
            tasks.push(tokio::spawn(async move {
                let resp = client.get(url).send().await.unwrap();
                let status = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap();
                (status, body, want)
            }));
        }
    }
    assert!(tasks.len() > 150, "{} requests", tasks.len());
    for task in tasks {
        let (status, body, (version, kind, product, os, arch)) = task.await.unwrap();
        if version.is_empty() {
            assert_eq!(status, 404, "{product} {os}-{arch}: {body}");
            continue;
        }
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["product"], product, "{body}");
        assert_eq!(body["version"], version.as_str(), "{body}");
        assert_eq!(body["artifact"]["os"], os, "{body}");
        assert_eq!(body["artifact"]["arch"], arch, "{body}");
        assert_eq!(body["artifact"]["kind"], kind, "{body}");
    }
}
