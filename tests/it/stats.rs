//! Usage statistics over real HTTP: simulated clients with known ids, versions and platforms
//! check for updates, look up and download over three simulated days (each day's rows moved
//! to a date of its own once written), and the stats API, the CLI and the console's numbers
//! match what they did: counts exactly, distinct clients within the HyperLogLog's error.
//! Client ids and addresses never reach the database; pruning removes exactly what is past
//! the retention period.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{ALL_SCOPES, admin_token, app_token, create_product, publish};
use crate::consumers::signed;
use crate::support::{HubOptions, TestHub, client, connect};

const CLIENTS: usize = 120;
/// The simulated days, as the test dates them.
const DAYS: [&str; 3] = ["2026-01-01", "2026-01-02", "2026-01-03"];

fn platform_of(i: usize) -> (&'static str, &'static str) {
    if i.is_multiple_of(3) {
        ("windows", "x86_64")
    } else {
        ("linux", "x86_64")
    }
}

fn id_of(i: usize) -> String {
    format!("install-{i:04}-9f3c2a")
}

/// Waits until the Hub wrote `checks` update checks and `lookups` latest lookups for today,
/// then moves today's rows (requests, clients, downloads) to `day`.
async fn settle(hub: &TestHub, checks: i64, lookups: i64, day: &str) {
    let db = connect(&hub.database_url).await;
    let written = async {
        loop {
            let row = db
                .query_one(
                    "SELECT coalesce(sum(count) FILTER (WHERE event = 'check'), 0)::int8,
                            coalesce(sum(count) FILTER (WHERE event = 'latest'), 0)::int8
                     FROM usage_daily WHERE day = current_date",
                    &[],
                )
                .await
                .unwrap();
            if (row.get::<_, i64>(0), row.get::<_, i64>(1)) == (checks, lookups) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), written)
        .await
        .expect("the Hub writes what it recorded within seconds");
    // Downloads are counted after their answers too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for table in ["usage_daily", "usage_clients", "download_counts"] {
        db.execute(
            &format!("UPDATE {table} SET day = $1::text::date WHERE day = current_date"),
            &[&day],
        )
        .await
        .unwrap();
    }
}

/// What the test did, to compare with what the Hub reports.
#[derive(Default)]
struct Ledger {
    checks: BTreeMap<(String, String), i64>,
    lookups: BTreeMap<(String, String), i64>,
    downloads: BTreeMap<(String, String), i64>,
    /// Per day: the distinct clients running each version.
    running: BTreeMap<String, BTreeMap<String, BTreeSet<usize>>>,
    /// Per day: every distinct client seen.
    seen: BTreeMap<String, BTreeSet<usize>>,
    offered: BTreeSet<usize>,
    adopted: BTreeSet<usize>,
}

/// Within the HyperLogLog's error: three standard errors, and never closer than 2 for tiny
/// counts.
fn close(estimate: u64, exact: usize, what: &str) {
    let tolerance = (exact as f64 * 3.0 * atlas_hub::domain::hll::STANDARD_ERROR).max(2.0);
    assert!(
        (estimate as f64 - exact as f64).abs() <= tolerance,
        "{what}: estimated {estimate}, exactly {exact}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_clients_over_three_days_are_counted_exactly_and_estimated_closely() {
    // Writes once a second instead of every 10: the test waits for each simulated day's.
    let hub = TestHub::start_with(HubOptions {
        env: vec![("ATLAS_STATS_WRITE_SECS".into(), "1".into())],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": ["linux-x86_64"]}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    for version in ["1.0.0", "1.1.0"] {
        let artifacts = vec![
            signed(
                "linux",
                "x86_64",
                "appimage",
                &format!("{version}-l"),
                Some(true),
            ),
            signed(
                "windows",
                "x86_64",
                "nsis",
                &format!("{version}-w"),
                Some(true),
            ),
        ];
        let channel = (version == "1.0.0").then_some("stable");
        let (status, body) = publish(&hub, &app, "launcher", version, channel, &artifacts).await;
        assert_eq!(status, 201, "{body}");
    }
    let http = client();
    let mut ledger = Ledger::default();
    // Who runs what: everyone starts on 1.0.0.
    let mut running: Vec<String> = vec!["1.0.0".to_owned(); CLIENTS];

    for (d, day) in DAYS.iter().enumerate() {
        if d == 1 {
            // Day 2: stable offers 1.1.0 to half its clients.
            let r = hub
                .api()
                .bearer(&app)
                .put(
                    "/api/v1/releases/launcher/channels/stable",
                    json!({"version": "1.1.0", "rolloutPercent": 50}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let (mut checks, mut lookups) = (0, 0);
        #[allow(clippy::needless_range_loop)] // `i` is the client: its id, platform and version
        for i in 0..CLIENTS {
            let (os, arch) = platform_of(i);
            let platform = format!("{os}-{arch}");
            let id = id_of(i);
            let version = running[i].clone();
            // Every client checks for an update once a day.
            let r = http
                .get(hub.at(&format!("/api/v1/updater/launcher/{os}/{arch}/{version}")))
                .header("x-atlas-client-id", &id)
                .send()
                .await
                .unwrap();
            assert!(r.status() == 200 || r.status() == 204, "{}", r.status());
            checks += 1;
            *ledger
                .checks
                .entry((day.to_string(), version.clone()))
                .or_default() += 1;
            ledger
                .running
                .entry(day.to_string())
                .or_default()
                .entry(version.clone())
                .or_default()
                .insert(i);
            ledger.seen.entry(day.to_string()).or_default().insert(i);
            if d == 2 && version == "1.1.0" {
                ledger.adopted.insert(i);
            }
            if r.status() == 200 {
                let offered: Value = r.json().await.unwrap();
                assert_eq!(offered["version"], "1.1.0");
                ledger.offered.insert(i);
                // Three in four offered clients install it by the next day.
                if i % 4 != 0 {
                    running[i] = "1.1.0".to_owned();
                }
            }
            // Every fourth client also looks up latest (its runner does), and every fifth
            // downloads through the latest-download redirect.
            if i % 4 == 1 {
                let r = http
                    .get(hub.at(&format!(
                        "/api/v1/releases/launcher/latest/{os}/{arch}?clientId={id}"
                    )))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let served: Value = r.json().await.unwrap();
                let v = served["version"].as_str().unwrap().to_owned();
                lookups += 1;
                *ledger.lookups.entry((day.to_string(), v)).or_default() += 1;
            }
            if i % 5 == 2 {
                let r = http
                    .get(hub.at(&format!(
                        "/download/launcher/latest/{os}/{arch}?clientId={id}"
                    )))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 302);
                lookups += 1;
                // Which release the redirect went to is the rollout's business: counted as a
                // lookup of the day, its version left to the totals below.
                *ledger
                    .lookups
                    .entry((day.to_string(), "?".to_owned()))
                    .or_default() += 1;
                *ledger
                    .downloads
                    .entry((day.to_string(), platform.clone()))
                    .or_default() += 1;
            }
        }
        settle(&hub, checks, lookups, day).await;
    }
    assert!(
        ledger.offered.len() > CLIENTS / 4,
        "about half were offered: {}",
        ledger.offered.len()
    );

    let report = |by: &str| {
        let url = hub.at(&format!(
            "/api/v1/admin/stats/launcher?since={}&until={}&by={by}",
            DAYS[0], DAYS[2]
        ));
        let http = http.clone();
        let admin = admin.clone();
        async move {
            let r = http.get(url).bearer_auth(&admin).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };

    // By day: exact request counts, downloads, distinct clients close.
    let by_day = report("day").await;
    assert!(by_day["counted"].as_str().unwrap().contains("origin hits"));
    let rows = by_day["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{by_day}");
    for (row, day) in rows.iter().zip(DAYS) {
        assert_eq!(row["key"], day);
        let checks: i64 = ledger
            .checks
            .iter()
            .filter(|((d, _), _)| d == day)
            .map(|(_, n)| n)
            .sum();
        let lookups: i64 = ledger
            .lookups
            .iter()
            .filter(|((d, _), _)| d == day)
            .map(|(_, n)| n)
            .sum();
        let downloads: i64 = ledger
            .downloads
            .iter()
            .filter(|((d, _), _)| d == day)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(row["updateChecks"], checks, "{day}");
        assert_eq!(row["latestLookups"], lookups, "{day}");
        assert_eq!(row["downloads"], downloads, "{day}");
        close(
            row["distinctClients"].as_u64().unwrap(),
            ledger.seen[day].len(),
            day,
        );
    }
    close(
        by_day["totals"]["distinctClients"].as_u64().unwrap(),
        CLIENTS,
        "total clients",
    );
    let all_checks: i64 = ledger.checks.values().sum();
    assert_eq!(by_day["totals"]["updateChecks"], all_checks);

    // Versions in use over time: each day's share of clients on each version.
    let base = by_day["installedBase"].as_array().unwrap();
    assert_eq!(base.len(), 3);
    for entry in base {
        let day = entry["day"].as_str().unwrap();
        let exact = &ledger.running[day];
        let total: usize = exact.values().map(BTreeSet::len).sum();
        for v in entry["versions"].as_array().unwrap() {
            let version = v["version"].as_str().unwrap();
            let n = exact.get(version).map_or(0, BTreeSet::len);
            close(
                v["clients"].as_u64().unwrap(),
                n,
                &format!("{day} {version}"),
            );
            let share = v["share"].as_f64().unwrap();
            assert!(
                (share - n as f64 / total as f64).abs() < 0.05,
                "{day} {version}: {share}"
            );
        }
    }
    let last = &base[2]["versions"];
    assert!(
        last.as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == "1.1.0"),
        "{last}"
    );

    // By version: update checks by the version clients ran, exactly; latest lookups by the
    // version answered (at least the lookups whose answer the test read; all of them in all).
    let by_version = report("version").await;
    for row in by_version["rows"].as_array().unwrap() {
        let version = row["key"].as_str().unwrap();
        let checks: i64 = ledger
            .checks
            .iter()
            .filter(|((_, v), _)| v == version)
            .map(|(_, n)| n)
            .sum();
        let read: i64 = ledger
            .lookups
            .iter()
            .filter(|((_, v), _)| v == version)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(row["updateChecks"].as_i64().unwrap(), checks, "{version}");
        assert!(row["latestLookups"].as_i64().unwrap() >= read, "{version}");
    }
    let all_lookups: i64 = ledger.lookups.values().sum();
    assert_eq!(by_version["totals"]["latestLookups"], all_lookups);
    // By platform: exact downloads per platform.
    let by_platform = report("platform").await;
    for row in by_platform["rows"].as_array().unwrap() {
        let platform = row["key"].as_str().unwrap();
        let downloads: i64 = ledger
            .downloads
            .iter()
            .filter(|((_, p), _)| p == platform)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(row["downloads"], downloads, "{platform}");
    }

    // The rollout: offered to about half, adopted by those who came back on 1.1.0.
    let stable = by_day["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["channel"] == "stable")
        .unwrap()
        .clone();
    assert_eq!(
        (&stable["version"], &stable["rolloutPercent"]),
        (&json!("1.1.0"), &json!(50))
    );
    close(
        stable["offered"].as_u64().unwrap(),
        ledger.offered.len(),
        "offered",
    );
    close(
        stable["adopted"].as_u64().unwrap(),
        ledger.adopted.len(),
        "adopted",
    );

    // The CLI prints the same figures as a table.
    let run = crate::cli::atlas(
        &hub.url,
        &[("ATLAS_ADMIN_TOKEN", &admin)],
        &[
            "release",
            "stats",
            "--product",
            "launcher",
            "--since",
            DAYS[0],
            "--until",
            DAYS[2],
        ],
    );
    assert!(run.ok, "{run}");
    let total_line = run.stdout.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total_line.contains(&all_checks.to_string()), "{run}");
    assert!(run.stdout.contains("installed base on 2026-01-03"), "{run}");
    assert!(run.stdout.contains("stable   1.1.0"), "{run}");

    // No client id or address is stored: not in any table of the statistics, not even as
    // the hex of its bytes.
    let db = connect(&hub.database_url).await;
    let dump: String = db
        .query_one(
            "SELECT (SELECT string_agg(t::text, ' ') FROM usage_daily t) || ' ' ||
                    (SELECT string_agg(t::text, ' ') FROM usage_clients t)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for i in 0..CLIENTS {
        let id = id_of(i);
        assert!(!dump.contains(&id), "{id} is stored");
        assert!(
            !dump.contains(&hex::encode(id.as_bytes())),
            "{id} is stored as hex"
        );
    }
    assert!(!dump.contains("127.0.0.1"), "an address is stored");
}

/// How many days ago each stored statistics row is, in order.
async fn days(db: &tokio_postgres::Client) -> Vec<i32> {
    let rows = db
        .query(
            "SELECT (current_date - day)::int4 FROM usage_daily
             UNION ALL SELECT (current_date - day)::int4 FROM usage_clients ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, i32>(0)).collect()
}

#[tokio::test]
async fn pruning_removes_exactly_the_days_past_the_retention_period() {
    let secret = "cron-secret-0123456789abcdef";
    let hub = TestHub::start_with(HubOptions {
        env: vec![
            ("CRON_SECRET".into(), secret.into()),
            ("ATLAS_STATS_RETENTION_DAYS".into(), "400".into()),
        ],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&hub);
    let db = connect(&hub.database_url).await;
    let seed = |ago: i32| {
        let db = &db;
        async move {
            db.execute(
                "INSERT INTO usage_daily VALUES (current_date - $1::int4, 'launcher', 'check', 'stable', 'linux-x86_64', '', '1.0.0', '', 1)",
                &[&ago],
            )
            .await
            .unwrap();
            db.execute(
                "INSERT INTO usage_clients VALUES (current_date - $1::int4, 'launcher', 'all', '', decode(repeat('00', 1024), 'hex'))",
                &[&ago],
            )
            .await
            .unwrap();
        }
    };
    for ago in [500, 401, 400, 399, 0] {
        seed(ago).await;
    }
    // The scheduler's call (Vercel sends CRON_SECRET as a bearer token); a wrong one is refused.
    let r = client()
        .get(hub.at("/api/v1/admin/prune"))
        .bearer_auth("not-the-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(days(&db).await.len(), 10, "a refused prune removes nothing");
    let r = client()
        .get(hub.at("/api/v1/admin/prune"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pruned: Value = r.json().await.unwrap();
    assert_eq!(
        (&pruned["requestRows"], &pruned["clientRows"]),
        (&json!(2), &json!(2)),
        "{pruned}"
    );
    assert_eq!(days(&db).await, [0, 0, 399, 399, 400, 400]);

    // The same with database access, from the command line; and an admin token over HTTP.
    for ago in [402, 401] {
        seed(ago).await;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["admin", "prune", "--retention-days", "400"])
        .env("DATABASE_URL", &hub.database_url)
        .env("ATLAS_TOKEN_PEPPER", crate::support::PEPPER)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 request rows, 2 client rows"));
    assert_eq!(days(&db).await, [0, 0, 399, 399, 400, 400]);
    let r = client()
        .get(hub.at("/api/v1/admin/prune"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let audited: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'stats.prune'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 3);
}
