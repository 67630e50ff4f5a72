//! Secrets never reach the output: every flow (CLI admin, products, app/pack/admin tokens,
//! presign and upload, publish by CLI, reads, downloads, updater, promote, yank, revoke,
//! pack deploys by token and by GitHub OIDC, failed and blocked authentication, storage
//! refusing the Hub's credentials, Vercel Blob storage) runs with `ATLAS_LOG=debug` and
//! `RUST_LOG=trace`, and no token, pepper, OIDC token, storage secret, database password or
//! presigned signature may appear in what the Hub or the CLI printed.

use crate::blob_store::READ_WRITE_TOKEN;
use serde_json::json;

use crate::api::*;
use crate::cli::{release, sig, write};
use crate::packs::{ISSUER_KEY, OTHER_KEY, claims, issuer, pack_call, presign_body, sign};
use crate::support::{HubOptions, PEPPER, TestHub, fresh_database};

const DB_PASSWORD: &str = "db-password-5f1e0c2a9b7d";
const WRONG_S3_SECRET: &str = "wrong-storage-secret-7c41d9e2";

/// What the secrets test collects: each secret with a label, and every text printed.
#[derive(Default)]
struct Watch {
    secrets: Vec<(String, String)>,
    outputs: Vec<(String, String)>,
}

impl Watch {
    fn secret(&mut self, label: &str, value: &str) {
        assert!(
            value.len() >= 16,
            "{label} is too short to search for: {value:?}"
        );
        self.secrets.push((label.to_owned(), value.to_owned()));
    }

    /// A token and its random part (a log that cut the prefix would still leak it).
    fn token(&mut self, label: &str, token: &str) {
        self.secret(label, token);
        let random = token.rsplit('_').next().unwrap();
        self.secret(&format!("{label} (random part)"), random);
    }

    /// The signature of a presigned URL: a credential for as long as the URL lives.
    fn presigned(&mut self, label: &str, url: &str) {
        let signature = url
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("X-Amz-Signature="))
            .unwrap_or_else(|| panic!("{label}: no X-Amz-Signature in {url}"));
        self.secret(label, signature);
    }

    fn output(&mut self, label: &str, text: String) {
        self.outputs.push((label.to_owned(), text));
    }

    fn assert_clean(&self) {
        let mut leaks = Vec::new();
        for (where_, text) in &self.outputs {
            for (what, secret) in &self.secrets {
                if text.contains(secret.as_str()) {
                    leaks.push(format!("{what} appears in {where_}"));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

fn debug_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    // Every Hub here shares the database, so the one failed-authentication bucket of
    // 127.0.0.1: they read it with one limit, as a deployment's instances do.
    [
        ("ATLAS_LOG", "debug"),
        ("RUST_LOG", "trace"),
        ("ATLAS_LIMIT_AUTH_FAILURES", "3/min"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// `url` with a password in it: the private PostgreSQL trusts loopback, so the password is
/// never checked, but it is a secret the Hub is handed like any other.
fn with_password(url: &str) -> String {
    url.replacen(
        "postgres://atlas@",
        &format!("postgres://atlas:{DB_PASSWORD}@"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn no_flow_prints_a_secret_even_at_the_most_verbose_logging() {
    let issuer = issuer().await;
    let database_url = with_password(&fresh_database(true).await);
    let hub = TestHub::start_with(HubOptions {
        database_url: Some(database_url.clone()),
        env: debug_env(&[
            ("ATLAS_OIDC_ISSUER", &issuer.url),
            ("ATLAS_OIDC_AUDIENCE", crate::packs::AUDIENCE),
        ]),
        ..Default::default()
    })
    .await;
    let mut w = Watch::default();
    w.secret("the token pepper", PEPPER);
    w.secret("the S3 secret key", atlas_hub::dev::s3::SECRET_KEY);
    w.secret("the database password", DB_PASSWORD);
    w.secret("the wrong S3 secret key", WRONG_S3_SECRET);

    // ---- Operator: admin token by CLI, product, app and pack tokens ----
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["admin", "bootstrap-token", "--name", "operator"])
        .env("DATABASE_URL", &database_url)
        .env("ATLAS_TOKEN_PEPPER", PEPPER)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    w.token("the admin token", &admin);
    // Its stdout is the token, by design (shown once); its stderr must not repeat it.
    w.output(
        "`admin bootstrap-token` stderr",
        String::from_utf8_lossy(&out.stderr).into(),
    );

    let bearer_admin = format!("Bearer {admin}");
    let admin_h = [("authorization", bearer_admin.as_str())];
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": ["linux-x86_64"]}),
    )
    .await;
    let app = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    w.token("the app token", &app);
    let Reply {
        status, body: pack, ..
    } = hub
        .api()
        .headers(&admin_h)
        .post(
            "/api/v1/admin/packs",
            json!({"slug": "maps", "github": {
            "repository": "octo/packs", "repositoryId": 1001, "repositoryOwnerId": 2002,
            "workflow": "deploy.yml", "environment": "production", "refPattern": "refs/tags/*"}}),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    let Reply {
        status, body: t, ..
    } = hub
        .api()
        .headers(&admin_h)
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "maps-ci", "kind": "pack", "pack": "maps"}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let pack_token = t["token"].as_str().unwrap().to_owned();
    w.token("the pack token", &pack_token);

    // ---- CI: publish with the CLI (presign, upload, publish onto stable) ----
    let d = crate::cli::dir("secrets");
    let file = write(&d, "launcher.AppImage", &b"appimage ".repeat(2000));
    write(&d, "launcher.AppImage.sig", sig().as_bytes());
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "launcher",
            "--version",
            "1.0.0",
            "--channel",
            "stable",
            &format!("linux/x86_64/appimage={file}"),
        ],
    );
    assert!(run.ok, "{run}", run = run.stderr);
    w.output("`release publish` stdout", run.stdout);
    w.output("`release publish` stderr", run.stderr);

    // ---- CI over HTTP: a presign whose URL carries a signature, an upload, publish 1.1.0 ----
    let a = Artifact::new("linux", "x86_64", "appimage", "one-one");
    let (status, p) = presign(&hub, &app, "launcher", "1.1.0", &a).await;
    assert_eq!(status, 200, "{p}");
    w.presigned("a presigned upload signature", p["url"].as_str().unwrap());
    assert_eq!(curl_upload(&p, &a.bytes), 200);
    let (status, body) = publish(&hub, &app, "launcher", "1.1.0", Some("beta"), &[a]).await;
    assert_eq!(status, 201, "{body}");

    // ---- Launchers and runners: reads, downloads, the updater ----
    for path in [
        "/api/v1/releases/launcher",
        "/api/v1/releases/launcher/latest/linux/x86_64?channel=stable",
        "/api/v1/releases/launcher/channels",
        "/api/v1/releases/launcher/1.1.0",
        "/api/v1/updater/launcher/linux/x86_64/0.9.0?channel=beta",
        "/api/v1/updater/launcher/stable/latest.json",
    ] {
        let Reply { status, body, .. } = hub
            .api()
            .headers(&[("x-atlas-client-id", "c1")])
            .get(path)
            .await;
        // The updater answers 204 (no signed update) for these unsigned artifacts.
        assert!(matches!(status, 200 | 204), "{path}: {status} {body}");
    }
    let Reply {
        status,
        headers,
        body,
    } = hub
        .api()
        .get("/download/launcher/latest/linux/x86_64?channel=stable")
        .await;
    assert_eq!(status, 302, "{body}");
    w.presigned(
        "a presigned download signature",
        headers["location"].to_str().unwrap(),
    );

    // ---- Promote, yank refused, token list, revoke ----
    let (status, body) = move_channel(
        &hub,
        &app,
        "launcher",
        "stable",
        json!({"version": "1.1.0", "expectedVersion": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = hub
        .api()
        .bearer(&app)
        .post("/api/v1/releases/launcher/1.1.0/yank", json!({}))
        .await
        .parts();
    assert_eq!(status, 409, "{body}");
    let Reply {
        status, body: list, ..
    } = hub
        .api()
        .headers(&admin_h)
        .get("/api/v1/admin/tokens")
        .await;
    assert_eq!(status, 200, "{list}");
    let (status, created) = hub.api().bearer(&admin).post("/api/v1/admin/tokens", json!({"name": "to-revoke", "kind": "app", "products": ["launcher"], "scopes": ["publish"]})).await.parts();
    assert_eq!(status, 201, "{created}");
    let revoked = created["token"].as_str().unwrap().to_owned();
    w.token("a revoked app token", &revoked);
    let id = created["id"].as_str().unwrap();
    let Reply { status, .. } = hub
        .api()
        .headers(&admin_h)
        .delete(&format!("/api/v1/admin/tokens/{id}"))
        .await;
    assert!(status == 200 || status == 204, "revoke: {status}");

    // ---- Storage refusing the Hub's credentials: the cause is logged, the secret is not ----
    let broken = TestHub::start_with(HubOptions {
        database_url: Some(database_url.clone()),
        env: debug_env(&[("ATLAS_S3_SECRET_ACCESS_KEY", WRONG_S3_SECRET)]),
        ..Default::default()
    })
    .await;
    let b = Artifact::new("linux", "x86_64", "appimage", "one-two");
    let (status, pb) = presign(&broken, &app, "launcher", "1.2.0", &b).await;
    assert_eq!(status, 200, "{pb}");
    w.presigned(
        "a presigned upload signature (wrong secret)",
        pb["url"].as_str().unwrap(),
    );
    assert_ne!(
        curl_upload(&pb, &b.bytes),
        200,
        "storage took a PUT signed with the wrong secret"
    );
    let entry = json!({"uploadId": pb["uploadId"], "os": "linux", "arch": "x86_64", "kind": "appimage",
                       "size": b.bytes.len(), "sha256": b.sha256()});
    let (status, body) = broken
        .api()
        .bearer(&app)
        .post(
            "/api/v1/releases/launcher/publish",
            json!({"version": "1.2.0", "artifacts": [entry]}),
        )
        .await
        .parts();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{body}"
    );

    // ---- Packs: a pack token deploy, an OIDC deploy, a forged OIDC token ----
    let bytes = b"pack content ".repeat(300);
    let hdr = ("x-atlas-pack-deploy-token", pack_token.as_str());
    let (status, p) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        hdr,
        presign_body("v1", "maps.zip", &bytes),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    w.presigned("a pack upload signature", p["url"].as_str().unwrap());
    assert_eq!(curl_upload(&p, &bytes), 200);
    let sha = crate::support::sha256_hex(&bytes);
    let deploy = |build: &str| json!({"build": build, "channel": "beta", "artifacts": [{"key": p["key"], "size": bytes.len(), "sha256": sha}]});
    let (status, b) = pack_call(&hub, "POST", "/api/v1/packs/maps/deploy", hdr, deploy("v1")).await;
    assert_eq!(status, 201, "{b}");

    let jwt = sign(&claims(&issuer.url), ISSUER_KEY, "k1");
    w.secret("an OIDC token", &jwt);
    w.secret("an OIDC token's signature", jwt.rsplit('.').next().unwrap());
    let (status, p2) = pack_call(
        &hub,
        "POST",
        "/api/v1/storage/presign",
        ("x-atlas-oidc-token", &jwt),
        presign_body("v2", "maps.zip", &bytes),
    )
    .await;
    assert_eq!(status, 200, "{p2}");
    let forged = sign(&claims(&issuer.url), OTHER_KEY, "k1");
    w.secret("a forged OIDC token", &forged);
    let (status, b) = pack_call(
        &hub,
        "POST",
        "/api/v1/packs/maps/deploy",
        ("x-atlas-oidc-token", &forged),
        deploy("v2"),
    )
    .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (401, Some("oidc_invalid")),
        "{b}"
    );

    // ---- Vercel Blob: the store's read-write token signs client tokens, never leaves ----
    let store = crate::blob::start_store();
    let mut env = debug_env(&[]);
    env.extend(crate::blob::blob_env(&store, READ_WRITE_TOKEN));
    let blob = TestHub::start_with(HubOptions {
        database_url: Some(database_url.clone()),
        env,
        ..Default::default()
    })
    .await;
    w.secret("the Blob read-write token", READ_WRITE_TOKEN);
    w.secret(
        "the Blob read-write token's secret",
        READ_WRITE_TOKEN.rsplit('_').next().unwrap(),
    );
    let c = Artifact::new("linux", "x86_64", "appimage", "one-three");
    let (status, pc) = presign(&blob, &app, "launcher", "1.3.0", &c).await;
    assert_eq!(status, 200, "{pc}");
    w.secret("a Blob client token", &crate::blob::bearer(&pc));
    assert_eq!(curl_upload(&pc, &c.bytes), 200);
    let entry = json!({"uploadId": pc["uploadId"], "os": "linux", "arch": "x86_64",
                       "kind": "appimage", "size": c.bytes.len(), "sha256": c.sha256()});
    let (status, body) = blob
        .api()
        .bearer(&app)
        .post(
            "/api/v1/releases/launcher/publish",
            json!({"version": "1.3.0", "artifacts": [entry]}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");

    // ---- Failed authentication until the address is blocked (3 a minute) ----
    // The forged OIDC token above was the first failure; the revoked token is the second.
    let bearer_revoked = format!("Bearer {revoked}");
    let Reply {
        status, body: b, ..
    } = hub
        .api()
        .headers(&[("authorization", bearer_revoked.as_str())])
        .get("/api/v1/admin/tokens")
        .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (401, Some("token_revoked")),
        "{b}"
    );
    let wrong = format!("atlas_app_{}", "Q".repeat(43));
    let bearer_wrong = format!("Bearer {wrong}");
    let cookie = format!("session={wrong}");
    w.secret("a wrong token", &wrong);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let Reply { status, .. } = hub
            .api()
            .headers(&[
                ("authorization", bearer_wrong.as_str()),
                ("cookie", cookie.as_str()),
            ])
            .get("/api/v1/admin/tokens")
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 429]);

    // ---- Everything printed ----
    for (label, h) in [
        ("the Hub", &hub),
        ("the Hub with wrong storage credentials", &broken),
        ("the Hub on Vercel Blob", &blob),
    ] {
        let log = h.log();
        // The debug fields are really there: the check below has something to look at.
        assert!(
            log.contains("\"headers\""),
            "{label} did not log at debug:\n{log}"
        );
        w.output(&format!("{label}'s log"), log);
        w.output(&format!("{label}'s stdout"), h.stdout());
    }
    assert!(
        w.outputs.iter().any(|(_, t)| t.contains("storage")),
        "the storage failure's cause was logged"
    );
    w.assert_clean();
}

/// Operator sign-in at the most verbose logging: client secrets, authorization codes, states,
/// nonces, PKCE verifiers, provider tokens, flow and session cookies and CSRF tokens never
/// reach the Hub's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sign_in_prints_a_secret_even_at_the_most_verbose_logging() {
    use crate::signin::browser::{Browser, location, query_param};
    use crate::signin::github::{GithubStandIn, GithubUser};
    use crate::signin::oidc_provider::{IdpUser, OidcProvider};

    const GITHUB_SECRET: &str = "github-client-secret-for-the-secrets-test";
    const OIDC_SECRET: &str = "oidc-client-secret-for-the-secrets-test";
    const TENANT: &str = "0f9e8d7c-6b5a-4f3e-9d2c-1b0a99887766";
    let github = GithubStandIn::start("Iv1.secrets", GITHUB_SECRET).await;
    github.add_user(GithubUser {
        login: "octocat".into(),
        id: 1,
        ..Default::default()
    });
    let port = atlas_hub::dev::free_port().unwrap();
    let idp = OidcProvider::start(
        &[TENANT],
        "secrets-client",
        OIDC_SECRET,
        &[format!(
            "http://127.0.0.1:{port}/api/v1/auth/callback/microsoft"
        )],
    );
    let hub = TestHub::start_with(HubOptions {
        env: debug_env(&[
            ("ATLAS_SIGNIN_GITHUB_CLIENT_ID", "Iv1.secrets"),
            ("ATLAS_SIGNIN_GITHUB_CLIENT_SECRET", GITHUB_SECRET),
            ("ATLAS_SIGNIN_GITHUB_URL", &github.url),
            ("ATLAS_SIGNIN_GITHUB_API_URL", &github.url),
            ("ATLAS_SIGNIN_MICROSOFT_CLIENT_ID", "secrets-client"),
            ("ATLAS_SIGNIN_MICROSOFT_CLIENT_SECRET", OIDC_SECRET),
            ("ATLAS_SIGNIN_MICROSOFT_TENANTS", TENANT),
            ("ATLAS_SIGNIN_MICROSOFT_AUTHORITY", &idp.base),
            ("ATLAS_LIMIT_AUTH_FAILURES", "1000/min"),
        ]),
        port: Some(port),
        ..Default::default()
    })
    .await;
    crate::signin::grant(&hub, "github_user", "octocat", "admin", &[]);
    crate::signin::grant(&hub, "microsoft_tenant", TENANT, "viewer", &[]);
    let mut watch = Watch::default();
    watch.secret("GitHub client secret", GITHUB_SECRET);
    watch.secret("OIDC client secret", OIDC_SECRET);

    // GitHub: a sign-in, the session on the API (with its CSRF token), a forged callback
    // carrying a real code, sign-out.
    let mut browser = Browser::new(&hub.url);
    github.next_user("octocat");
    let start = browser.get("/api/v1/auth/signin/github").await;
    watch.secret(
        "a sign-in flow cookie",
        browser.cookie("__Host-atlas-signin").unwrap(),
    );
    let to_github = location(&start);
    watch.secret(
        "a sign-in state",
        &query_param(&to_github, "state").unwrap(),
    );
    let db = crate::support::connect(&hub.database_url).await;
    let verifier: String = db
        .query_one("SELECT pkce_verifier FROM signin_flows", &[])
        .await
        .unwrap()
        .get(0);
    watch.secret("a PKCE verifier", &verifier);
    let callback = location(&browser.get(&to_github).await);
    watch.secret(
        "an authorization code",
        &query_param(&callback, "code").unwrap(),
    );
    assert_eq!(browser.get(&callback).await.status(), 302);
    let cookie = browser.cookie("__Host-atlas-session").unwrap().to_owned();
    watch.secret("a session cookie", &cookie);
    let info: serde_json::Value = browser
        .get("/api/v1/auth/session")
        .await
        .json()
        .await
        .unwrap();
    let csrf = info["csrfToken"].as_str().unwrap().to_owned();
    watch.secret("a CSRF token", &csrf);
    let write = browser
        .request(reqwest::Method::POST, "/api/v1/admin/products")
        .header("x-atlas-csrf", &csrf)
        .json(&json!({"slug": "launcher", "name": "Launcher"}));
    assert_eq!(browser.send(write).await.status(), 201);
    assert_eq!(
        browser.get(&callback).await.status(),
        401,
        "a replayed callback"
    );
    let signout = browser
        .request(reqwest::Method::POST, "/api/v1/auth/signout")
        .header("x-atlas-csrf", &csrf);
    assert_eq!(browser.send(signout).await.status(), 204);
    browser.plant("__Host-atlas-session", &cookie);
    assert_eq!(browser.get("/api/v1/admin/tokens").await.status(), 401);
    for token in github.tokens() {
        watch.token("a GitHub access token", &token);
    }

    // Microsoft (the real OpenID provider): a sign-in, and a forged id_token.
    idp.next_user(
        TENANT,
        &IdpUser {
            sub: "sub-secrets".into(),
            email: "a@example.com".into(),
            email_verified: true,
            name: "A".into(),
            oid: "oid-secrets".into(),
            groups: vec![],
        },
    )
    .await;
    for tamper in ["none", "audience"] {
        idp.tamper_next(TENANT, tamper).await;
        let mut browser = Browser::new(&hub.url);
        let start = browser.get("/api/v1/auth/signin/microsoft").await;
        let to_idp = location(&start);
        watch.secret("a nonce", &query_param(&to_idp, "nonce").unwrap());
        watch.secret("a sign-in state", &query_param(&to_idp, "state").unwrap());
        let callback = idp.follow_authorization(&to_idp).await.unwrap();
        watch.secret(
            "an authorization code",
            &query_param(&callback, "code").unwrap(),
        );
        let done = browser.get(&callback).await;
        if tamper == "none" {
            assert_eq!(done.status(), 302);
            watch.secret(
                "a session cookie",
                browser.cookie("__Host-atlas-session").unwrap(),
            );
        } else {
            assert_eq!(done.status(), 401);
        }
    }

    watch.output("the Hub's log", hub.log());
    watch.output("the Hub's stdout", hub.stdout());
    assert!(
        hub.log().contains("\"reason\":\"wrong_audience\""),
        "the refusal is logged"
    );
    watch.assert_clean();
}
