//! Vercel Blob storage (`ATLAS_STORAGE=vercel-blob`): the Hub's client tokens checked against
//! the official `@vercel/blob` package, and the whole release flow against the local
//! Blob-compatible store (`atlas_hub::dev::blob`), which checks uploads the way the Blob API
//! does.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::blob_store::{LocalBlob, READ_WRITE_TOKEN};
use atlas_hub::config::{BlobConfig, Secret, StorageConfig};
use atlas_hub::storage::blob::{self as hub_blob, ClientTokenError, ClientTokenPayload};
use atlas_hub::storage::{Storage, UploadSpec};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api::{
    ALL_SCOPES, Artifact, admin_token, app_token, count_rows, create_product, curl_upload,
    curl_upload_with, latest_version, presign,
};
use crate::support::{HubOptions, TestHub, client, sha256_hex, unique_name, work_dir};

/// The local store's id (inside [`READ_WRITE_TOKEN`]).
const STORE_ID: &str = "AtlasLocalStore01";
/// Same store id, another secret: what a leaked or guessed token would look like.
const FORGED_READ_WRITE_TOKEN: &str = "vercel_blob_rw_AtlasLocalStore01_notTheStoresSecret";
/// A store the local Blob API does not know.
const UNKNOWN_STORE_TOKEN: &str = "vercel_blob_rw_UnknownStore0001_someSecret0123456789";

/// A local Blob store running on its own thread (tests block their runtime while curl runs).
pub(crate) struct BlobStore {
    api_url: String,
    public_url: String,
}

pub(crate) fn start_store() -> BlobStore {
    let dir = work_dir().join("blob").join(unique_name("store"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = LocalBlob::start(&dir, READ_WRITE_TOKEN, 0)
                .await
                .expect("local Blob store");
            tx.send((store.api_url(), store.public_url())).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (api_url, public_url) = rx.recv().expect("local Blob store thread died");
    BlobStore {
        api_url,
        public_url,
    }
}

pub(crate) fn blob_env(store: &BlobStore, token: &str) -> Vec<(String, String)> {
    [
        ("ATLAS_STORAGE", "vercel-blob"),
        ("BLOB_READ_WRITE_TOKEN", token),
        ("VERCEL_BLOB_API_URL", store.api_url.as_str()),
        ("ATLAS_BLOB_PUBLIC_URL", store.public_url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn blob_hub(store: &BlobStore, token: &str) -> TestHub {
    TestHub::start_with(HubOptions {
        env: blob_env(store, token),
        ..Default::default()
    })
    .await
}

/// A Hub on a fresh store with a product and an app token for it.
async fn setup(product: &str) -> (BlobStore, TestHub, String) {
    let store = start_store();
    let hub = blob_hub(&store, READ_WRITE_TOKEN).await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, product, json!({})).await;
    let app = app_token(&hub, &admin, &[product], ALL_SCOPES, &[]).await;
    (store, hub, app)
}

pub(crate) fn bearer(presigned: &Value) -> String {
    presigned["uploadHeaders"]["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer client token in uploadHeaders")
        .to_owned()
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn blob_url(store: &BlobStore, key: &str) -> String {
    format!("{}/{}", store.public_url, hub_blob::encode_pathname(key))
}

/// Status of a plain GET of a public blob URL.
async fn public_status(store: &BlobStore, key: &str) -> u16 {
    client()
        .get(blob_url(store, key))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn publish_one(
    hub: &TestHub,
    token: &str,
    product: &str,
    p: &Value,
    a: &Artifact,
) -> (u16, Value) {
    hub.api()
        .bearer(token)
        .post(
            &format!("/api/v1/releases/{product}/publish"),
            json!({"version": "1.0.0", "channel": "stable", "artifacts": [{
            "uploadId": p["uploadId"], "os": a.os, "arch": a.arch, "kind": a.kind,
            "size": a.bytes.len(), "sha256": a.sha256()}]}),
        )
        .await
        .parts()
}

#[tokio::test]
async fn releases_publish_and_download_through_vercel_blob() {
    let (store, hub, app) = setup("launcher").await;
    let a = Artifact::new("linux", "x86_64", "appimage", "blob bytes");
    let (status, p) = presign(&hub, &app, "launcher", "1.0.0", &a).await;
    assert_eq!(status, 200, "{p}");
    let key = p["key"].as_str().unwrap().to_owned();

    // A PUT to the Blob API with everything the API needs in uploadHeaders.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("pathname", &key)
        .finish();
    assert_eq!(p["url"], format!("{}?{query}", store.api_url));
    assert_eq!(p["method"], "PUT");
    let h = &p["uploadHeaders"];
    for (name, value) in [
        ("x-api-version", "12".to_owned()),
        ("x-vercel-blob-access", "public".to_owned()),
        ("x-content-type", "application/octet-stream".to_owned()),
        ("x-add-random-suffix", "0".to_owned()),
        ("x-allow-overwrite", "0".to_owned()),
        ("x-content-length", a.bytes.len().to_string()),
    ] {
        assert_eq!(h[name], value, "{name} in {h}");
    }

    // The token is a client token for this one pathname, never the store's token.
    let token = bearer(&p);
    assert!(
        token.starts_with(&format!("vercel_blob_client_{STORE_ID}_")),
        "{token}"
    );
    let secret = READ_WRITE_TOKEN.rsplit('_').next().unwrap();
    assert!(
        !p.to_string().contains(secret),
        "the read-write token leaked: {p}"
    );
    let payload = hub_blob::verify_client_token(&token, READ_WRITE_TOKEN).unwrap();
    assert_eq!(
        payload,
        ClientTokenPayload {
            pathname: key.clone(),
            maximum_size_in_bytes: Some(a.bytes.len() as u64),
            allowed_content_types: Some(vec!["application/octet-stream".into()]),
            add_random_suffix: Some(false),
            allow_overwrite: Some(false),
            valid_until: payload.valid_until,
        }
    );
    // It expires with the presigned upload, the configured 15 minutes from now.
    let expires_at = OffsetDateTime::parse(
        p["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((payload.valid_until / 1000 - expires_at.unix_timestamp()).abs() <= 1);
    let left = payload.valid_until - now_ms();
    assert!((890_000..=900_000).contains(&left), "{left} ms left");

    // curl -T with exactly those headers uploads.
    assert_eq!(public_status(&store, &key).await, 404);
    assert_eq!(curl_upload(&p, &a.bytes), 200);

    // A retry of the presign says the object is there (size and pathname: Blob has no sha256).
    let (_, again) = presign(&hub, &app, "launcher", "1.0.0", &a).await;
    assert_eq!(again["alreadyUploaded"], true, "{again}");

    let (status, release) = publish_one(&hub, &app, "launcher", &p, &a).await;
    assert_eq!(status, 201, "{release}");
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64").await,
        Some("1.0.0".into())
    );

    // Downloads redirect to the blob URL, which serves the bytes as an attachment.
    let (_, latest) = hub
        .api()
        .get("/api/v1/releases/launcher/latest/linux/x86_64")
        .await
        .parts();
    let expected = format!("{}?download=1", blob_url(&store, &key));
    for path in [
        latest["artifact"]["downloadUrl"]
            .as_str()
            .unwrap()
            .trim_start_matches(&hub.url)
            .to_owned(),
        "/download/launcher/latest/linux/x86_64".to_owned(),
    ] {
        let resp = client().get(hub.at(&path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "{path}");
        assert_eq!(resp.headers()["location"], expected.as_str(), "{path}");
    }
    let resp = client().get(&expected).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        format!("attachment; filename=\"{}\"", a.filename).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), a.bytes.as_slice());

    let (status, health) = hub.api().get("/api/health?deep=1").await.parts();
    assert_eq!((status, &health["checks"]["storage"]), (200, &json!("ok")));
}

#[tokio::test]
async fn the_blob_store_refuses_every_tampered_upload() {
    let (store, hub, app) = setup("cli").await;
    let a = Artifact::new("linux", "x86_64", "tar.gz", "t");
    let (_, p) = presign(&hub, &app, "cli", "1.0.0", &a).await;
    let key = p["key"].as_str().unwrap().to_owned();
    let token = bearer(&p);
    let payload = hub_blob::verify_client_token(&token, READ_WRITE_TOKEN).unwrap();
    let with_token = |t: &str| format!("Bearer {t}");

    // Another pathname with this token.
    let other_key = key.replace(&a.filename, "other.tar.gz");
    let mut elsewhere = p.clone();
    elsewhere["url"] = json!(format!(
        "{}?{}",
        store.api_url,
        form_urlencoded::Serializer::new(String::new())
            .append_pair("pathname", &other_key)
            .finish()
    ));
    assert_eq!(curl_upload(&elsewhere, &a.bytes), 400, "other pathname");

    // An expired token, correctly signed.
    let expired = hub_blob::client_token(
        READ_WRITE_TOKEN,
        STORE_ID,
        &ClientTokenPayload {
            valid_until: now_ms() - 1000,
            ..payload.clone()
        },
    );
    assert_eq!(
        curl_upload_with(&p, &a.bytes, &[("authorization", &with_token(&expired))]),
        403,
        "expired token"
    );

    // Wider constraints under the Hub's signature.
    let inner =
        String::from_utf8(STANDARD.decode(token.rsplit('_').next().unwrap()).unwrap()).unwrap();
    let (signature, _) = inner.split_once('.').unwrap();
    let wider = ClientTokenPayload {
        allow_overwrite: Some(true),
        maximum_size_in_bytes: Some(1 << 30),
        ..payload.clone()
    };
    let forged = format!(
        "vercel_blob_client_{STORE_ID}_{}",
        STANDARD.encode(format!(
            "{signature}.{}",
            STANDARD.encode(serde_json::to_string(&wider).unwrap())
        ))
    );
    assert_eq!(
        curl_upload_with(&p, &a.bytes, &[("authorization", &with_token(&forged))]),
        403,
        "forged payload"
    );
    // Signed with a token that is not the store's, or issued for another store.
    let other_secret = hub_blob::client_token(FORGED_READ_WRITE_TOKEN, STORE_ID, &payload);
    assert_eq!(
        curl_upload_with(
            &p,
            &a.bytes,
            &[("authorization", &with_token(&other_secret))]
        ),
        403,
        "signed with another secret"
    );
    let other_store = hub_blob::client_token(READ_WRITE_TOKEN, "UnknownStore0001", &payload);
    assert_eq!(
        curl_upload_with(
            &p,
            &a.bytes,
            &[("authorization", &with_token(&other_store))]
        ),
        404,
        "another store"
    );

    // Wrong lengths: a shorter body than declared, a longer one declared honestly (over the
    // token's maximum size).
    let len = a.bytes.len();
    assert_eq!(curl_upload(&p, &a.bytes[..len - 1]), 400, "short body");
    let mut longer = a.bytes.clone();
    longer.push(b'!');
    assert_eq!(
        curl_upload_with(&p, &longer, &[("x-content-length", &(len + 1).to_string())]),
        400,
        "body over the token's maximum size"
    );
    // Another content type.
    assert_eq!(
        curl_upload_with(&p, &a.bytes, &[("x-content-type", "text/html")]),
        400,
        "content type"
    );
    assert_eq!(
        public_status(&store, &key).await,
        404,
        "a refused upload left data"
    );
    assert_eq!(public_status(&store, &other_key).await, 404);

    // The genuine upload, then overwrites: refused, also when the client asks for one.
    assert_eq!(curl_upload(&p, &a.bytes), 200);
    let mut changed = a.bytes.clone();
    changed[0] ^= 1;
    assert_eq!(curl_upload(&p, &changed), 400, "overwrite");
    assert_eq!(
        curl_upload_with(&p, &changed, &[("x-allow-overwrite", "1")]),
        403,
        "overwrite asked for by the client"
    );
    let stored = client().get(blob_url(&store, &key)).send().await.unwrap();
    assert_eq!(stored.bytes().await.unwrap().as_ref(), a.bytes.as_slice());

    // Blob binds no exact length (only a maximum): a shorter body declared as such is stored,
    // and publish refuses it on size.
    let b = Artifact::new("linux", "aarch64", "tar.gz", "u");
    let (_, q) = presign(&hub, &app, "cli", "1.0.0", &b).await;
    let short = &b.bytes[..b.bytes.len() - 10];
    assert_eq!(
        curl_upload_with(&q, short, &[("x-content-length", &short.len().to_string())]),
        200
    );
    let (status, problem) = publish_one(&hub, &app, "cli", &q, &b).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("object_mismatch")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("reports no sha256"),
        "{problem}"
    );
    // Publishing before uploading is refused too.
    let c = Artifact::new("linux", "armv7", "tar.gz", "v");
    let (_, r) = presign(&hub, &app, "cli", "1.0.0", &c).await;
    let (status, problem) = publish_one(&hub, &app, "cli", &r, &c).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("object_missing")),
        "{problem}"
    );
    assert_eq!(count_rows(&hub, "releases", "true").await, 0);
}

#[tokio::test]
async fn blob_api_failures_answer_coded_problems() {
    // A token for a store the Blob API does not know: presign still signs (locally), the
    // store refuses the upload, and the Hub's metadata lookups answer 503 storage_unavailable.
    let store = start_store();
    let hub = blob_hub(&store, UNKNOWN_STORE_TOKEN).await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "tool", json!({})).await;
    let app = app_token(&hub, &admin, &["tool"], ALL_SCOPES, &[]).await;
    let a = Artifact::new("linux", "x86_64", "binary", "w");
    let (status, p) = presign(&hub, &app, "tool", "1.0.0", &a).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(curl_upload(&p, &a.bytes), 404, "unknown store");
    let (status, problem) = publish_one(&hub, &app, "tool", &p, &a).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{problem}"
    );
    let (status, health) = hub.api().get("/api/health?deep=1").await.parts();
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["checks"]["storage"], "error: storage_unavailable");
    assert!(hub.log().contains("store_not_found"), "the cause is logged");
    drop(hub);

    // An unreachable Blob API.
    let dead = BlobStore {
        api_url: format!(
            "http://127.0.0.1:{}/api/blob",
            atlas_hub::dev::free_port().unwrap()
        ),
        public_url: store.public_url.clone(),
    };
    let hub = blob_hub(&dead, READ_WRITE_TOKEN).await;
    let admin = admin_token(&hub);
    create_product(&hub, &admin, "tool", json!({})).await;
    let app = app_token(&hub, &admin, &["tool"], ALL_SCOPES, &[]).await;
    let (_, p) = presign(&hub, &app, "tool", "1.0.0", &a).await;
    let (status, problem) = publish_one(&hub, &app, "tool", &p, &a).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{problem}"
    );

    // A key longer than Blob accepts cannot be derived any more: identifiers are bounded
    // (versions at 128 characters) so every key fits (see presign's unit tests), and the
    // overlong version is refused before anything is recorded.
    let long_version = format!("1.0.0-{}", "a".repeat(940));
    let (status, problem) = presign(&hub, &app, "tool", &long_version, &a).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_input")),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().starts_with("version "));
    assert_eq!(count_rows(&hub, "uploads", "true").await, 1);
}

#[test]
fn bad_blob_configuration_stops_the_start_with_one_message() {
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("BLOB_READ_WRITE_TOKEN", &[]),
        (
            "BLOB_READ_WRITE_TOKEN",
            &[(
                "BLOB_READ_WRITE_TOKEN",
                "vercel_blob_client_AtlasLocalStore01_abc",
            )],
        ),
        (
            "BLOB_READ_WRITE_TOKEN",
            &[(
                "BLOB_READ_WRITE_TOKEN",
                "vercel_blob_rw_not-a-store_secretValue",
            )],
        ),
        (
            "BLOB_STORE_ID",
            &[
                ("BLOB_READ_WRITE_TOKEN", READ_WRITE_TOKEN),
                ("BLOB_STORE_ID", "store_SomeOtherStore"),
            ],
        ),
    ];
    for (variable, env) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas-hub"));
        cmd.args(["serve", "--port", "0"])
            .env("ATLAS_STORAGE", "vercel-blob")
            // Configuration is read before anything connects to this.
            .env("DATABASE_URL", "postgres://atlas@127.0.0.1:9/unused")
            .env("ATLAS_TOKEN_PEPPER", crate::support::PEPPER)
            .env("ATLAS_DEV_DIR", work_dir().join("unused-dev-dir"))
            .env_remove("BLOB_READ_WRITE_TOKEN")
            .env_remove("BLOB_STORE_ID")
            .env_remove("VERCEL_BLOB_API_URL")
            .env_remove("ATLAS_BLOB_PUBLIC_URL")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{variable}: started anyway");
        assert!(
            stderr.contains("invalid configuration (1 problem)")
                && stderr.contains(&format!("- {variable}: ")),
            "{variable}: {stderr}"
        );
        assert!(
            !stderr.contains("secretValue"),
            "the token leaked: {stderr}"
        );
    }
}

/// What `tests/blob-npm/crosscheck.cjs` reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CrossCheckRequest<'a> {
    read_write_token: &'a str,
    other_read_write_token: &'a str,
    hub_token: &'a str,
    /// Serialised in the Hub's field order, which the package keeps when it re-signs.
    hub_payload: &'a ClientTokenPayload,
    upload_headers: serde_json::Map<String, Value>,
    pathname: &'a str,
    other_pathname: &'a str,
    body_base64: String,
}

#[tokio::test]
async fn hub_tokens_and_the_official_vercel_blob_package_agree() {
    // Installed by the test itself on first use; without node this fails naming the fix.
    let npm_dir = crate::tools::vercel_blob();

    let store = start_store();
    let storage = Storage::new(&StorageConfig::VercelBlob(BlobConfig {
        read_write_token: Secret::new(READ_WRITE_TOKEN),
        store_id: STORE_ID.into(),
        api_url: store.api_url.clone(),
        public_url: store.public_url.clone(),
    }));
    let pathname = "releases/crosscheck/1.0.0+build.7/linux-x86_64/tar.gz/cc_1.0.0.tar.gz";
    let other_pathname = "releases/crosscheck/1.0.0/linux-x86_64/tar.gz/evil.tar.gz";
    let bytes = b"cross-checked artifact ".repeat(200);
    let presigned = storage
        .presign_upload(
            &UploadSpec {
                key: pathname,
                size: bytes.len() as u64,
                sha256_hex: &sha256_hex(&bytes),
                content_type: "application/octet-stream",
            },
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let headers: serde_json::Map<String, Value> = presigned
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let hub_token = headers["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    let hub_payload = hub_blob::verify_client_token(&hub_token, READ_WRITE_TOKEN).unwrap();
    let request = CrossCheckRequest {
        read_write_token: READ_WRITE_TOKEN,
        other_read_write_token: FORGED_READ_WRITE_TOKEN,
        hub_token: &hub_token,
        hub_payload: &hub_payload,
        upload_headers: headers,
        pathname,
        other_pathname,
        body_base64: STANDARD.encode(&bytes),
    };

    let mut child = Command::new("node")
        .arg(npm_dir.join("crosscheck.cjs"))
        .current_dir(&npm_dir)
        .env("VERCEL_BLOB_API_URL", &store.api_url)
        .env("VERCEL_BLOB_RETRIES", "0")
        .env_remove("BLOB_READ_WRITE_TOKEN")
        .env_remove("VERCEL_OIDC_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&request).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "crosscheck.cjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The package parses the Hub's token, and signs exactly the same token for its fields.
    assert_eq!(
        r["parsedHubPayload"],
        serde_json::to_value(&hub_payload).unwrap()
    );
    assert_eq!(r["regeneratedHubToken"], hub_token.as_str());
    assert_eq!(r["hubTokenHmacValid"], true);
    assert_eq!(r["hubTokenHmacValidWithOtherSecret"], false);

    // The Hub verifies the package's tokens, whatever options they carry, and refuses one
    // signed with another secret.
    let package_token = |name: &str| r["packageTokens"][name].as_str().unwrap().to_owned();
    assert_eq!(
        hub_blob::verify_client_token(&package_token("sameInputs"), READ_WRITE_TOKEN),
        Ok(hub_payload.clone())
    );
    let defaults =
        hub_blob::verify_client_token(&package_token("defaults"), READ_WRITE_TOKEN).unwrap();
    assert_eq!(defaults.pathname, pathname);
    let left = defaults.valid_until - now_ms();
    assert!(
        (0..=31_000).contains(&left),
        "package default lifetime: {left} ms"
    );
    assert_eq!(defaults.allow_overwrite, None);
    let every =
        hub_blob::verify_client_token(&package_token("everyOption"), READ_WRITE_TOKEN).unwrap();
    assert_eq!(every.maximum_size_in_bytes, Some(5 * 1024 * 1024));
    assert!(every.allows_content_type("image/png"));
    assert!(!every.allows_content_type("text/html"));
    assert_eq!(
        hub_blob::verify_client_token(&package_token("otherSecret"), READ_WRITE_TOKEN),
        Err(ClientTokenError::BadSignature)
    );

    // The package's own client uploads with the Hub's token to the local store, which
    // answers the way the package expects; another pathname and an overwrite are refused.
    assert_eq!(
        r["otherPathnamePut"]["error"], "BlobPathnameMismatchError",
        "{}",
        r["otherPathnamePut"]
    );
    assert_eq!(r["put"]["ok"], true, "{}", r["put"]);
    assert_eq!(r["put"]["value"]["pathname"], pathname);
    assert_eq!(
        r["put"]["value"]["url"],
        format!(
            "{}/{}",
            store.public_url,
            hub_blob::encode_pathname(pathname)
        )
    );
    assert_eq!(r["secondPut"]["ok"], false);
    assert!(
        r["secondPut"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{}",
        r["secondPut"]
    );
    assert_eq!(r["head"]["value"]["size"], bytes.len());
    assert_eq!(r["head"]["value"]["pathname"], pathname);
    assert_eq!(r["headMissing"]["error"], "BlobNotFoundError");
    assert_eq!(r["list"]["value"]["blobs"].as_array().unwrap().len(), 1);

    // The Hub reads the object the package stored.
    let object = storage.head(pathname).await.unwrap().expect("stored");
    assert_eq!(
        object.verify(pathname, bytes.len() as u64, &sha256_hex(&bytes)),
        Ok(atlas_hub::storage::Verified::SizeAndPathname)
    );
    assert!(storage.head(other_pathname).await.unwrap().is_none());
    storage.check().await.unwrap();
}
