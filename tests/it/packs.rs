//! Packs: GitHub Actions OIDC trusted publishing against an issuer served on loopback, pack
//! deploy tokens, immutable builds and pack channels.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::api::*;
use crate::support::{HubOptions, TestHub, client, curl, temp_file};

pub(crate) const AUDIENCE: &str = "atlas-test";
pub(crate) const ISSUER_KEY: &[u8] = include_bytes!("../fixtures/issuer-key.der");
pub(crate) const OTHER_KEY: &[u8] = include_bytes!("../fixtures/other-key.der");

/// An OpenID issuer on loopback: discovery document and a JWKS that tests can change.
pub(crate) struct Issuer {
    pub(crate) url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

fn jwk(file: &str, kid: &str) -> Value {
    let mut k: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::root().join("tests/fixtures").join(file)).unwrap(),
    )
    .unwrap();
    k["kid"] = json!(kid);
    k["alg"] = json!("RS256");
    k["use"] = json!("sig");
    k
}

pub(crate) async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");
    let jwks = Arc::new(Mutex::new(json!({"keys": [jwk("issuer-jwk.json", "k1")]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (j, f, u) = (jwks.clone(), fetches.clone(), url.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (j, f, u) = (j.clone(), f.clone(), u.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let body = match req.uri().path() {
                            "/.well-known/openid-configuration" => {
                                json!({"issuer": u, "jwks_uri": format!("{u}/.well-known/jwks")})
                            }
                            _ => {
                                f.fetch_add(1, Ordering::SeqCst);
                                j.lock().unwrap().clone()
                            }
                        };
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                bytes::Bytes::from(body.to_string()),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Issuer { url, jwks, fetches }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

static JTI: AtomicUsize = AtomicUsize::new(0);

/// GitHub's claim set for a deploy from octo/packs' deploy.yml on a tag.
pub(crate) fn claims(issuer: &str) -> Value {
    let jti = format!(
        "jti-{}-{}",
        std::process::id(),
        JTI.fetch_add(1, Ordering::SeqCst)
    );
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "repo:octo/packs:environment:production",
        "repository": "octo/packs", "repository_id": "1001",
        "repository_owner": "octo", "repository_owner_id": "2002",
        "workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1.0.0",
        "job_workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1.0.0",
        "ref": "refs/tags/v1.0.0", "environment": "production", "event_name": "push",
        "run_id": "555", "jti": jti, "exp": now() + 300, "nbf": now() - 5, "iat": now() - 5,
    })
}

pub(crate) fn sign(claims: &Value, key: &[u8], kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(key)).unwrap()
}

fn b64url(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

pub(crate) async fn pack_hub(issuer: &Issuer) -> (TestHub, String) {
    let hub = TestHub::start_with(HubOptions {
        env: vec![
            ("ATLAS_OIDC_ISSUER".into(), issuer.url.clone()),
            ("ATLAS_OIDC_AUDIENCE".into(), AUDIENCE.into()),
        ],
        ..Default::default()
    })
    .await;
    let admin = admin_token(&hub);
    let (status, body) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "name": "Maps", "github": {
            "repository": "octo/packs", "repositoryId": 1001, "repositoryOwnerId": 2002,
            "workflow": "deploy.yml", "environment": "production", "refPattern": "refs/tags/*"}}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");
    (hub, admin)
}

/// Sends a pack request authenticated by `header: value`.
pub(crate) async fn pack_call(
    hub: &TestHub,
    method: &str,
    path: &str,
    auth: (&str, &str),
    body: Value,
) -> (u16, Value) {
    let r = client()
        .request(method.parse().unwrap(), hub.at(path))
        .header(auth.0, auth.1)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) fn presign_body(build: &str, filename: &str, bytes: &[u8]) -> Value {
    json!({"pack": "maps", "build": build, "filename": filename, "size": bytes.len(),
           "sha256": crate::support::sha256_hex(bytes), "contentType": "application/zip"})
}

#[tokio::test]
async fn an_oidc_deploy_goes_from_presign_to_runner_download() {
    let issuer = issuer().await;
    let (hub, admin) = pack_hub(&issuer).await;
    let bytes = b"pack content ".repeat(500);
    let token = sign(&claims(&issuer.url), ISSUER_KEY, "k1");
    let (status, p) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &token),
        presign_body("b1", "maps.zip", &bytes),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert!(p["key"].as_str().unwrap().starts_with("packs/maps/b1/"));
    assert_eq!(curl_upload(&p, &bytes), 200);

    let deploy = json!({"build": "b1", "channel": "stable", "artifacts": [
        {"uploadId": p["uploadId"], "size": bytes.len(), "sha256": crate::support::sha256_hex(&bytes)}]});
    // Every call needs a fresh token: the one used for presign is spent.
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/packs/maps/deploy",
        ("x-atlas-oidc-token", &token),
        deploy.clone(),
    )
    .await;
    assert_eq!(
        (status, b["code"].as_str(), b["reason"].as_str()),
        (401, Some("oidc_invalid"), Some("replayed")),
        "{b}"
    );
    let fresh = sign(&claims(&issuer.url), ISSUER_KEY, "k1");
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/packs/maps/deploy",
        ("x-atlas-oidc-token", &fresh),
        deploy.clone(),
    )
    .await;
    assert_eq!(status, 201, "{b}");

    // The runner resolves the pack channel and downloads through the Hub.
    let (status, c) = hub
        .api()
        .get("/api/v1/packs/maps/channels/stable")
        .await
        .parts();
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["build"], "b1");
    let url = c["artifacts"][0]["downloadUrl"].as_str().unwrap();
    let out = temp_file("pack.zip", b"");
    assert!(curl(&["-fL", "-o", out.to_str().unwrap(), url]).0);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // A pack channel named stable has nothing to do with a product's.
    assert_eq!(
        hub.api()
            .get("/api/v1/releases/maps/channels")
            .await
            .parts()
            .0,
        404
    );

    // Identical re-deploy is idempotent; other files under the same build id are refused.
    let again = sign(&claims(&issuer.url), ISSUER_KEY, "k1");
    let (status, _) = pack_call(
        &hub,
        "POST",
        "/api/v1/packs/maps/deploy",
        ("x-atlas-oidc-token", &again),
        deploy,
    )
    .await;
    assert_eq!(status, 200);
    let other = b"other".repeat(10);
    let t = sign(&claims(&issuer.url), ISSUER_KEY, "k1");
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &t),
        presign_body("b1", "extra.zip", &other),
    )
    .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (409, Some("build_exists")),
        "{b}"
    );

    let (_, audit) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/audit")
        .await
        .parts();
    let deploys: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "pack.deploy")
        .collect();
    assert_eq!(deploys.len(), 1, "{audit}");
    assert_eq!(
        deploys[0]["actor"],
        "github:octo/packs workflow deploy.yml run 555"
    );
}

#[tokio::test]
async fn each_bad_oidc_token_is_refused_with_its_own_reason() {
    let issuer = issuer().await;
    let (hub, _) = pack_hub(&issuer).await;
    let good = claims(&issuer.url);
    let with = |patch: Value| {
        let mut c = claims(&issuer.url);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let header_b64 = |h: Value| b64url(h.to_string().as_bytes());
    let payload_b64 = b64url(good.to_string().as_bytes());
    let hs256_with_public_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(
            std::fs::read(crate::support::root().join("tests/fixtures/issuer-jwk.json"))
                .unwrap()
                .as_slice(),
        ),
    )
    .unwrap();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "wrong signing key",
            sign(&good, OTHER_KEY, "k1"),
            "oidc_invalid",
            "signature",
        ),
        (
            "alg none",
            format!(
                "{}.{payload_b64}.",
                header_b64(json!({"alg": "none", "typ": "JWT", "kid": "k1"}))
            ),
            "oidc_invalid",
            "algorithm",
        ),
        (
            "HS256 keyed with the public key",
            hs256_with_public_key,
            "oidc_invalid",
            "algorithm",
        ),
        (
            "expired",
            sign(
                &with(json!({"exp": now() - 120, "iat": now() - 600, "nbf": now() - 600})),
                ISSUER_KEY,
                "k1",
            ),
            "oidc_invalid",
            "expired",
        ),
        (
            "not yet valid",
            sign(&with(json!({"nbf": now() + 600})), ISSUER_KEY, "k1"),
            "oidc_invalid",
            "not_yet_valid",
        ),
        (
            "issued in the future",
            sign(&with(json!({"iat": now() + 600})), ISSUER_KEY, "k1"),
            "oidc_invalid",
            "not_yet_valid",
        ),
        (
            "wrong audience",
            sign(&with(json!({"aud": "someone-else"})), ISSUER_KEY, "k1"),
            "oidc_invalid",
            "audience",
        ),
        (
            "wrong issuer",
            sign(
                &with(json!({"iss": "https://token.actions.example.com"})),
                ISSUER_KEY,
                "k1",
            ),
            "oidc_invalid",
            "issuer",
        ),
        (
            "same name, other repository id",
            sign(&with(json!({"repository_id": "9999"})), ISSUER_KEY, "k1"),
            "oidc_claims_mismatch",
            "repository",
        ),
        (
            "other owner id",
            sign(
                &with(json!({"repository_owner_id": "7777"})),
                ISSUER_KEY,
                "k1",
            ),
            "oidc_claims_mismatch",
            "repository_owner",
        ),
        (
            "other workflow",
            sign(
                &with(
                    json!({"workflow_ref": "octo/packs/.github/workflows/ci.yml@refs/tags/v1.0.0"}),
                ),
                ISSUER_KEY,
                "k1",
            ),
            "oidc_claims_mismatch",
            "workflow",
        ),
        (
            "other environment",
            sign(&with(json!({"environment": "staging"})), ISSUER_KEY, "k1"),
            "oidc_claims_mismatch",
            "environment",
        ),
        (
            "ref not matching",
            sign(&with(json!({"ref": "refs/heads/main"})), ISSUER_KEY, "k1"),
            "oidc_claims_mismatch",
            "ref",
        ),
        (
            "pull_request_target",
            sign(
                &with(json!({"event_name": "pull_request_target"})),
                ISSUER_KEY,
                "k1",
            ),
            "oidc_claims_mismatch",
            "event",
        ),
        (
            "workflow_run",
            sign(
                &with(json!({"event_name": "workflow_run"})),
                ISSUER_KEY,
                "k1",
            ),
            "oidc_claims_mismatch",
            "event",
        ),
        (
            "unknown kid after refetch",
            sign(&good, OTHER_KEY, "k-rotated"),
            "oidc_invalid",
            "unknown_key",
        ),
    ];
    let bytes = b"x".repeat(64);
    for (name, token, code, reason) in cases {
        let (status, b) = pack_call(
            &hub,
            "POST",
            "/api/v1/storage/presign",
            ("x-atlas-oidc-token", &token),
            presign_body("b9", "f.zip", &bytes),
        )
        .await;
        assert_eq!(
            (b["code"].as_str(), b["reason"].as_str()),
            (Some(code), Some(reason)),
            "{name}: {b}"
        );
        assert_eq!(
            status,
            if code == "oidc_invalid" { 401 } else { 403 },
            "{name}"
        );
    }
    // A renamed repository (same ids, new name) keeps working.
    let renamed = sign(
        &with(json!({"repository": "octo/renamed-packs"})),
        ISSUER_KEY,
        "k1",
    );
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &renamed),
        presign_body("b9", "f.zip", &bytes),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    // Replay of an accepted token.
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &renamed),
        presign_body("b9", "f.zip", &bytes),
    )
    .await;
    assert_eq!((status, b["reason"].as_str()), (401, Some("replayed")));

    // The JWKS was fetched once; an unknown kid within a minute does not refetch again.
    let fetches = issuer.fetches.load(Ordering::SeqCst);
    assert_eq!(fetches, 1, "JWKS fetches");
    issuer.jwks.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(jwk("other-jwk.json", "k-rotated"));
    let rotated = sign(&claims(&issuer.url), OTHER_KEY, "k-rotated");
    let (_, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &rotated),
        presign_body("b9", "g.zip", &bytes),
    )
    .await;
    assert_eq!(b["reason"], "unknown_key", "refetched within a minute: {b}");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    // A new instance (cold cache) fetches and accepts the rotated key.
    let hub2 = TestHub::start_with(HubOptions {
        database_url: Some(hub.database_url.clone()),
        env: vec![
            ("ATLAS_OIDC_ISSUER".into(), issuer.url.clone()),
            ("ATLAS_OIDC_AUDIENCE".into(), AUDIENCE.into()),
        ],
        ..Default::default()
    })
    .await;
    let rotated = sign(&claims(&issuer.url), OTHER_KEY, "k-rotated");
    let (status, b) = pack_call(
        &hub2,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &rotated),
        presign_body("b9", "g.zip", &bytes),
    )
    .await;
    assert_eq!(status, 200, "{b}");
}

#[tokio::test]
async fn pack_tokens_are_scoped_to_one_pack_and_refused_for_oidc_only_packs() {
    let issuer = issuer().await;
    let (hub, admin) = pack_hub(&issuer).await;
    let (status, _) = hub
        .api()
        .bearer(&admin)
        .post("/api/v1/admin/packs", json!({"slug": "skins"}))
        .await
        .parts();
    assert_eq!(status, 201);
    create_product(&hub, &admin, "launcher", json!({})).await;
    let (status, t) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "maps-ci", "kind": "pack", "pack": "maps"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("atlas_pack_"));
    let bytes = b"skin".repeat(30);
    let hdr = ("x-atlas-pack-deploy-token", token.as_str());

    let (status, p) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        hdr,
        presign_body("v1", "maps.zip", &bytes),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(curl_upload(&p, &bytes), 200);
    let deploy = json!({"build": "v1", "channel": "beta", "artifacts": [{"key": p["key"], "size": bytes.len(), "sha256": crate::support::sha256_hex(&bytes)}]});
    assert_eq!(
        pack_call(
            &hub,
            "POST",
            "/api/v1/packs/maps/deploy",
            hdr,
            deploy.clone()
        )
        .await
        .0,
        201
    );

    // Pack B and every product are out of reach.
    let mut other_pack = presign_body("v1", "skins.zip", &bytes);
    other_pack["pack"] = json!("skins");
    let (status, b) = pack_call(&hub, "POST", "/api/v1/storage/presign", hdr, other_pack).await;
    assert_eq!(
        (status, b["code"].as_str()),
        (403, Some("scope_denied")),
        "{b}"
    );
    assert_eq!(
        pack_call(
            &hub,
            "POST",
            "/api/v1/packs/skins/deploy",
            hdr,
            deploy.clone()
        )
        .await
        .0,
        403
    );
    let product = Artifact::new("linux", "x86_64", "appimage", "p");
    let (status, b) = presign(&hub, &token, "launcher", "1.0.0", &product).await;
    assert_eq!(
        (status, b["code"].as_str()),
        (403, Some("scope_denied")),
        "{b}"
    );

    // Pack channels move with compare-and-swap.
    let bytes2 = b"skin2".repeat(30);
    let (_, p2) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        hdr,
        presign_body("v2", "maps.zip", &bytes2),
    )
    .await;
    assert_eq!(curl_upload(&p2, &bytes2), 200);
    let deploy2 = json!({"build": "v2", "channel": "beta", "artifacts": [{"uploadId": p2["uploadId"], "size": bytes2.len(), "sha256": crate::support::sha256_hex(&bytes2)}]});
    assert_eq!(
        pack_call(&hub, "POST", "/api/v1/packs/maps/deploy", hdr, deploy2)
            .await
            .0,
        201
    );
    let (status, b) = pack_call(
        &hub,
        "PUT",
        "/api/v1/packs/maps/channels/beta",
        hdr,
        json!({"build": "v1", "expectedBuild": "v1"}),
    )
    .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (409, Some("channel_moved")),
        "{b}"
    );
    let (status, b) = pack_call(
        &hub,
        "PUT",
        "/api/v1/packs/maps/channels/beta",
        hdr,
        json!({"build": "v1", "expectedBuild": "v2"}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let (_, c) = hub
        .api()
        .get("/api/v1/packs/maps/channels/beta")
        .await
        .parts();
    assert_eq!(
        (c["build"].as_str(), c["previousBuild"].as_str()),
        (Some("v1"), Some("v2"))
    );

    // OIDC-only: no token can be issued, and existing ones stop working.
    let (status, _) = client()
        .patch(hub.at("/api/v1/admin/packs/maps"))
        .bearer_auth(&admin)
        .json(&json!({"oidcOnly": true}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 200);
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        hdr,
        presign_body("v3", "maps.zip", &bytes),
    )
    .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (403, Some("scope_denied")),
        "{b}"
    );
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "x", "kind": "pack", "pack": "maps"}),
        )
        .await
        .parts();
    assert_eq!((status, b["code"].as_str()), (409, Some("pack_oidc_only")));
}

/// `GET /api/v1/admin/packs/{pack}`: the pack as the list shows it, its channels (where each
/// points, where it pointed before, who moved it) and its builds, newest first.
#[tokio::test]
async fn the_pack_detail_shows_its_channels_and_builds() {
    let issuer = issuer().await;
    let (hub, admin) = pack_hub(&issuer).await;
    let (status, t) = hub
        .api()
        .bearer(&admin)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "maps-ci", "kind": "pack", "pack": "maps"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    let hdr = ("x-atlas-pack-deploy-token", token.as_str());
    for (build, files) in [
        ("v1", &["maps.zip"][..]),
        ("v2", &["maps.zip", "extra.zip"][..]),
    ] {
        let mut artifacts = Vec::new();
        for file in files {
            let bytes = format!("{build} {file} ").repeat(40).into_bytes();
            let (status, p) = pack_call(
                &hub,
                "POST",
                "/api/v1/storage/presign",
                hdr,
                presign_body(build, file, &bytes),
            )
            .await;
            assert_eq!(status, 200, "{p}");
            assert_eq!(curl_upload(&p, &bytes), 200);
            artifacts.push(json!({"uploadId": p["uploadId"], "size": bytes.len(),
                                  "sha256": crate::support::sha256_hex(&bytes)}));
        }
        let (status, b) = pack_call(
            &hub,
            "POST",
            "/api/v1/packs/maps/deploy",
            hdr,
            json!({"build": build, "channel": "beta", "artifacts": artifacts}),
        )
        .await;
        assert_eq!(status, 201, "{b}");
    }
    // A second channel, moved by an operator.
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .put("/api/v1/packs/maps/channels/stable", json!({"build": "v1"}))
        .await
        .parts();
    assert_eq!(status, 200, "{b}");

    let (status, detail) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/packs/maps")
        .await
        .parts();
    assert_eq!(status, 200, "{detail}");
    let (_, list) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/packs")
        .await
        .parts();
    let listed = list["packs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == "maps")
        .unwrap();
    for (field, value) in listed.as_object().unwrap() {
        assert_eq!(
            &detail[field], value,
            "{field}: the pack as the list shows it"
        );
    }
    assert_eq!(detail["github"]["repository"], "octo/packs");
    let channels = detail["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2, "{detail}");
    let beta = &channels[0];
    assert_eq!(
        (
            beta["name"].as_str(),
            beta["build"].as_str(),
            beta["previousBuild"].as_str()
        ),
        (Some("beta"), Some("v2"), Some("v1")),
        "{detail}"
    );
    assert!(
        beta["updatedBy"].as_str().unwrap().contains("maps-ci"),
        "{detail}"
    );
    assert!(beta["updatedAt"].is_string(), "{detail}");
    let stable = &channels[1];
    assert_eq!(
        (
            stable["name"].as_str(),
            stable["build"].as_str(),
            stable["previousBuild"].clone()
        ),
        (Some("stable"), Some("v1"), json!(null)),
        "{detail}"
    );
    assert!(
        stable["updatedBy"].as_str().unwrap().contains("operator"),
        "{detail}"
    );
    let builds: Vec<(&str, i64)> = detail["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert!(b["createdAt"].is_string(), "{b}");
            (
                b["build"].as_str().unwrap(),
                b["artifactCount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(builds, [("v2", 2), ("v1", 1)], "newest first");

    // A pack without builds; an unknown pack; a bad slug; credentials that may not read.
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .post("/api/v1/admin/packs", json!({"slug": "skins"}))
        .await
        .parts();
    assert_eq!(status, 201, "{b}");
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/packs/skins")
        .await
        .parts();
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (b["channels"].clone(), b["builds"].clone()),
        (json!([]), json!([]))
    );
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/packs/nope")
        .await
        .parts();
    assert_eq!(
        (status, b["code"].as_str()),
        (404, Some("not_found")),
        "{b}"
    );
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/packs/Maps")
        .await
        .parts();
    assert_eq!(
        (status, b["code"].as_str()),
        (400, Some("invalid_input")),
        "{b}"
    );
    assert!(b["detail"].as_str().unwrap().contains("pack"), "{b}");
    let (status, b) = hub
        .api()
        .bearer(&admin)
        .get("/api/v1/admin/packs/maps?limit=1")
        .await
        .parts();
    assert_eq!(
        (status, b["code"].as_str()),
        (400, Some("invalid_input")),
        "{b}"
    );
    let (status, b) = hub.api().get("/api/v1/admin/packs/maps").await.parts();
    assert_eq!(
        (status, b["code"].as_str()),
        (401, Some("token_missing")),
        "{b}"
    );
    let (status, b) = hub
        .api()
        .bearer(&token)
        .get("/api/v1/admin/packs/maps")
        .await
        .parts();
    assert_eq!(
        (status, b["code"].as_str()),
        (403, Some("scope_denied")),
        "{b}"
    );
}
