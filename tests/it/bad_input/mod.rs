//! The bad input corpus: what broken clients and attackers send to every public, CI and admin
//! route, over real HTTP to the local Hub (real PostgreSQL and S3). Each case must answer a
//! 4xx `application/problem+json` with a stable `code` (and, for field errors, a detail that
//! names the field), and nothing may be stored: the database tables and the bucket are
//! fingerprinted before and after the whole corpus. Raw TCP covers what no well-behaved HTTP
//! client can send (CR/LF in header values, conflicting lengths, request smuggling).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use atlas_hub::http::MAX_BODY_BYTES;
use serde_json::{Value, json};

use crate::api::{
    ALL_SCOPES, Artifact, admin_token, app_token, create_product, publish, upload_all,
};
use crate::support::{TestHub, client};

mod admin;
mod framing;
mod public;
mod releases;

use admin::admin_and_pack_cases;
use public::public_cases;
use releases::release_cases;

/// Which credential a case sends.
#[derive(Clone, Copy)]
enum Auth {
    None,
    App,
    Admin,
    Pack,
}

/// One request of the corpus and the problem it must get.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
    mentions: Option<String>,
}

impl Case {
    fn new(name: impl Into<String>, method: &'static str, path: impl Into<String>) -> Self {
        Case {
            name: name.into(),
            method,
            path: path.into(),
            auth: Auth::None,
            headers: Vec::new(),
            body: None,
            content_type: None,
            status: 400,
            code: "invalid_input",
            mentions: None,
        }
    }
    fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.content_type = Some("application/json");
        self
    }
    fn raw_body(mut self, body: impl Into<Vec<u8>>, content_type: Option<&'static str>) -> Self {
        self.body = Some(body.into());
        self.content_type = content_type;
        self
    }
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
    fn mentions(mut self, text: impl Into<String>) -> Self {
        self.mentions = Some(text.into());
        self
    }
}

/// Credentials of the corpus Hub.
struct Creds {
    admin: String,
    app: String,
    pack: String,
}

/// Sends a case; returns a description of what is wrong with the answer, if anything.
async fn check(hub: &TestHub, creds: &Creds, case: &Case) -> Option<String> {
    let mut r = client().request(case.method.parse().unwrap(), hub.at(&case.path));
    match case.auth {
        Auth::None => {}
        Auth::App => r = r.bearer_auth(&creds.app),
        Auth::Admin => r = r.bearer_auth(&creds.admin),
        Auth::Pack => r = r.header("x-atlas-pack-deploy-token", &creds.pack),
    }
    if let Some(ct) = case.content_type {
        r = r.header("content-type", ct);
    }
    for (k, v) in &case.headers {
        r = r.header(*k, v);
    }
    if let Some(body) = &case.body {
        r = r.body(body.clone());
    }
    let resp = match r.send().await {
        Ok(resp) => resp,
        Err(e) => return Some(format!("request failed: {e}")),
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut wrong = Vec::new();
    if status != case.status || body["code"] != case.code {
        wrong.push(format!(
            "answered {status} {} (expected {} {})",
            body["code"], case.status, case.code
        ));
    }
    if content_type != "application/problem+json" {
        wrong.push(format!("content-type {content_type:?}"));
    }
    for member in ["type", "title", "detail", "requestId"] {
        if !body[member].is_string() {
            wrong.push(format!("no {member}"));
        }
    }
    let detail = body["detail"].as_str().unwrap_or_default();
    if let Some(m) = &case.mentions
        && !detail.contains(m.as_str())
    {
        wrong.push(format!("detail does not mention {m:?}"));
    }
    // Details quote at most a bounded prefix of what was sent.
    if detail.len() > 600 {
        wrong.push(format!("detail of {} bytes", detail.len()));
    }
    (!wrong.is_empty()).then(|| format!("{}: {} — {}", case.name, wrong.join("; "), text))
}

/// Everything a bad request could have stored: a fingerprint of every table (tokens without
/// `lastUsedAt`, which authentication updates) and every file of the bucket.
async fn stored(hub: &TestHub) -> Vec<String> {
    let db = crate::support::connect(&hub.database_url).await;
    let mut out = Vec::new();
    for (table, columns) in [
        ("products", "t::text"),
        ("releases", "t::text"),
        ("artifacts", "t::text"),
        ("channels", "t::text"),
        ("packs", "t::text"),
        ("pack_builds", "t::text"),
        ("pack_channels", "t::text"),
        ("uploads", "t::text"),
        ("audit_log", "t::text"),
        ("oidc_used_jti", "t::text"),
        (
            "deploy_tokens",
            "concat_ws('|', t.id, t.kind, t.name, t.products, t.scopes, t.channels, t.revoked_at)",
        ),
    ] {
        let row = db
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg({columns}, E'\\n' ORDER BY {columns})), '')
                     FROM {table} t"
                ),
                &[],
            )
            .await
            .unwrap();
        out.push(format!(
            "{table}: {} rows {}",
            row.get::<_, i64>(0),
            row.get::<_, String>(1)
        ));
    }
    let mut files = Vec::new();
    list_files(&hub.bucket_dir, &mut files);
    files.sort();
    out.extend(files);
    out
}

fn list_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, out);
        } else {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(format!("file {} ({len} bytes)", path.display()));
        }
    }
}

/// A Hub with a product (`launcher` 1.0.0 on stable, linux-x86_64), an upload of 2.0.0 in
/// storage but not published, a pack `mods`, and admin, app and pack tokens.
async fn corpus_hub() -> (TestHub, Creds, Value) {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": ["linux-x86_64"]}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let one = Artifact::new("linux", "x86_64", "appimage", "one");
    let (status, body) = publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &[one]).await;
    assert_eq!(status, 201, "{body}");
    let two = Artifact::new("linux", "x86_64", "appimage", "two");
    let pending = upload_all(&hub, &app, "launcher", "2.0.0", &[two]).await[0].clone();
    let (status, body) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "mods", "name": "Mods"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");
    let (status, body) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "mods-ci", "kind": "pack", "pack": "mods"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");
    let pack = body["token"].as_str().unwrap().to_owned();
    (hub, Creds { admin, app, pack }, pending)
}

const SHA: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// `base` with `field` set to `value` (`artifacts.0.size` reaches into arrays).
fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut out = base.clone();
    let mut at = &mut out;
    let parts: Vec<&str> = field.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = match part.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*part],
        };
    }
    at[parts[parts.len() - 1]] = value;
    out
}

/// `base` without `field` (top level).
fn without(base: &Value, field: &str) -> Value {
    let mut out = base.clone();
    out.as_object_mut().unwrap().remove(field);
    out
}

fn presign_body() -> Value {
    json!({"product": "launcher", "version": "2.1.0", "os": "linux", "arch": "x86_64",
           "kind": "appimage", "filename": "app.AppImage", "size": 1000, "sha256": SHA,
           "contentType": "application/octet-stream"})
}

/// A publish of the pending 2.0.0 upload that only lacks being valid in one respect.
fn publish_body(pending: &Value) -> Value {
    json!({"version": "2.0.0", "notes": "n", "artifacts": [pending]})
}

fn pack_presign_body() -> Value {
    json!({"pack": "mods", "build": "b1", "filename": "mods.zip", "size": 10, "sha256": SHA,
           "contentType": "application/zip"})
}

fn deploy_body() -> Value {
    json!({"build": "b1", "channel": "live", "artifacts": [
        {"uploadId": "00000000-0000-4000-8000-000000000000", "size": 10, "sha256": SHA}]})
}

/// Filenames that must never become part of a storage key or a download name.
/// A JSON value short enough to name a case.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!(
            "{}… ({} bytes)",
            &s[..s.char_indices().nth(30).map_or(s.len(), |(i, _)| i)],
            s.len()
        )
    } else {
        s
    }
}

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const BAD_FILENAMES: &[&str] = &[
    "../evil.AppImage",
    "..",
    ".",
    "",
    "a/b.AppImage",
    "a\\b.AppImage",
    "..\\..\\win.ini",
    "a\0b",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\u{1b}[31mred",
    "a\u{7f}",
    "gpj.\u{202E}exe.AppImage",
    "\u{2066}x\u{2069}.AppImage",
    "app\u{200F}.AppImage",
    "%2e%2e%2fevil",
    "a b.AppImage",
    "$(reboot).AppImage",
    "`id`.AppImage",
    "a;rm -rf ~.AppImage",
    "a|b",
    "a&b",
    "x'; DROP TABLE uploads;--",
    "\"quoted\".AppImage",
    "app.AppImage\u{0}.txt",
    "ＡＰＰ.AppImage",
];

#[tokio::test]
async fn bad_input_is_refused_with_a_problem_and_stores_nothing() {
    let (hub, creds, pending) = corpus_hub().await;
    let before = stored(&hub).await;

    let mut cases = release_cases(&pending);
    cases.extend(admin_and_pack_cases());
    cases.extend(public_cases());
    let mut failures = Vec::new();
    for case in &cases {
        if let Some(f) = check(&hub, &creds, case).await {
            failures.push(f);
        }
    }
    eprintln!("bad input corpus: {} HTTP cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let after = stored(&hub).await;
    assert_eq!(before, after, "a refused request stored something");
    let log = hub.log();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        assert!(
            v["status"].as_u64().is_none_or(|s| s < 500) && !line.contains("panicked"),
            "{line}"
        );
    }
    // Still serving, and the Hub still publishes what the corpus could not.
    let (status, body) = hub
        .api()
        .get("/api/v1/releases/launcher/latest/linux/x86_64")
        .await
        .parts();
    assert_eq!(
        (status, body["version"].as_str()),
        (200, Some("1.0.0")),
        "{body}"
    );
}

/// Names are display text: SQL and shell metacharacters in them are stored exactly as sent
/// (every statement is parameterised) and change nothing else.
#[tokio::test]
async fn metacharacters_in_names_are_stored_verbatim_and_harmlessly() {
    let hub = TestHub::start().await;
    let admin = admin_token(&hub);
    let nasty = "Robert'); DROP TABLE deploy_tokens;-- $(reboot) `id` | & ; <x>";
    let (status, product) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/products",
            json!({"slug": "launcher", "name": nasty}),
        )
        .await
        .parts();
    assert_eq!(
        (status, product["name"].as_str()),
        (201, Some(nasty)),
        "{product}"
    );
    let (status, token) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": nasty, "kind": "app", "products": ["launcher"]}),
        )
        .await
        .parts();
    assert_eq!(
        (status, token["name"].as_str()),
        (201, Some(nasty)),
        "{token}"
    );
    let (status, list) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/tokens")
        .await
        .parts();
    assert_eq!(status, 200);
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&nasty), "{list}");
}
