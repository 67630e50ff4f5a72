//! One rollout rule on every route that answers "what should this client run": the dynamic
//! updater, `latest.json`, the latest lookup, the latest download and the runner installer
//! (run under `dash`). At 25%, 400 client ids: about a quarter get the new release on each
//! route, and the same ones on every route; at 0% nobody new; clients without an id as
//! documented; the cache headers of each case.

use std::collections::BTreeSet;
use std::process::Command;

use atlas_hub::domain::rollout::{bucket, offered};
use serde_json::json;

use crate::api::{
    ALL_SCOPES, Artifact, Reply, admin_token, app_token, create_product, move_channel, publish,
};
use crate::support::{TestHub, curl, sha256_hex, temp_file, work_dir};

const IDS: usize = 400;

fn ids() -> Vec<String> {
    (0..IDS).map(|i| format!("install-{i:03}")).collect()
}

/// A signed runner release: the updater routes need signatures, the installer does not.
fn runner(version: &str) -> Vec<Artifact> {
    let mut a = Artifact::new(
        "linux",
        "x86_64",
        "appimage",
        &format!("#!/bin/sh\necho runner {version}\n"),
    );
    a.filename = "atlas-runner".into();
    a.signature = Some(crate::cli::sig());
    vec![a]
}

/// Which clients got `version` from one route, and the `Cache-Control` answers it gave.
struct Seen {
    got_new: BTreeSet<String>,
    cache: BTreeSet<String>,
}

async fn over_http(
    hub: &TestHub,
    ids: &[String],
    path: impl Fn(&str) -> (String, bool),
    new: impl Fn(&Reply) -> bool,
) -> Seen {
    let mut seen = Seen {
        got_new: BTreeSet::new(),
        cache: BTreeSet::new(),
    };
    for id in ids {
        let (path, by_header) = path(id);
        let headers: Vec<(&str, &str)> = if by_header {
            vec![("x-atlas-client-id", id.as_str())]
        } else {
            vec![]
        };
        let reply = hub.api().headers(&headers).get(&path).await;
        assert!(
            [200, 204, 302].contains(&reply.status),
            "{path}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply
                .header("vary")
                .is_some_and(|v| v.contains("x-atlas-client-id"))
                || reply.status == 302,
            "{path}: no Vary: x-atlas-client-id"
        );
        if new(&reply) {
            seen.got_new.insert(id.clone());
        }
        seen.cache
            .insert(reply.header("cache-control").unwrap_or_default().to_owned());
    }
    seen
}

/// The installer script, fetched once, run under dash for each client id (8 at a time).
fn installer_versions(hub: &TestHub, ids: &[Option<String>]) -> Vec<String> {
    let script = temp_file("install.sh", b"");
    let (ok, out) = curl(&[
        "-fsS",
        "-o",
        script.to_str().unwrap(),
        &hub.at("/download/runner/install"),
    ]);
    assert!(ok, "{out}");
    let run = |id: &Option<String>| {
        let dir = work_dir()
            .join("install")
            .join(crate::support::unique_name("r"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("dash");
        cmd.arg(&script)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", &dir)
            .env("ATLAS_INSTALL_DIR", &dir);
        if let Some(id) = id {
            cmd.env("ATLAS_CLIENT_ID", id);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
        text.split("installed atlas-runner ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{text}"))
            .to_owned()
    };
    let mut out = vec![String::new(); ids.len()];
    std::thread::scope(|s| {
        for (ids, out) in ids.chunks(IDS / 8).zip(out.chunks_mut(IDS / 8)) {
            s.spawn(move || {
                for (id, o) in ids.iter().zip(out.iter_mut()) {
                    *o = run(id);
                }
            });
        }
    });
    out
}

/// Every route, for every id: who got `new`.
async fn every_route(hub: &TestHub, ids: &[String], new: &str) -> Vec<(&'static str, Seen)> {
    let mut routes = Vec::new();
    let new_version = |r: &Reply| r.body["version"] == new;
    routes.push((
        "dynamic updater (header)",
        over_http(
            hub,
            ids,
            |_| ("/api/v1/updater/runner/linux/x86_64/1.0.0".into(), true),
            |r| r.status == 200 && new_version(r),
        )
        .await,
    ));
    routes.push((
        "latest.json (?clientId=)",
        over_http(
            hub,
            ids,
            |id| {
                (
                    format!("/api/v1/updater/runner/stable/latest.json?clientId={id}"),
                    false,
                )
            },
            new_version,
        )
        .await,
    ));
    routes.push((
        "latest lookup (header)",
        over_http(
            hub,
            ids,
            |_| ("/api/v1/releases/runner/latest/linux/x86_64".into(), true),
            new_version,
        )
        .await,
    ));
    routes.push((
        "latest lookup (?clientId=)",
        over_http(
            hub,
            ids,
            |id| {
                (
                    format!("/api/v1/releases/runner/latest/linux/x86_64?clientId={id}"),
                    false,
                )
            },
            new_version,
        )
        .await,
    ));
    let key = format!("/{new}/linux-x86_64/");
    routes.push((
        "latest download (?clientId=)",
        over_http(
            hub,
            ids,
            |id| {
                (
                    format!("/download/runner/latest/linux/x86_64?clientId={id}"),
                    false,
                )
            },
            |r| r.status == 302 && r.header("location").is_some_and(|l| l.contains(&key)),
        )
        .await,
    ));
    let versions = installer_versions(hub, &ids.iter().cloned().map(Some).collect::<Vec<_>>());
    routes.push((
        "runner installer",
        Seen {
            got_new: ids
                .iter()
                .zip(&versions)
                .filter(|(_, v)| *v == new)
                .map(|(id, _)| id.clone())
                .collect(),
            cache: BTreeSet::new(),
        },
    ));
    routes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staged_rollout_reaches_the_same_clients_on_every_consumer_route() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "runner", json!({})).await;
    let app = app_token(&hub, &admin, &["runner"], ALL_SCOPES, &[]).await;
    for version in ["1.0.0", "2.0.0"] {
        let channel = (version == "1.0.0").then_some("stable");
        let (status, body) =
            publish(&hub, &app, "runner", version, channel, &runner(version)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = move_channel(
        &hub,
        &app,
        "runner",
        "stable",
        json!({"version": "2.0.0", "rolloutPercent": 25}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let ids = ids();
    let expected: BTreeSet<String> = ids
        .iter()
        .filter(|id| offered(25, bucket("runner", "2.0.0", id)))
        .cloned()
        .collect();
    assert!(
        (70..=130).contains(&expected.len()),
        "{} of {IDS} in a 25% bucket",
        expected.len()
    );
    for (route, seen) in every_route(&hub, &ids, "2.0.0").await {
        assert_eq!(seen.got_new, expected, "{route}: not the rollout's clients");
        // An answer that depends on the bucket is cached by a shared cache only when the
        // id is in the URL.
        for cc in &seen.cache {
            if route.contains("(header)") {
                assert_eq!(cc, "private, no-store", "{route}");
            } else if !route.contains("download") {
                assert!(
                    cc.starts_with("public,") && cc.contains("s-maxage="),
                    "{route}: {cc}"
                );
            }
        }
    }

    // Without an id: bucketed by address where the route can, and never shared-cached;
    // the static manifest cannot bucket, so it serves the previous release, cacheable.
    let by_address = offered(25, bucket("runner", "2.0.0", "127.0.0.1"));
    let lookup = hub
        .api()
        .get("/api/v1/releases/runner/latest/linux/x86_64")
        .await;
    assert_eq!(
        lookup.body["version"],
        if by_address { "2.0.0" } else { "1.0.0" }
    );
    assert_eq!(lookup.header("cache-control"), Some("private, no-store"));
    let manifest = hub
        .api()
        .get("/api/v1/updater/runner/stable/latest.json")
        .await;
    assert_eq!(manifest.body["version"], "1.0.0", "{}", manifest.body);
    assert!(
        manifest
            .header("cache-control")
            .unwrap()
            .starts_with("public,")
    );
    // The installer sends a hash of the machine id, never the id itself.
    let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok().filter(|s| !s.is_empty()));
    let installer_key = match &machine {
        Some(m) => sha256_hex(format!("atlas-runner:{}", m.trim_end_matches('\n')).as_bytes()),
        None => "127.0.0.1".to_owned(),
    };
    let got = installer_versions(&hub, &vec![None; 8]);
    let want = if offered(25, bucket("runner", "2.0.0", &installer_key)) {
        "2.0.0"
    } else {
        "1.0.0"
    };
    assert!(got.iter().all(|v| v == want), "{got:?}, expected {want}");
    if let Some(m) = &machine {
        assert!(
            !hub.log().contains(m.trim()),
            "the machine id reached the Hub"
        );
    }

    // Raised to 60%: everyone who had it keeps it.
    let (status, body) = move_channel(
        &hub,
        &app,
        "runner",
        "stable",
        json!({"version": "2.0.0", "rolloutPercent": 60}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let wider = over_http(
        &hub,
        &ids,
        |id| {
            (
                format!("/api/v1/releases/runner/latest/linux/x86_64?clientId={id}"),
                false,
            )
        },
        |r| r.body["version"] == "2.0.0",
    )
    .await;
    assert!(wider.got_new.is_superset(&expected) && wider.got_new.len() > expected.len() * 2);

    // 0% halts: nobody gets 2.0.0 on any route.
    let (status, body) = move_channel(
        &hub,
        &app,
        "runner",
        "stable",
        json!({"version": "2.0.0", "rolloutPercent": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (route, seen) in every_route(&hub, &ids[..80], "2.0.0").await {
        assert!(
            seen.got_new.is_empty(),
            "{route}: {} clients got a halted release",
            seen.got_new.len()
        );
    }

    // 100%: everyone, the manifest without an id too, cacheable again.
    let (status, body) = move_channel(
        &hub,
        &app,
        "runner",
        "stable",
        json!({"version": "2.0.0", "rolloutPercent": 100}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (route, seen) in every_route(&hub, &ids[..80], "2.0.0").await {
        assert_eq!(seen.got_new.len(), 80, "{route}");
        for cc in &seen.cache {
            if !route.contains("download") {
                assert!(cc.starts_with("public,"), "{route}: {cc}");
            }
        }
    }
    let manifest = hub
        .api()
        .get("/api/v1/updater/runner/stable/latest.json")
        .await;
    assert_eq!(manifest.body["version"], "2.0.0");
}

#[tokio::test]
async fn client_ids_that_are_not_ids_are_refused() {
    let hub = TestHub::start().await;
    for (path, headers) in [
        (
            "/api/v1/releases/runner/latest/linux/x86_64?clientId=has%20space",
            vec![],
        ),
        (
            "/api/v1/updater/runner/linux/x86_64/1.0.0",
            vec![("x-atlas-client-id", "a b")],
        ),
        (
            "/api/v1/updater/runner/stable/latest.json?clientId=a",
            vec![("x-atlas-client-id", "b")],
        ),
    ] {
        let reply = hub.api().headers(&headers).get(path).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, Some("invalid_input")),
            "{path}: {}",
            reply.body
        );
    }
    let long = "x".repeat(201);
    let reply = hub
        .api()
        .get(&format!(
            "/download/runner/latest/linux/x86_64?clientId={long}"
        ))
        .await;
    assert_eq!((reply.status, reply.code()), (400, Some("invalid_input")));
}
