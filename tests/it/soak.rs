//! Load: a bounded soak of mixed traffic against the local Hub over real HTTP. Lookups,
//! download redirects and updater checks run alongside concurrent publishes (new versions,
//! four artifacts each, uploaded through the real presigned PUT) and concurrent channel moves
//! (compare-and-swap promotes and rollbacks). No answer may be a 5xx or missing; afterwards
//! every acknowledged publish is present with all its artifacts and every channel points at
//! a release that exists and covers the product's platforms.
//!
//! `ATLAS_SOAK_SECONDS` sets the length (default 60). The summary (requests per kind, status
//! counts) is printed and written to `target/tmp/atlas-it/soak-summary.txt`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{ALL_SCOPES, admin_token, app_token, create_product};
use crate::integrity::{
    FILES_PER_RELEASE, REQUIRED, assert_whole, client_with_timeout, entry, files, prepare, presign,
    publish, put_object,
};
use crate::support::{TestHub, work_dir};

const PRODUCT: &str = "launcher";
const CHANNELS: [&str; 3] = ["stable", "beta", "dev"];

/// Everything the workers saw.
#[derive(Default)]
struct Tally {
    /// (kind, status) → count; status 0 is a request without an HTTP answer.
    statuses: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Answers that break the soak's rules (5xx, no answer, an unexpected status).
    failures: Mutex<Vec<String>>,
    /// Versions whose publish was acknowledged (201, or 200 for an identical re-publish).
    acknowledged: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts an answer; anything outside `allowed` is a failure.
    fn record(
        &self,
        kind: &'static str,
        status: u16,
        allowed: &[u16],
        detail: impl FnOnce() -> String,
    ) {
        *self
            .statuses
            .lock()
            .unwrap()
            .entry((kind, status))
            .or_default() += 1;
        if !allowed.contains(&status) {
            self.failures
                .lock()
                .unwrap()
                .push(format!("{kind} answered {status}: {}", detail()));
        }
    }

    fn acknowledged(&self) -> Vec<String> {
        self.acknowledged.lock().unwrap().clone()
    }
}

fn soak_duration() -> Duration {
    let secs = std::env::var("ATLAS_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

fn pick<T: Copy>(items: &[T]) -> T {
    items[rand::random_range(0..items.len())]
}

/// GET `url`; (status, JSON body or null). No answer counts as status 0.
async fn get(c: &reqwest::Client, url: &str) -> (u16, Value, String) {
    match c.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
            )
        }
        Err(e) => (0, Value::Null, e.to_string()),
    }
}

/// Lookups, download redirects (by id and by latest), updater checks, release history.
async fn reader(hub: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let c = client_with_timeout(Duration::from_secs(30));
    while !stop.load(Ordering::Relaxed) {
        let channel = pick(&CHANNELS);
        let (os, arch) = pick(&REQUIRED).split_once('-').unwrap();
        let (status, body, text) = get(
            &c,
            &format!("{hub}/api/v1/releases/{PRODUCT}/latest/{os}/{arch}?channel={channel}"),
        )
        .await;
        tally.record("latest", status, &[200], || text);
        if let Some(id) = body["artifact"]["downloadId"].as_str() {
            let (status, _, text) = get(&c, &format!("{hub}/api/v1/download/{id}")).await;
            tally.record("download", status, &[302], || text);
        }
        let (status, _, text) = get(
            &c,
            &format!("{hub}/download/{PRODUCT}/latest/{os}/{arch}?channel={channel}"),
        )
        .await;
        tally.record("download latest", status, &[302], || text);
        // Only Linux AppImages are signed: other platforms have no update to offer (204).
        let (status, _, text) = get(
            &c,
            &format!("{hub}/api/v1/updater/{PRODUCT}/{os}/{arch}/0.9.0?channel={channel}"),
        )
        .await;
        tally.record("updater", status, &[200, 204], || text);
        if rand::random_range(0..10) == 0 {
            let (status, _, text) = get(
                &c,
                &format!("{hub}/api/v1/updater/{PRODUCT}/{channel}/latest.json"),
            )
            .await;
            tally.record("updater manifest", status, &[200], || text);
            let (status, _, text) =
                get(&c, &format!("{hub}/api/v1/releases/{PRODUCT}?limit=5")).await;
            tally.record("history", status, &[200], || text);
        }
    }
}

/// Publishes new versions (major `10 + worker`), every other one onto `dev`; every fifth is
/// published twice (the identical re-publish answers 200, or 409 `channel_moved` when it
/// names `dev` and the other publisher has moved `dev` to a newer version meanwhile).
async fn publisher(
    hub: String,
    token: String,
    worker: u64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let c = client_with_timeout(Duration::from_secs(30));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let version = format!("{}.{n}.0", 10 + worker);
        let mut entries = Vec::new();
        for a in files(&version) {
            let (status, p) = match presign(&c, &hub, &token, PRODUCT, &version, &a).await {
                Ok(answer) => answer,
                Err(e) => (0, json!(e.to_string())),
            };
            tally.record("presign", status, &[200], || p.to_string());
            if status != 200 {
                break;
            }
            let put = put_object(&c, &p, &a.bytes).await.unwrap_or(0);
            tally.record("upload", put, &[200], || {
                format!("{version} {}", a.filename)
            });
            if put != 200 {
                break;
            }
            entries.push(entry(&a, &p));
        }
        if entries.len() == FILES_PER_RELEASE {
            let mut body = json!({"version": version, "notes": "soak", "artifacts": entries});
            if n.is_multiple_of(2) {
                body["channel"] = json!("dev");
            }
            let times = if n.is_multiple_of(5) { 2 } else { 1 };
            for attempt in 0..times {
                let (status, answer) = publish(&c, &hub, &token, PRODUCT, &body)
                    .await
                    .unwrap_or_else(|e| (0, json!(e.to_string())));
                let expected = if attempt == 0 { 201 } else { 200 };
                // A re-publish naming dev after the other publisher moved dev to a newer
                // version is refused (a re-run never moves a channel back).
                let moved_on = attempt > 0 && status == 409 && answer["code"] == "channel_moved";
                let allowed: &[u16] = if moved_on { &[409] } else { &[expected] };
                tally.record("publish", status, allowed, || answer.to_string());
                if status == expected && attempt == 0 {
                    tally.acknowledged.lock().unwrap().push(version.clone());
                }
            }
        }
        n += 1;
    }
}

/// Moves `stable` and `beta` with compare-and-swap: a promote to a random acknowledged
/// version, or a rollback to the channel's previous one. Losing a race is 409 `channel_moved`.
async fn mover(hub: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let c = client_with_timeout(Duration::from_secs(30));
    while !stop.load(Ordering::Relaxed) {
        let channel = pick(&["stable", "beta"]);
        let (status, body, text) =
            get(&c, &format!("{hub}/api/v1/releases/{PRODUCT}/channels")).await;
        tally.record("channels", status, &[200], || text);
        let Some(current) = body["channels"]
            .as_array()
            .and_then(|l| l.iter().find(|ch| ch["name"] == channel))
            .cloned()
        else {
            continue;
        };
        let rollback = rand::random_range(0..3) == 0 && current["previousVersion"].is_string();
        let target = if rollback {
            current["previousVersion"].clone()
        } else {
            let acknowledged = tally.acknowledged();
            json!(acknowledged[rand::random_range(0..acknowledged.len())])
        };
        let kind = if rollback { "rollback" } else { "promote" };
        let answer = c
            .put(format!(
                "{hub}/api/v1/releases/{PRODUCT}/channels/{channel}"
            ))
            .bearer_auth(&token)
            .json(&json!({"version": target, "expectedVersion": current["version"]}))
            .send()
            .await;
        match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let allowed: &[u16] = if body["code"] == "channel_moved" {
                    &[409]
                } else {
                    &[200]
                };
                tally.record(kind, status, allowed, || body.to_string());
            }
            Err(e) => tally.record(kind, 0, &[], || e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_mixed_traffic_has_no_5xx_and_keeps_every_acknowledged_publish_whole() {
    let duration = soak_duration();
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        PRODUCT,
        json!({"requiredPlatforms": REQUIRED}),
    )
    .await;
    let token = app_token(&hub, &admin, &[PRODUCT], ALL_SCOPES, &[]).await;
    let c = client_with_timeout(Duration::from_secs(30));
    let tally = Arc::new(Tally::default());
    for (version, channel) in [("1.0.0", "stable"), ("1.1.0", "beta"), ("1.2.0", "dev")] {
        let body = prepare(&c, &hub.url, &token, PRODUCT, version, Some(channel)).await;
        let (status, answer) = publish(&c, &hub.url, &token, PRODUCT, &body).await.unwrap();
        assert_eq!(status, 201, "{answer}");
        tally.acknowledged.lock().unwrap().push(version.to_owned());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(tokio::spawn(reader(
            hub.url.clone(),
            tally.clone(),
            stop.clone(),
        )));
    }
    for worker in 0..2 {
        workers.push(tokio::spawn(publisher(
            hub.url.clone(),
            token.clone(),
            worker,
            tally.clone(),
            stop.clone(),
        )));
    }
    for _ in 0..2 {
        workers.push(tokio::spawn(mover(
            hub.url.clone(),
            token.clone(),
            tally.clone(),
            stop.clone(),
        )));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();

    let statuses = tally.statuses.lock().unwrap().clone();
    let total: u64 = statuses.values().sum();
    let mut per_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((kind, status), n) in &statuses {
        per_kind
            .entry(*kind)
            .or_default()
            .push(format!("{status}×{n}"));
    }
    let server_errors: u64 = statuses
        .iter()
        .filter(|((_, s), _)| *s >= 500 || *s == 0)
        .map(|(_, n)| n)
        .sum();
    let acknowledged = tally.acknowledged();
    let mut summary = format!(
        "soak: {total} requests in {:.1} s ({:.0}/s), {server_errors} 5xx or unanswered, \
         {} publishes acknowledged\n",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        acknowledged.len()
    );
    for (kind, counts) in &per_kind {
        let n: u64 = statuses
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, n)| n)
            .sum();
        summary += &format!("  {kind:<17} {n:>7}  {}\n", counts.join(" "));
    }
    println!("{summary}");
    let _ = std::fs::write(work_dir().join("soak-summary.txt"), &summary);

    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} answers broke the rules, first: {:#?}\n{summary}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(server_errors, 0, "{summary}");
    let count = |kind: &str, status: u16| statuses.get(&(kind, status)).copied().unwrap_or(0);
    assert!(acknowledged.len() >= 3 + 2, "too few publishes:\n{summary}");
    assert!(
        count("promote", 200) + count("rollback", 200) >= 2,
        "too few moves:\n{summary}"
    );
    for kind in ["latest", "download", "download latest", "updater"] {
        assert!(
            statuses.keys().any(|(k, _)| *k == kind),
            "no {kind} request:\n{summary}"
        );
    }

    // Every acknowledged publish is there, whole, as the API serves it.
    for version in &acknowledged {
        let (status, release, _) = get(
            &c,
            &hub.at(&format!("/api/v1/releases/{PRODUCT}/{version}")),
        )
        .await;
        assert_eq!(status, 200, "{version}: {release}");
        assert_eq!(
            release["artifacts"].as_array().map(Vec::len),
            Some(FILES_PER_RELEASE),
            "{version}: {release}"
        );
    }
    let holdings = assert_whole(&hub.database_url, PRODUCT).await;
    for version in &acknowledged {
        assert!(holdings.versions.contains(version), "{version} is missing");
    }
    for channel in CHANNELS {
        assert!(
            holdings.channels.contains_key(channel),
            "{channel} points at nothing"
        );
    }
}
