//! What the fault and load tests share: multi-artifact releases uploaded the way CI uploads
//! them (presign, then a PUT straight to storage), against any base URL (the local Hub or a
//! function alone), and the check that the database holds only whole releases.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::Artifact;

/// Platforms every release and channel of the test product must cover.
pub const REQUIRED: [&str; 3] = ["linux-x86_64", "windows-x86_64", "darwin-aarch64"];

/// Artifacts per release made by [`files`].
pub const FILES_PER_RELEASE: usize = 4;

/// A Tauri `.sig` file (minisign), base64 as the updater serves it; the test product has no
/// `updaterPublicKey`, so any well-formed signature is accepted.
const SIG_FILE: &str = "untrusted comment: signature from minisign secret key\nRUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\ntrusted comment: timestamp:1633700835\tfile:test\tprehashed\nwLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==\n";

/// The files of one version: each required platform, two on Linux (the signed AppImage is
/// the primary one), contents unique to the version.
pub fn files(version: &str) -> Vec<Artifact> {
    use base64::Engine;
    let mut appimage = Artifact::new("linux", "x86_64", "appimage", &format!("{version}/a "));
    appimage.signature = Some(base64::engine::general_purpose::STANDARD.encode(SIG_FILE));
    appimage.primary = Some(true);
    vec![
        appimage,
        Artifact::new("linux", "x86_64", "deb", &format!("{version}/d ")),
        Artifact::new("windows", "x86_64", "nsis", &format!("{version}/w ")),
        Artifact::new("darwin", "aarch64", "dmg", &format!("{version}/m ")),
    ]
}

/// An HTTP client that follows no redirect and gives up after `timeout` (a hang fails the
/// test instead of stalling it).
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap()
}

/// `POST /api/v1/storage/presign` for `a`; (status, body).
pub async fn presign(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    version: &str,
    a: &Artifact,
) -> Result<(u16, Value), reqwest::Error> {
    let r = c
        .post(format!("{base}/api/v1/storage/presign"))
        .bearer_auth(token)
        .json(&json!({
            "product": product, "version": version, "os": a.os, "arch": a.arch,
            "kind": a.kind, "filename": a.filename, "size": a.bytes.len(),
            "sha256": a.sha256(), "contentType": "application/octet-stream",
        }))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// PUTs `bytes` to a presigned upload with exactly the returned headers (the length comes
/// from the body); storage's status.
pub async fn put_object(
    c: &reqwest::Client,
    presigned: &Value,
    bytes: &[u8],
) -> Result<u16, reqwest::Error> {
    let mut r = c.put(presigned["url"].as_str().unwrap_or_default());
    for (k, v) in presigned["uploadHeaders"].as_object().into_iter().flatten() {
        if !k.eq_ignore_ascii_case("content-length") {
            r = r.header(k, v.as_str().unwrap_or_default());
        }
    }
    Ok(r.body(bytes.to_vec()).send().await?.status().as_u16())
}

/// The publish entry for an artifact presigned as `presigned`.
pub fn entry(a: &Artifact, presigned: &Value) -> Value {
    let mut e = json!({
        "uploadId": presigned["uploadId"], "os": a.os, "arch": a.arch, "kind": a.kind,
        "size": a.bytes.len(), "sha256": a.sha256(),
    });
    if let Some(s) = &a.signature {
        e["signature"] = json!(s);
    }
    if let Some(p) = a.primary {
        e["primary"] = json!(p);
    }
    e
}

/// Presigns and uploads every file of `version` (healthy services expected) and returns the
/// publish body, with `channel` when given.
pub async fn prepare(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    version: &str,
    channel: Option<&str>,
) -> Value {
    let mut entries = Vec::new();
    for a in files(version) {
        let (status, p) = presign(c, base, token, product, version, &a).await.unwrap();
        assert_eq!(status, 200, "presign {version} {}: {p}", a.filename);
        if p["alreadyUploaded"] != true {
            let put = put_object(c, &p, &a.bytes).await.unwrap();
            assert_eq!(put, 200, "upload {version} {}", a.filename);
        }
        entries.push(entry(&a, &p));
    }
    let mut body =
        json!({"version": version, "notes": format!("notes of {version}"), "artifacts": entries});
    if let Some(ch) = channel {
        body["channel"] = json!(ch);
    }
    body
}

/// `POST /api/v1/releases/{product}/publish`; (status, body).
pub async fn publish(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let r = c
        .post(format!("{base}/api/v1/releases/{product}/publish"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// What [`assert_whole`] found.
#[derive(Debug)]
pub struct Holdings {
    /// Every release version of the product.
    pub versions: BTreeSet<String>,
    /// Channel name → version it points at (channels without a release are left out).
    pub channels: BTreeMap<String, String>,
}

/// Checks that the database holds only whole releases of `product`: each release has all
/// [`FILES_PER_RELEASE`] artifacts covering [`REQUIRED`], one primary per platform, and
/// exactly one `release.publish` audit row counting them; no publish audit row lacks its
/// release; every channel points at an existing release covering the required platforms, and
/// its last `channel.move` audit row names that release.
pub async fn assert_whole(database_url: &str, product: &str) -> Holdings {
    let db = crate::support::connect(database_url).await;
    let required: BTreeSet<String> = REQUIRED.iter().map(|p| p.to_string()).collect();

    let rows = db
        .query(
            "SELECT r.version, count(a.id)::int8,
                    coalesce(array_agg(DISTINCT a.os || '-' || a.arch) FILTER (WHERE a.id IS NOT NULL), '{}'),
                    count(DISTINCT a.os || '-' || a.arch) FILTER (WHERE a.is_primary)::int8,
                    count(a.id) FILTER (WHERE a.is_primary)::int8
             FROM releases r JOIN products p ON p.id = r.product_id
             LEFT JOIN artifacts a ON a.release_id = r.id
             WHERE p.slug = $1 GROUP BY r.id, r.version",
            &[&product],
        )
        .await
        .unwrap();
    let mut versions = BTreeSet::new();
    for row in &rows {
        let version: String = row.get(0);
        let count: i64 = row.get(1);
        let platforms: BTreeSet<String> = row.get::<_, Vec<String>>(2).into_iter().collect();
        let (primary_platforms, primaries): (i64, i64) = (row.get(3), row.get(4));
        assert_eq!(
            count, FILES_PER_RELEASE as i64,
            "{product} {version} has {count} artifacts, not {FILES_PER_RELEASE}"
        );
        assert_eq!(platforms, required, "{product} {version} platforms");
        assert_eq!(
            (primary_platforms, primaries),
            (REQUIRED.len() as i64, REQUIRED.len() as i64),
            "{product} {version}: one primary per platform"
        );
        versions.insert(version);
    }

    let audited = db
        .query(
            "SELECT subject, count(*)::int8, min((detail->>'artifacts')::int8), max((detail->>'artifacts')::int8)
             FROM audit_log WHERE action = 'release.publish' AND subject LIKE $1 || '@%'
             GROUP BY subject",
            &[&product],
        )
        .await
        .unwrap();
    let mut publish_audited = BTreeSet::new();
    for row in &audited {
        let subject: String = row.get(0);
        let (n, min, max): (i64, Option<i64>, Option<i64>) = (row.get(1), row.get(2), row.get(3));
        assert_eq!(n, 1, "{subject} audited {n} times");
        assert_eq!(
            (min, max),
            (
                Some(FILES_PER_RELEASE as i64),
                Some(FILES_PER_RELEASE as i64)
            ),
            "{subject}: audited artifact count"
        );
        publish_audited.insert(subject[product.len() + 1..].to_owned());
    }
    assert_eq!(
        publish_audited, versions,
        "release.publish audit rows and releases differ"
    );

    let channel_rows = db
        .query(
            "SELECT c.name, c.release_id, r.version,
                    coalesce((SELECT array_agg(DISTINCT a.os || '-' || a.arch) FROM artifacts a
                              WHERE a.release_id = c.release_id), '{}'),
                    (SELECT l.detail->>'to' FROM audit_log l
                     WHERE l.action = 'channel.move' AND l.subject = p.slug || '/' || c.name
                     ORDER BY l.id DESC LIMIT 1)
             FROM channels c JOIN products p ON p.id = c.product_id
             LEFT JOIN releases r ON r.id = c.release_id
             WHERE p.slug = $1",
            &[&product],
        )
        .await
        .unwrap();
    let mut channels = BTreeMap::new();
    for row in &channel_rows {
        let name: String = row.get(0);
        let Some(_) = row.get::<_, Option<i64>>(1) else {
            continue;
        };
        let version: Option<String> = row.get(2);
        let version = version.unwrap_or_else(|| panic!("{product}/{name} points at no release"));
        let platforms: BTreeSet<String> = row.get::<_, Vec<String>>(3).into_iter().collect();
        assert!(
            platforms.is_superset(&required),
            "{product}/{name} serves {version} covering only {platforms:?}"
        );
        let last_move: Option<String> = row.get(4);
        assert_eq!(
            last_move.as_deref(),
            Some(version.as_str()),
            "{product}/{name}: the last channel.move audit row names another release"
        );
        channels.insert(name, version);
    }
    let moved_to = db
        .query(
            "SELECT DISTINCT l.detail->>'to' FROM audit_log l
             WHERE l.action = 'channel.move' AND l.subject LIKE $1 || '/%'",
            &[&product],
        )
        .await
        .unwrap();
    for row in &moved_to {
        let to: String = row.get(0);
        assert!(
            versions.contains(&to),
            "a channel.move audit row names {to}, which is not a release"
        );
    }
    Holdings { versions, channels }
}
