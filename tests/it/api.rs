//! Client-side steps of the release flow, as CI and operators perform them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Function, TestHub, client, curl, sha256_hex, temp_file};

/// Creates an admin token with the CLI against the Hub's database.
pub fn admin_token(hub: &TestHub) -> String {
    admin_token_on(&hub.database_url)
}

/// Creates an admin token with the CLI on `database_url` (behind a pooler: the direct one).
pub fn admin_token_on(database_url: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["admin", "bootstrap-token", "--name", "operator"])
        .env("DATABASE_URL", database_url)
        .env("ATLAS_TOKEN_PEPPER", crate::support::PEPPER)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("atlas_admin_"), "{token}");
    token
}

/// An answer: status, headers, and the JSON body (null when there is none).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem's `code`.
    pub fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }
}

impl Reply {
    /// (status, body), for the tests that only look at those.
    pub fn parts(self) -> (u16, Value) {
        (self.status, self.body)
    }
}

/// The tests' one HTTP client for the Hub's API: a base URL, the headers every request of
/// it sends (a bearer token, a forwarded address), and one method per HTTP verb, each
/// answered as a [`Reply`]. `hub.api().bearer(&admin).post(path, body)`.
#[derive(Clone)]
pub struct Api {
    base: String,
    headers: Vec<(String, String)>,
}

impl Api {
    /// Requests to `base` followed by each request's path (`""` when `base` is the whole URL).
    pub fn new(base: impl Into<String>) -> Self {
        Api {
            base: base.into(),
            headers: Vec::new(),
        }
    }

    /// `Authorization: Bearer <token>` on every request.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers.iter().fold(self, |api, (k, v)| api.header(k, v))
    }

    pub async fn get(self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn delete(self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post(self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// `method` to the path with a JSON body when given; the body of the answer parsed as
    /// JSON (null when it is empty or not JSON).
    pub async fn send(self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut r = client().request(method, format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            r = r.header(k, v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl TestHub {
    /// A client of this Hub's API.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }
}

impl Function {
    /// A client of this function's API.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }
}

/// A product with `requiredPlatforms`.
pub async fn create_product(hub: &TestHub, admin: &str, slug: &str, extra: Value) -> Value {
    let mut body = json!({"slug": slug, "name": slug});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let (status, product) = hub
        .api()
        .bearer(admin)
        .post("/api/v1/admin/products", body)
        .await
        .parts();
    assert_eq!(status, 201, "{product}");
    product
}

/// An app token for `products` with every scope unless `scopes` says otherwise.
pub async fn app_token(
    hub: &TestHub,
    admin: &str,
    products: &[&str],
    scopes: &[&str],
    channels: &[&str],
) -> String {
    let mut body = json!({"name": "ci", "kind": "app", "products": products, "scopes": scopes});
    if !channels.is_empty() {
        body["channels"] = json!(channels);
    }
    let (status, created) = hub
        .api()
        .bearer(admin)
        .post("/api/v1/admin/tokens", body)
        .await
        .parts();
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

/// All four app scopes.
pub const ALL_SCOPES: &[&str] = &["upload", "publish", "promote", "yank"];

/// A file to publish.
pub struct Artifact {
    pub os: &'static str,
    pub arch: &'static str,
    pub kind: &'static str,
    pub filename: String,
    pub bytes: Vec<u8>,
    pub signature: Option<String>,
    pub primary: Option<bool>,
}

impl Artifact {
    pub fn new(os: &'static str, arch: &'static str, kind: &'static str, content: &str) -> Self {
        Artifact {
            os,
            arch,
            kind,
            filename: format!("app-{os}-{arch}.{kind}"),
            bytes: content.as_bytes().repeat(1000),
            signature: None,
            primary: None,
        }
    }
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

/// Presigns `a` for `product`@`version`; returns the presign response.
pub async fn presign(
    hub: &TestHub,
    token: &str,
    product: &str,
    version: &str,
    a: &Artifact,
) -> (u16, Value) {
    hub.api()
        .bearer(token)
        .post(
            "/api/v1/storage/presign",
            json!({
                "product": product, "version": version, "os": a.os, "arch": a.arch, "kind": a.kind,
                "filename": a.filename, "size": a.bytes.len(), "sha256": a.sha256(),
                "contentType": "application/octet-stream",
            }),
        )
        .await
        .parts()
}

/// Uploads `bytes` with curl to the presigned URL with exactly the returned headers;
/// returns curl's HTTP status.
pub fn curl_upload(presigned: &Value, bytes: &[u8]) -> u16 {
    curl_upload_with(presigned, bytes, &[])
}

/// Like [`curl_upload`], with some returned headers replaced by `overrides`.
pub fn curl_upload_with(presigned: &Value, bytes: &[u8], overrides: &[(&str, &str)]) -> u16 {
    let file = temp_file("upload.bin", bytes);
    let mut args: Vec<String> = vec![
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "-X".into(),
        "PUT".into(),
        "-T".into(),
        file.display().to_string(),
    ];
    for (k, v) in presigned["uploadHeaders"].as_object().unwrap() {
        let v = overrides
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| v.as_str().unwrap());
        args.push("-H".into());
        args.push(format!("{k}: {v}"));
    }
    args.push(presigned["url"].as_str().unwrap().to_owned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, out) = curl(&refs);
    out.trim().parse().unwrap_or(0)
}

/// Presigns and uploads each artifact; returns publish entries.
pub async fn upload_all(
    hub: &TestHub,
    token: &str,
    product: &str,
    version: &str,
    artifacts: &[Artifact],
) -> Vec<Value> {
    let mut entries = Vec::new();
    for a in artifacts {
        let (status, p) = presign(hub, token, product, version, a).await;
        assert_eq!(status, 200, "{p}");
        if !p["alreadyUploaded"].as_bool().unwrap() {
            assert_eq!(curl_upload(&p, &a.bytes), 200, "upload of {}", a.filename);
        }
        let mut e = json!({
            "uploadId": p["uploadId"], "os": a.os, "arch": a.arch, "kind": a.kind,
            "size": a.bytes.len(), "sha256": a.sha256(),
        });
        if let Some(s) = &a.signature {
            e["signature"] = json!(s);
        }
        if let Some(p) = a.primary {
            e["primary"] = json!(p);
        }
        entries.push(e);
    }
    entries
}

/// Uploads and publishes; returns (status, body).
pub async fn publish(
    hub: &TestHub,
    token: &str,
    product: &str,
    version: &str,
    channel: Option<&str>,
    artifacts: &[Artifact],
) -> (u16, Value) {
    let entries = upload_all(hub, token, product, version, artifacts).await;
    let mut body = json!({"version": version, "notes": "release notes", "artifacts": entries});
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    hub.api()
        .bearer(token)
        .post(&format!("/api/v1/releases/{product}/publish"), body)
        .await
        .parts()
}

/// Moves a channel.
pub async fn move_channel(
    hub: &TestHub,
    token: &str,
    product: &str,
    channel: &str,
    body: Value,
) -> (u16, Value) {
    hub.api()
        .bearer(token)
        .put(
            &format!("/api/v1/releases/{product}/channels/{channel}"),
            body,
        )
        .await
        .parts()
}

/// The version `channel` serves for a platform, or None on 404.
pub async fn latest_version(
    hub: &TestHub,
    product: &str,
    channel: &str,
    os: &str,
    arch: &str,
) -> Option<String> {
    let (status, body) = hub
        .api()
        .get(&format!(
            "/api/v1/releases/{product}/latest/{os}/{arch}?channel={channel}"
        ))
        .await
        .parts();
    match status {
        200 => Some(body["version"].as_str().unwrap().to_owned()),
        404 => None,
        other => panic!("latest answered {other}: {body}"),
    }
}

/// Counts rows of `table` in the Hub's database matching `filter`.
pub async fn count_rows(hub: &TestHub, table: &str, filter: &str) -> i64 {
    let db = crate::support::connect(&hub.database_url).await;
    db.query_one(&format!("SELECT count(*) FROM {table} WHERE {filter}"), &[])
        .await
        .unwrap()
        .get(0)
}
