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
    ALL_SCOPES, Artifact, admin_token, app_token, call, create_product, publish, upload_all,
};
use crate::support::{TestHub, client};

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
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/admin/packs",
        Some(&admin),
        Some(json!({"slug": "mods", "name": "Mods"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &hub,
        "POST",
        "/api/v1/admin/tokens",
        Some(&admin),
        Some(json!({"name": "mods-ci", "kind": "pack", "pack": "mods"})),
    )
    .await;
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

fn release_cases(pending: &Value) -> Vec<Case> {
    let mut cases = Vec::new();
    let presign = presign_body();
    let post = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/storage/presign")
            .json(body)
            .auth(Auth::App)
    };

    // ---- Bodies that are not one JSON object, or not sent as JSON ----
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    for (path, method) in [
        ("/api/v1/storage/presign", "POST"),
        ("/api/v1/releases/launcher/publish", "POST"),
        ("/api/v1/releases/launcher/channels/stable", "PUT"),
        ("/api/v1/admin/tokens", "POST"),
        ("/api/v1/packs/mods/deploy", "POST"),
    ] {
        cases.push(
            Case::new(format!("{path}: body over the limit"), method, path)
                .raw_body(over.clone(), Some("application/json"))
                .auth(Auth::App)
                .expect(413, "payload_too_large"),
        );
        for (what, body) in [
            ("truncated JSON", &b"{\"na"[..]),
            ("not JSON", b"product=launcher&version=1.0.0"),
            ("a JSON array", b"[]"),
            ("a JSON string", b"\"x\""),
            ("two objects", b"{} {}"),
            ("trailing garbage", b"{}x"),
            ("invalid UTF-8", b"{\"\xff\xfe\": 1}"),
            ("a lone surrogate", b"{\"\\ud800\": 1}"),
            ("a NUL byte outside strings", b"{\"version\"\0: \"1.0.0\"}"),
        ] {
            cases.push(
                Case::new(format!("{path}: {what}"), method, path)
                    .raw_body(body.to_vec(), Some("application/json"))
                    .auth(Auth::Admin)
                    .expect(400, "invalid_json"),
            );
        }
        cases.push(
            Case::new(format!("{path}: 10000 nested arrays"), method, path)
                .raw_body("[".repeat(10_000), Some("application/json"))
                .auth(Auth::Admin)
                .expect(400, "invalid_json"),
        );
        cases.push(
            Case::new(format!("{path}: empty body"), method, path)
                .auth(Auth::Admin)
                .expect(400, "invalid_json"),
        );
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json; charset=latin1"),
            Some("application/jsonp"),
            Some("text/json"),
        ] {
            cases.push(
                Case::new(format!("{path}: content-type {ct:?}"), method, path)
                    .raw_body(b"{}".to_vec(), ct)
                    .auth(Auth::Admin)
                    .expect(415, "unsupported_media_type"),
            );
        }
    }
    // Nesting inside a field stops at the parser's recursion limit too.
    let closed = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for (what, body) in [
        (
            "10000 nested arrays in a field",
            format!("{{\"product\": {}}}", closed(10_000)),
        ),
        (
            "10000 nested objects",
            format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)),
        ),
    ] {
        cases.push(
            Case::new(
                format!("presign: {what}"),
                "POST",
                "/api/v1/storage/presign",
            )
            .raw_body(body, Some("application/json"))
            .auth(Auth::App)
            .expect(400, "invalid_json")
            .mentions("recursion limit"),
        );
    }
    // `; charset=utf-8` is JSON too: these get past the content type to the field error.
    for ct in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
    ] {
        cases.push(
            Case::new(
                format!("presign: {ct} is accepted"),
                "POST",
                "/api/v1/storage/presign",
            )
            .raw_body(with(&presign, "version", json!("01.2.3")).to_string(), None)
            .header("content-type", ct)
            .auth(Auth::App)
            .mentions("version"),
        );
    }

    // ---- Presign fields ----
    for f in BAD_FILENAMES {
        cases.push(
            post(
                &format!("presign: filename {f:?}"),
                &with(&presign, "filename", json!(f)),
            )
            .mentions("filename"),
        );
    }
    cases.push(
        post(
            "presign: filename of 201 characters",
            &with(&presign, "filename", json!("a".repeat(201))),
        )
        .mentions("filename"),
    );
    for (what, size) in [
        ("negative", json!(-1)),
        ("zero", json!(0)),
        ("i64::MIN", json!(i64::MIN)),
        ("2^63", json!(9_223_372_036_854_775_808u64)),
        ("2^64", json!(18_446_744_073_709_551_615u64)),
        ("over 2^64", Value::Null),
        ("fractional", json!(1.5)),
        ("exponent", json!(1e3)),
        ("a string", json!("1000")),
        ("null", Value::Null),
        ("a bool", json!(true)),
    ] {
        let body = if what == "over 2^64" {
            presign
                .to_string()
                .replace("\"size\":1000", "\"size\":123456789012345678901234567890")
        } else {
            with(&presign, "size", size).to_string()
        };
        cases.push(
            Case::new(
                format!("presign: size {what}"),
                "POST",
                "/api/v1/storage/presign",
            )
            .raw_body(body, Some("application/json"))
            .auth(Auth::App)
            .mentions("size"),
        );
    }
    cases.push(
        post(
            "presign: size over the single-PUT limit",
            &with(&presign, "size", json!(5i64 * 1024 * 1024 * 1024 + 1)),
        )
        .expect(413, "artifact_too_large"),
    );
    for sha in [
        "",
        "abc",
        &SHA[1..],
        &format!("{SHA}0"),
        &"g".repeat(64),
        &format!(" {}", &SHA[1..]),
        &format!("{}\n", &SHA[1..]),
        &"é".repeat(32),
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be0\0",
        "0x5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6b",
    ] {
        cases.push(
            post(
                &format!("presign: sha256 {sha:?}"),
                &with(&presign, "sha256", json!(sha)),
            )
            .mentions("sha256"),
        );
    }
    for v in [
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-01",
        "1.2",
        "1",
        "v",
        "",
        "latest",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\0",
        "1.2.3\n",
        "vv1.2.3",
        "V1.2.3",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "-1.2.3",
        "1.2.3-\u{202E}",
        "99999999999999999999.0.0",
        "1.0.0'; DROP TABLE releases;--",
        "$(reboot)",
        &format!("1.0.0-{}", "a".repeat(294)),
        &"1".repeat(300),
    ] {
        cases.push(
            post(
                &format!("presign: version {v:?}"),
                &with(&presign, "version", json!(v)),
            )
            .mentions("version"),
        );
    }
    for (field, value) in [
        ("product", "Launcher"),
        ("product", "launcher'; DROP TABLE products;--"),
        ("product", "launcher;rm -rf /"),
        ("product", "../launcher"),
        ("product", "launcher\0"),
        ("product", "-launcher"),
        ("product", ""),
        ("os", "freebsd"),
        ("os", "Linux"),
        ("os", "linux'--"),
        ("arch", "sparc"),
        ("arch", "x86-64"),
        ("arch", "$(uname -m)"),
        ("kind", "AppImage"),
        ("kind", "app image"),
        ("kind", "../deb"),
        ("kind", "deb;ls"),
        ("kind", ".deb"),
        ("contentType", "text/html\r\nx-injected: 1"),
        ("contentType", "application/octet-stream; a=\"b\""),
        ("contentType", "nonsense"),
    ] {
        cases.push(
            post(
                &format!("presign: {field} {value:?}"),
                &with(&presign, field, json!(value)),
            )
            .mentions(field),
        );
    }
    for field in ["product", "version", "os", "arch", "kind"] {
        cases
            .push(post(&format!("presign: no {field}"), &without(&presign, field)).mentions(field));
    }
    for (field, value) in [
        (
            "key",
            json!("releases/launcher/9.9.9/linux-x86_64/appimage/x"),
        ),
        ("extra", json!(1)),
        ("Product", json!("launcher")),
        ("__proto__", json!({})),
        ("uploadHeaders", json!({"x": "y"})),
    ] {
        cases.push(
            post(
                &format!("presign: unknown field {field}"),
                &with(&presign, field, value),
            )
            .mentions(format!("unknown field `{field}`")),
        );
    }
    cases.push(
        Case::new(
            "presign: duplicate field",
            "POST",
            "/api/v1/storage/presign",
        )
        .raw_body(
            presign.to_string().replace(
                "\"version\":\"2.1.0\"",
                "\"version\":\"2.1.0\",\"version\":\"9.9.9\"",
            ),
            Some("application/json"),
        )
        .auth(Auth::App)
        .mentions("duplicate field `version`"),
    );
    cases.push(
        post(
            "presign: pack and product at once",
            &with(&pack_presign_body(), "product", json!("launcher")),
        )
        .auth(Auth::Pack)
        .mentions("not both"),
    );
    for (field, value) in [
        ("build", "../b1"),
        ("build", "b 1"),
        ("build", "b1;id"),
        ("pack", "Mods"),
        ("filename", "../mods.zip"),
    ] {
        cases.push(
            post(
                &format!("presign pack: {field} {value:?}"),
                &with(&pack_presign_body(), field, json!(value)),
            )
            .auth(Auth::Pack)
            .mentions(field),
        );
    }

    // ---- Publish ----
    let publish = publish_body(pending);
    let pub_case = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/releases/launcher/publish")
            .json(body)
            .auth(Auth::App)
    };
    for v in [
        "01.2.3",
        "2.0",
        "v",
        &format!("2.0.0-{}", "a".repeat(300)),
        "2.0.0\0",
    ] {
        cases.push(
            pub_case(
                &format!("publish: version {v:?}"),
                &with(&publish, "version", json!(v)),
            )
            .mentions("version"),
        );
    }
    for (what, size) in [
        ("-1", json!(-1)),
        ("0", json!(0)),
        ("2^63", json!(9_223_372_036_854_775_808u64)),
        ("1.5", json!(1.5)),
    ] {
        cases.push(
            pub_case(
                &format!("publish: size {what}"),
                &with(&publish, "artifacts.0.size", size),
            )
            .mentions("artifacts[0].size"),
        );
    }
    for (field, value, mention) in [
        ("artifacts.0.sha256", json!("xyz"), "sha256"),
        ("artifacts.0.os", json!("linux'--"), "os"),
        ("artifacts.0.arch", json!("amd64;"), "arch"),
        ("artifacts.0.kind", json!("../x"), "kind"),
        (
            "artifacts.0.uploadId",
            json!("not-a-uuid"),
            "artifacts[0].uploadId",
        ),
        (
            "artifacts.0.uploadId",
            json!("'; DROP TABLE uploads;--"),
            "artifacts[0].uploadId",
        ),
        ("artifacts.0.primary", json!("yes"), "artifacts[0].primary"),
        (
            "artifacts.0.filename",
            json!("x.AppImage"),
            "unknown field `filename`",
        ),
        ("artifacts.0.extra", json!(null), "unknown field `extra`"),
        ("rolloutPercent", json!(101), "rolloutPercent"),
        ("rolloutPercent", json!(-1), "rolloutPercent"),
        ("rolloutPercent", json!(70000), "rolloutPercent"),
        ("rolloutPercent", json!(50.5), "rolloutPercent"),
        ("notes", json!("a\u{0}b"), "notes"),
        ("notes", json!("bell\u{7}"), "notes"),
        ("notes", json!("x".repeat(100_001)), "notes"),
        ("notes", json!(["a"]), "notes"),
        ("artifacts", json!([]), "artifacts"),
        ("artifacts", json!({}), "artifacts"),
        ("force", json!(true), "unknown field `force`"),
        ("product", json!("other"), "unknown field `product`"),
    ] {
        cases.push(
            pub_case(
                &format!("publish: {field} {}", short(&value)),
                &with(&publish, field, value),
            )
            .mentions(mention),
        );
    }
    let mut many = publish.clone();
    many["artifacts"] = json!(vec![publish["artifacts"][0].clone(); 65]);
    cases.push(pub_case("publish: 65 artifacts", &many).mentions("artifacts"));
    for (what, key) in [
        ("NUL", "releases/launcher/2.0.0/linux-x86_64/appimage/app\0"),
        ("newline", "releases/launcher/2.0.0\n/x"),
        ("bidi", "releases/launcher/2.0.0/\u{202E}x"),
        ("empty", ""),
    ] {
        let mut body = publish.clone();
        body["artifacts"][0] = without(&body["artifacts"][0], "uploadId");
        body["artifacts"][0]["key"] = json!(key);
        cases.push(
            pub_case(&format!("publish: key with {what}"), &body).mentions("artifacts[0].key"),
        );
    }
    let mut long_key = publish.clone();
    long_key["artifacts"][0] = without(&long_key["artifacts"][0], "uploadId");
    long_key["artifacts"][0]["key"] = json!("k".repeat(5000));
    cases.push(pub_case("publish: key of 5000 characters", &long_key).mentions("artifacts[0].key"));
    for (what, channel) in [
        ("unknown", "prod"),
        ("SQL", "stable'; --"),
        ("upper case", "Stable"),
    ] {
        cases.push(
            pub_case(
                &format!("publish: channel {what}"),
                &with(&publish, "channel", json!(channel)),
            )
            .expect(404, "not_found")
            .mentions("channel"),
        );
    }
    for sig in [
        "https://example.com/app.sig",
        "not base64!",
        "aGVsbG8=",
        &"A".repeat(9000),
        "\0",
    ] {
        cases.push(
            pub_case(
                &format!("publish: signature {}", short(&json!(sig))),
                &with(&publish, "artifacts.0.signature", json!(sig)),
            )
            .expect(422, "invalid_signature")
            .mentions(".sig file"),
        );
    }
    cases.push(
        pub_case(
            "publish: an upload of another version",
            &with(&publish, "version", json!("2.0.1")),
        )
        .expect(422, "upload_unknown"),
    );
    cases.push(
        pub_case(
            "publish: declared size differs from the upload",
            &with(
                &publish,
                "artifacts.0.size",
                json!(pending["size"].as_i64().unwrap() + 1),
            ),
        )
        .expect(422, "artifact_mismatch"),
    );

    // ---- Channel moves ----
    let mv = json!({"version": "1.0.0"});
    let move_case = |name: &str, channel: &str, body: &Value| {
        Case::new(
            name,
            "PUT",
            format!("/api/v1/releases/launcher/channels/{channel}"),
        )
        .json(body)
        .auth(Auth::App)
    };
    for (field, value, mention) in [
        ("version", json!("01.0.0"), "version"),
        ("version", json!(1), "version"),
        ("expectedVersion", json!("1.0"), "expectedVersion"),
        ("expectedVersion", json!(["1.0.0"]), "expectedVersion"),
        ("rolloutPercent", json!(101), "rolloutPercent"),
        ("force", json!("yes"), "force"),
        ("channel", json!("beta"), "unknown field `channel`"),
        ("Force", json!(true), "unknown field `Force`"),
    ] {
        cases.push(
            move_case(
                &format!("channel move: {field} {}", short(&value)),
                "beta",
                &with(&mv, field, value),
            )
            .mentions(mention),
        );
    }
    for channel in ["prod", "stable'--", "STABLE", "stable%00", "stable%2Fbeta"] {
        cases.push(
            move_case(&format!("channel move: channel {channel:?}"), channel, &mv)
                .expect(404, "not_found")
                .mentions("channel"),
        );
    }

    // ---- Yank / unyank ----
    for verb in ["yank", "unyank"] {
        for v in ["01.0.0", "1.0", "1.0.0%00", "1.0.0'--", "..%2F1.0.0"] {
            cases.push(
                Case::new(
                    format!("{verb}: version {v:?}"),
                    "POST",
                    format!("/api/v1/releases/launcher/{v}/{verb}"),
                )
                .auth(Auth::App)
                .mentions("version"),
            );
        }
        for body in [json!({"force": true}), json!({"version": "1.0.0"})] {
            cases.push(
                Case::new(
                    format!("{verb}: a body {body}"),
                    "POST",
                    format!("/api/v1/releases/launcher/1.0.0/{verb}"),
                )
                .json(&body)
                .auth(Auth::App)
                .mentions("unknown field"),
            );
        }
        cases.push(
            Case::new(
                format!("{verb}: a text body"),
                "POST",
                format!("/api/v1/releases/launcher/1.0.0/{verb}"),
            )
            .raw_body(b"force=1".to_vec(), Some("text/plain"))
            .auth(Auth::App)
            .expect(415, "unsupported_media_type"),
        );
    }
    cases
}

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

fn admin_and_pack_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let token =
        json!({"name": "ci", "kind": "app", "products": ["launcher"], "scopes": ["upload"]});
    let tok = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/admin/tokens")
            .json(body)
            .auth(Auth::Admin)
    };
    for (field, value, mention) in [
        ("name", json!(""), "name"),
        ("name", json!("   "), "name"),
        ("name", json!("x".repeat(101)), "name"),
        ("name", json!("ci\0"), "name"),
        ("name", json!("ci\nadmin"), "name"),
        ("name", json!("ci\u{202E}nimda"), "name"),
        ("name", json!("\u{1b}[2J"), "name"),
        ("name", json!(1), "name"),
        ("kind", json!("root"), "kind"),
        ("kind", json!("App"), "kind"),
        ("products", json!([]), "products"),
        ("products", json!(["launcher'; --"]), "product"),
        ("products", json!(["Launcher"]), "product"),
        ("products", json!("launcher"), "products"),
        ("products", json!(vec!["*"; 101]), "products"),
        ("scopes", json!(["upload", "admin"]), "scope"),
        ("scopes", json!(["upload; DROP"]), "scope"),
        ("channels", json!(["stable'--"]), "channel"),
        ("channels", json!(["prod"]), "channel"),
        ("expiresInDays", json!(0), "expiresInDays"),
        ("expiresInDays", json!(-1), "expiresInDays"),
        ("expiresInDays", json!(3651), "expiresInDays"),
        ("expiresInDays", json!(1.5), "expiresInDays"),
        (
            "expiresInDays",
            json!(9_223_372_036_854_775_808u64),
            "expiresInDays",
        ),
        ("admin", json!(true), "unknown field `admin`"),
        (
            "id",
            json!("00000000-0000-0000-0000-000000000000"),
            "unknown field `id`",
        ),
        ("token", json!("atlas_admin_x"), "unknown field `token`"),
    ] {
        cases.push(
            tok(
                &format!("token: {field} {}", short(&value)),
                &with(&token, field, value),
            )
            .mentions(mention),
        );
    }
    cases.push(
        tok(
            "token: a pack token for a pack that does not exist",
            &json!({"name": "x", "kind": "pack", "pack": "nope"}),
        )
        .expect(404, "not_found"),
    );
    cases.push(
        tok(
            "token: a pack token for a pack slug with SQL",
            &json!({"name": "x", "kind": "pack", "pack": "mods' OR '1'='1"}),
        )
        .mentions("pack"),
    );
    cases.push(
        tok(
            "token: an admin token with scopes",
            &json!({"name": "x", "kind": "admin", "scopes": ["upload"]}),
        )
        .mentions("admin tokens"),
    );
    for id in [
        "not-a-uuid",
        "' OR 1=1 --",
        "00000000-0000-0000-0000-00000000000g",
        &"f".repeat(5000),
    ] {
        cases.push(
            Case::new(
                format!("revoke: id {}", short(&json!(id))),
                "DELETE",
                format!("/api/v1/admin/tokens/{}", enc(id)),
            )
            .auth(Auth::Admin)
            .expect(404, "not_found"),
        );
    }
    cases.push(
        Case::new(
            "revoke: with a body",
            "DELETE",
            "/api/v1/admin/tokens/00000000-0000-4000-8000-000000000000",
        )
        .json(&json!({"reason": "x"}))
        .auth(Auth::Admin)
        .mentions("unknown field `reason`"),
    );

    for query in [
        "limit=0",
        "limit=abc",
        "limit=1e2",
        "cursor=0",
        "cursor=abc",
        "cursor=%2B1",
        "cursor=01",
    ] {
        cases.push(
            Case::new(
                format!("audit: {query}"),
                "GET",
                format!("/api/v1/admin/audit?{query}"),
            )
            .auth(Auth::Admin)
            .mentions(query.split('=').next().unwrap()),
        );
    }

    let product = json!({"slug": "runner", "name": "Runner"});
    let prod = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/admin/products")
            .json(body)
            .auth(Auth::Admin)
    };
    for (field, value, mention) in [
        ("slug", json!("Runner"), "slug"),
        ("slug", json!("runner'; DROP TABLE products;--"), "slug"),
        ("slug", json!("$(reboot)"), "slug"),
        ("slug", json!("run ner"), "slug"),
        ("slug", json!("a".repeat(64)), "slug"),
        ("slug", json!("runner\0"), "slug"),
        ("slug", json!(null), "slug"),
        ("name", json!("Runner\0"), "name"),
        ("name", json!("\u{202E}rennuR"), "name"),
        ("name", json!(""), "name"),
        ("requiredPlatforms", json!(["linux-sparc"]), "arch"),
        ("requiredPlatforms", json!(["linux"]), "platform"),
        (
            "requiredPlatforms",
            json!("linux-x86_64"),
            "requiredPlatforms",
        ),
        ("maxArtifactSize", json!(0), "maxArtifactSize"),
        ("maxArtifactSize", json!(-5), "maxArtifactSize"),
        ("maxArtifactSize", json!(1.5), "maxArtifactSize"),
        (
            "maxArtifactSize",
            json!(9_223_372_036_854_775_808u64),
            "maxArtifactSize",
        ),
        ("owner", json!("me"), "unknown field `owner`"),
    ] {
        cases.push(
            prod(
                &format!("product: {field} {}", short(&value)),
                &with(&product, field, value),
            )
            .mentions(mention),
        );
    }
    cases.push(
        prod(
            "product: updaterPublicKey garbage",
            &with(&product, "updaterPublicKey", json!("not a key")),
        )
        .expect(422, "invalid_public_key"),
    );
    cases.push(
        prod(
            "product: the slug that exists",
            &json!({"slug": "launcher"}),
        )
        .expect(409, "product_exists"),
    );
    for (field, value, mention) in [
        ("name", json!("x\u{0}"), "name"),
        ("slug", json!("other"), "slug"),
        ("requiredPlatforms", json!(["windows-arm"]), "arch"),
        ("unknown", json!(1), "unknown field `unknown`"),
    ] {
        cases.push(
            Case::new(
                format!("product update: {field} {}", short(&value)),
                "PATCH",
                "/api/v1/admin/products/launcher",
            )
            .json(&json!({ field: value }))
            .auth(Auth::Admin)
            .mentions(mention),
        );
    }
    cases.push(
        Case::new(
            "product update: slug with SQL in the path",
            "PATCH",
            "/api/v1/admin/products/launcher'%20OR%20'1'='1",
        )
        .json(&json!({"name": "x"}))
        .auth(Auth::Admin)
        .mentions("product"),
    );

    let pack = json!({"slug": "maps", "name": "Maps", "github": {"repository": "octo/maps",
        "repositoryId": 1, "repositoryOwnerId": 2}});
    let pk = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/admin/packs")
            .json(body)
            .auth(Auth::Admin)
    };
    for (field, value, mention) in [
        ("slug", json!("Maps"), "slug"),
        ("slug", json!("maps;ls"), "slug"),
        ("name", json!("maps\u{2066}"), "name"),
        ("oidcOnly", json!("true"), "oidcOnly"),
        ("github.repository", json!("octo"), "github.repository"),
        (
            "github.repository",
            json!("octo/maps/extra"),
            "github.repository",
        ),
        (
            "github.repository",
            json!("octo/maps; rm -rf /"),
            "github.repository",
        ),
        (
            "github.repository",
            json!("octo/ma\0ps"),
            "github.repository",
        ),
        ("github.repositoryId", json!(-1), "github"),
        ("github.repositoryId", json!("1"), "github.repositoryId"),
        ("github.repositoryOwnerId", json!(0), "github"),
        ("github.workflow", json!("deploy.sh"), "github.workflow"),
        ("github.workflow", json!("deploy\0.yml"), "github.workflow"),
        ("github.workflow", json!("$(id).yml"), "github.workflow"),
        ("github.environment", json!("prod\0"), "github.environment"),
        ("github.environment", json!(""), "github.environment"),
        (
            "github.environment",
            json!("e".repeat(256)),
            "github.environment",
        ),
        (
            "github.refPattern",
            json!("refs/tags/*\n"),
            "github.refPattern",
        ),
        ("github.owner", json!("octo"), "unknown field `owner`"),
        ("trusted", json!(true), "unknown field `trusted`"),
    ] {
        cases.push(
            pk(
                &format!("pack: {field} {}", short(&value)),
                &with(&pack, field, value),
            )
            .mentions(mention),
        );
    }
    cases.push(
        Case::new(
            "pack update: unknown field",
            "PATCH",
            "/api/v1/admin/packs/mods",
        )
        .json(&json!({"oidc": true}))
        .auth(Auth::Admin)
        .mentions("unknown field `oidc`"),
    );
    cases.push(
        Case::new(
            "pack update: name with NUL",
            "PATCH",
            "/api/v1/admin/packs/mods",
        )
        .json(&json!({"name": "a\u{0}"}))
        .auth(Auth::Admin)
        .mentions("name"),
    );

    // ---- Pack deploys and channel moves ----
    let deploy = deploy_body();
    let dep = |name: &str, body: &Value| {
        Case::new(name, "POST", "/api/v1/packs/mods/deploy")
            .json(body)
            .auth(Auth::Pack)
    };
    for (field, value, mention) in [
        ("build", json!("../b1"), "build"),
        ("build", json!("b1/../../x"), "build"),
        ("build", json!("b 1"), "build"),
        ("build", json!("b1\0"), "build"),
        ("build", json!("b".repeat(65)), "build"),
        ("channel", json!("Live"), "pack channel"),
        ("channel", json!("live; rm -rf /"), "pack channel"),
        ("channel", json!("live'--"), "pack channel"),
        ("channel", json!("../live"), "pack channel"),
        ("channel", json!("\u{202E}evil"), "pack channel"),
        ("artifacts.0.size", json!(-1), "artifacts[0].size"),
        ("artifacts.0.size", json!(0), "artifacts[0].size"),
        (
            "artifacts.0.size",
            json!(9_223_372_036_854_775_808u64),
            "artifacts[0].size",
        ),
        (
            "artifacts.0.sha256",
            json!(SHA.to_uppercase() + "0"),
            "sha256",
        ),
        ("artifacts.0.filename", json!("../mods.zip"), "filename"),
        (
            "artifacts.0.filename",
            json!("mods\u{202E}piz.exe"),
            "filename",
        ),
        ("artifacts.0.os", json!("linux"), "unknown field `os`"),
        ("artifacts", json!([]), "artifacts"),
        ("product", json!("launcher"), "unknown field `product`"),
    ] {
        cases.push(
            dep(
                &format!("deploy: {field} {}", short(&value)),
                &with(&deploy, field, value),
            )
            .mentions(mention),
        );
    }
    let mut key_nul = deploy.clone();
    key_nul["artifacts"][0] = json!({"key": "packs/mods/b1/x\u{0}", "size": 10, "sha256": SHA});
    cases.push(dep("deploy: key with NUL", &key_nul).mentions("artifacts[0].key"));
    cases.push(dep("deploy: an upload that does not exist", &deploy).expect(422, "upload_unknown"));
    cases.push(
        Case::new(
            "deploy: pack slug with SQL",
            "POST",
            "/api/v1/packs/mods'%20OR%201=1/deploy",
        )
        .json(&deploy)
        .auth(Auth::Pack)
        .mentions("pack"),
    );
    cases.push(
        Case::new(
            "deploy: garbage OIDC token",
            "POST",
            "/api/v1/packs/mods/deploy",
        )
        .json(&deploy)
        .header("x-atlas-oidc-token", "a.b.c")
        .expect(401, "oidc_invalid"),
    );
    let chan = |name: &str, channel: &str, body: &Value| {
        Case::new(
            name,
            "PUT",
            format!("/api/v1/packs/mods/channels/{channel}"),
        )
        .json(body)
        .auth(Auth::Pack)
    };
    for (field, value, mention) in [
        ("build", json!("$(id)"), "build"),
        ("build", json!(["b1"]), "build"),
        ("expectedBuild", json!("b1;ls"), "build"),
        ("expectedBuild", json!(1), "expectedBuild"),
        ("channel", json!("x"), "unknown field `channel`"),
    ] {
        cases.push(
            chan(
                &format!("pack channel: {field} {}", short(&value)),
                "live",
                &with(&json!({"build": "b1"}), field, value),
            )
            .mentions(mention),
        );
    }
    for channel in [
        "Live",
        "live;ls",
        "live%2Fx",
        "live%00",
        "live%E2%80%AE",
        "%2e%2elive",
    ] {
        cases.push(
            chan(
                &format!("pack channel: name {channel:?}"),
                channel,
                &json!({"build": "b1"}),
            )
            .mentions("pack channel"),
        );
        cases.push(
            Case::new(
                format!("pack channel read: name {channel:?}"),
                "GET",
                format!("/api/v1/packs/mods/channels/{channel}"),
            )
            .mentions("pack channel"),
        );
    }
    cases
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn public_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let get = |name: &str, path: &str| Case::new(name, "GET", path);
    for (path, mention) in [
        (
            "/api/v1/releases/..%2F..%2Fadmin/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher%2F..%2Frunner/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher%5C..%5Crunner/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher'%20OR%20'1'='1/latest/linux/x86_64",
            "product",
        ),
        (
            "/api/v1/releases/launcher%00/latest/linux/x86_64",
            "product",
        ),
        ("/api/v1/releases/launcher/latest/freebsd/x86_64", "os"),
        ("/api/v1/releases/launcher/latest/linux/sparc", "arch"),
        ("/api/v1/releases/launcher/latest/linux/x86_64%3Bls", "arch"),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?kind=AppImage",
            "kind",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?kind=%C3%28",
            "kind",
        ),
        (
            "/api/v1/releases/launcher/latest/linux/x86_64?kind=deb'--",
            "kind",
        ),
        ("/api/v1/releases/launcher/1.0", "version"),
        ("/api/v1/releases/launcher/01.0.0", "version"),
        ("/api/v1/releases/launcher/1.0.0%0A", "version"),
        ("/api/v1/releases/launcher?limit=0", "limit"),
        ("/api/v1/releases/launcher?limit=101", "limit"),
        (
            "/api/v1/releases/launcher?limit=1;DROP%20TABLE%20releases",
            "limit",
        ),
        ("/api/v1/releases/launcher?cursor=-1", "cursor"),
        ("/api/v1/releases/launcher?cursor=1%20OR%201=1", "cursor"),
        (
            "/api/v1/releases/launcher?cursor=99999999999999999999",
            "cursor",
        ),
        ("/api/v1/releases/launcher?cursor=%FF", "cursor"),
        ("/download/launcher/latest/linux/x86_64?kind=..%2Fx", "kind"),
        ("/api/v1/updater/launcher/macosx/x86_64/1.0.0", "target"),
        ("/api/v1/updater/launcher/linux/x86_64/latest", "version"),
        (
            "/api/v1/updater/launcher/linux/x86_64/..%2F..%2F1.0.0",
            "version",
        ),
        (
            "/api/v1/updater/launcher/linux/x86_64/1.0.0?bundleType=..%2Fx",
            "bundleType",
        ),
    ] {
        cases.push(get(&format!("GET {path}"), path).mentions(mention));
    }
    for path in [
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=prod",
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=stable'--",
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=%FF",
        "/api/v1/updater/launcher/prod/latest.json",
        "/api/v1/updater/launcher/linux/x86_64/1.0.0?channel=..",
    ] {
        cases.push(
            get(&format!("GET {path}"), path)
                .expect(404, "not_found")
                .mentions("channel"),
        );
    }
    for path in [
        "/api/v1/download/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/download/dl_x'%20OR%201=1",
        "/api/v1/download/%00",
        "/api/v1/releases/%FF/latest/linux/x86_64",
        "/api/v1/releases/launcher/%C0%AF",
        "/api/v1/nope",
    ] {
        cases.push(get(&format!("GET {path}"), path).expect(404, "not_found"));
    }
    // Over-long path parameters and query strings: refused without echoing them whole.
    let long = "a".repeat(8000);
    for (path, status, code) in [
        (
            format!("/api/v1/releases/{long}/latest/linux/x86_64"),
            400,
            "invalid_input",
        ),
        (
            format!("/api/v1/releases/launcher/1.0.0-{long}"),
            400,
            "invalid_input",
        ),
        (format!("/api/v1/download/{long}"), 404, "not_found"),
        (
            format!("/api/v1/releases/launcher/latest/linux/x86_64?kind={long}"),
            400,
            "invalid_input",
        ),
        (
            format!("/api/v1/releases/launcher/latest/linux/x86_64?channel={long}"),
            404,
            "not_found",
        ),
        (
            format!("/api/v1/releases/launcher?cursor={long}"),
            400,
            "invalid_input",
        ),
    ] {
        cases.push(
            get(
                &format!("GET {} ({} bytes)", &path[..40], path.len()),
                &path,
            )
            .expect(status, code),
        );
    }
    // Credentials that are not tokens.
    for (what, value, code) in [
        (
            "a huge bearer token",
            format!("Bearer atlas_app_{}", "x".repeat(8000)),
            "token_invalid",
        ),
        (
            "basic auth",
            "Basic YWRtaW46YWRtaW4=".to_owned(),
            "token_missing",
        ),
        (
            "bearer with no token",
            "Bearer ".to_owned(),
            "token_missing",
        ),
        (
            "SQL in the token",
            "Bearer atlas_admin_' OR '1'='1".to_owned(),
            "token_invalid",
        ),
    ] {
        cases.push(
            Case::new(format!("admin list: {what}"), "GET", "/api/v1/admin/tokens")
                .header("authorization", value)
                .expect(401, code),
        );
    }
    cases
}

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
    let (status, body) = call(
        &hub,
        "GET",
        "/api/v1/releases/launcher/latest/linux/x86_64",
        None,
        None,
    )
    .await;
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
    let (status, product) = call(
        &hub,
        "POST",
        "/api/v1/admin/products",
        Some(&admin),
        Some(json!({"slug": "launcher", "name": nasty})),
    )
    .await;
    assert_eq!(
        (status, product["name"].as_str()),
        (201, Some(nasty)),
        "{product}"
    );
    let (status, token) = call(
        &hub,
        "POST",
        "/api/v1/admin/tokens",
        Some(&admin),
        Some(json!({"name": nasty, "kind": "app", "products": ["launcher"]})),
    )
    .await;
    assert_eq!(
        (status, token["name"].as_str()),
        (201, Some(nasty)),
        "{token}"
    );
    let (status, list) = call(&hub, "GET", "/api/v1/admin/tokens", Some(&admin), None).await;
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

// ---- Raw HTTP: what no well-behaved client sends ----------------------------------------

/// Sends `request` as is on a new connection and reads until the server closes it (or 3 s
/// pass); returns everything it answered.
fn raw(hub: &TestHub, request: &[u8]) -> String {
    let authority = hub.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // The server may answer and close before reading everything (an early 413 or 400).
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in a raw answer.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|s| s.get(..3).and_then(|c| c.parse().ok()))
        .collect()
}

#[tokio::test]
async fn request_smuggling_and_malformed_framing_are_refused() {
    let (hub, creds, _) = corpus_hub().await;
    let before = stored(&hub).await;
    let admin = &creds.admin;
    // Control: two pipelined requests on one connection get two answers, so a single
    // answer below means the second request was not processed.
    let answer = raw(
        &hub,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&answer).len(), 2, "{answer}");

    // Each smuggles `GET /api/v1/releases/smuggled-N/channels`, which must never be served.
    let smuggled = |n: usize| {
        format!(
            "GET /api/v1/releases/smuggled-{n}/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
        )
    };
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "Transfer-Encoding and Content-Length (CL.TE)",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                smuggled(0)
            )
            .into_bytes(),
            // One answer: the framing refused (400) or the empty chunked body read and the
            // request, which has no credentials, refused before its body is looked at (401).
            &[400, 401],
        ),
        (
            "Content-Length then Transfer-Encoding (TE.CL)",
            {
                let inner = smuggled(1);
                format!(
                    "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
                    inner.len() + 10,
                    inner.len()
                )
                .into_bytes()
            },
            // As CL.TE: the framing refused, or the request refused for its missing credentials.
            &[400, 401],
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 2\r\nContent-Length: 90\r\n\r\n{{}}{}",
                smuggled(2)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a Content-Length list",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 90\r\n\r\n{{}}{}",
                smuggled(3)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a signed Content-Length",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{{}}{}",
                smuggled(4)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "Transfer-Encoding that does not end in chunked",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{}",
                smuggled(5)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "an obfuscated Transfer-Encoding",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{}",
                smuggled(6)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            format!(
                "POST /api/v1/storage/presign HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                smuggled(7)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a bare LF in a header value",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Atlas-Client-Id: a\n{}",
                smuggled(8)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a bare CR in a header value",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Atlas-Client-Id: a\r{}",
                smuggled(9)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a folded header line",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n {}",
                smuggled(10)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a space before the colon",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n{{}}{}",
                smuggled(11)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a NUL in a header value",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\0b\r\n\r\n{}",
                smuggled(12)
            )
            .into_bytes(),
            &[400],
        ),
        (
            "a bad chunk size",
            format!(
                "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n{}",
                smuggled(13)
            )
            .into_bytes(),
            // Framing breaks after the head was read: 400 `invalid_body`, a closed connection,
            // or, the request having no credentials, 401 before its body is read.
            &[400, 401],
        ),
    ];
    for (what, request, allowed) in &cases {
        let answer = raw(&hub, request);
        let got = statuses(&answer);
        eprintln!("{what}: answered {got:?}");
        assert!(got.len() <= 1, "{what}: more than one response: {answer}");
        if let Some(status) = got.first() {
            assert!(
                allowed.contains(status),
                "{what}: answered {status}: {answer}"
            );
        }
    }
    let log = hub.log();
    assert!(
        !log.contains("smuggled-"),
        "a smuggled request was processed:\n{log}"
    );

    // Requests whose head is not HTTP at all, or not UTF-8.
    for (what, request, expected) in [
        (
            "raw non-ASCII in the path",
            b"GET /api/v1/releases/\xff\xfe/channels HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a space in the path",
            b"GET /api/v1/releases/a b/channels HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an invalid method",
            b"G@T /api/health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an unknown version",
            b"GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a URI longer than 64 KiB",
            format!(
                "GET /api/v1/download/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            414,
        ),
    ] {
        let answer = raw(&hub, &request);
        assert_eq!(
            statuses(&answer).first(),
            Some(&expected),
            "{what}: {answer}"
        );
    }

    // Parsed, then refused by the Hub itself: problem+json answers.
    // One byte over the limit, in 64 KiB chunks (with credentials: a request without them is
    // refused before its body is read).
    let mut chunked = format!("POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", creds.app).into_bytes();
    let mut left = MAX_BODY_BYTES + 1;
    while left > 0 {
        let n = left.min(65536);
        chunked.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        chunked.extend_from_slice(&vec![b' '; n]);
        chunked.extend_from_slice(b"\r\n");
        left -= n;
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut lying = format!(
        "POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY_BYTES * 4
    )
    .into_bytes();
    lying.extend(vec![b' '; MAX_BODY_BYTES + 1]);
    for (what, request, status, code) in [
        ("a chunked body over the limit", chunked, 413, "payload_too_large"),
        ("a body over the limit, less than declared", lying, 413, "payload_too_large"),
        (
            "a non-UTF-8 Authorization header",
            b"GET /api/v1/admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
            401,
            "token_missing",
        ),
        (
            "a non-UTF-8 content type",
            // With credentials: a request without them is refused before its body is looked at.
            [
                format!("POST /api/v1/storage/presign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n", creds.app).into_bytes(),
                b"Content-Type: application/json\xff\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
            ]
            .concat(),
            415,
            "unsupported_media_type",
        ),
        (
            "an encoded dot-dot product",
            b"GET /api/v1/releases/%2e%2e/latest/linux/x86_64 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "an encoded dot-dot download product",
            b"GET /download/%2E%2E/latest/linux/x86_64 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "an encoded dot-dot pack channel",
            b"GET /api/v1/packs/mods/channels/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "an encoded dot-dot channel move",
            format!("PUT /api/v1/releases/launcher/channels/%2e%2e HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{{\"version\": \"1.0.0\"}}", creds.app).into_bytes(),
            404,
            "not_found",
        ),
        (
            "an unencoded dot-dot path",
            b"GET /api/v1/releases/../admin/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            "not_found",
        ),
    ] {
        let answer = raw(&hub, &request);
        assert_eq!(statuses(&answer), vec![status], "{what}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{what}: {answer}");
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{what}: {answer}");
    }

    assert_eq!(
        before,
        stored(&hub).await,
        "a refused request stored something"
    );
    for line in hub.log().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        assert!(v["status"].as_u64().is_none_or(|s| s < 500), "{line}");
    }
}
