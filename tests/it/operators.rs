//! Operator commands over HTTP (`atlas-hub admin product|pack|token|audit`), the real binary
//! against a local Hub: create, list, update, revoke, the audit log's pages, `--json` output
//! parsed, bad input and a revoked admin token refused with the fix; the audit log's filters
//! over HTTP and from the CLI; and the README's walk-through run as written, in a fresh shell.

use serde_json::{Value, json};

use crate::api::{
    Api, Artifact, admin_token, app_token, create_product, curl_upload, latest_version, publish,
};
use crate::cli::{Run, atlas, dir, release, write};
use crate::support::{TestHub, root};

/// `atlas-hub admin <args>` with an admin token.
fn admin(hub: &TestHub, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    atlas(&hub.url, &[("ATLAS_ADMIN_TOKEN", token)], &all)
}

/// The JSON a `--json` command printed (and that it printed nothing else on stdout).
fn json_out(run: &Run) -> Value {
    assert!(run.ok, "{run}");
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {run}"))
}

#[tokio::test]
async fn operators_create_list_and_update_products_and_packs() {
    let hub = TestHub::start().await;
    let token = admin_token(&hub);

    let run = admin(
        &hub,
        &token,
        &[
            "product",
            "create",
            "launcher",
            "--name",
            "Launcher",
            "--required-platform",
            "linux-x86_64",
            "--required-platform",
            "windows-x86_64",
        ],
    );
    assert!(
        run.ok && run.stdout.contains("created product launcher"),
        "{run}"
    );
    let run = admin(&hub, &token, &["product", "create", "runner", "--json"]);
    let runner = json_out(&run);
    assert_eq!(runner["slug"], "runner");
    assert_eq!(runner["name"], "runner", "the name defaults to the slug");

    let run = admin(
        &hub,
        &token,
        &[
            "product",
            "update",
            "launcher",
            "--name",
            "Atlas Launcher",
            "--max-artifact-size",
            "5000000",
        ],
    );
    assert!(
        run.ok && run.stdout.contains("updated product launcher"),
        "{run}"
    );
    let products = json_out(&admin(&hub, &token, &["product", "list", "--json"]));
    let launcher = products["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == "launcher")
        .cloned()
        .unwrap();
    assert_eq!(launcher["name"], "Atlas Launcher");
    assert_eq!(launcher["maxArtifactSize"], 5_000_000);
    assert_eq!(
        launcher["requiredPlatforms"],
        serde_json::json!(["linux-x86_64", "windows-x86_64"]),
        "an update that does not name the platforms keeps them"
    );
    let run = admin(&hub, &token, &["product", "list"]);
    assert!(run.ok, "{run}");
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("launcher "))
        .unwrap_or_default();
    assert!(
        row.contains("Atlas Launcher") && row.contains("linux-x86_64, windows-x86_64"),
        "{run}"
    );
    let run = admin(
        &hub,
        &token,
        &[
            "product",
            "update",
            "launcher",
            "--no-required-platforms",
            "--max-artifact-size",
            "none",
        ],
    );
    assert!(run.ok, "{run}");
    let products = json_out(&admin(&hub, &token, &["product", "list", "--json"]));
    let launcher = &products["products"].as_array().unwrap()[0];
    assert_eq!(launcher["requiredPlatforms"], serde_json::json!([]));
    assert!(launcher["maxArtifactSize"].is_null(), "{launcher}");

    // A pack with a trusted publisher; an update of one field keeps the others.
    let run = admin(
        &hub,
        &token,
        &[
            "pack",
            "create",
            "maps",
            "--name",
            "Maps",
            "--oidc-only",
            "--github-repository",
            "atlas/maps",
            "--github-repository-id",
            "101",
            "--github-repository-owner-id",
            "202",
            "--github-workflow",
            "deploy.yml",
        ],
    );
    assert!(run.ok && run.stdout.contains("created pack maps"), "{run}");
    let run = admin(
        &hub,
        &token,
        &[
            "pack",
            "update",
            "maps",
            "--github-environment",
            "production",
            "--oidc-only",
            "false",
            "--json",
        ],
    );
    let maps = json_out(&run);
    assert_eq!(maps["oidcOnly"], false);
    assert_eq!(maps["github"]["repository"], "atlas/maps");
    assert_eq!(maps["github"]["repositoryId"], 101);
    assert_eq!(maps["github"]["workflow"], "deploy.yml");
    assert_eq!(maps["github"]["environment"], "production");
    let packs = json_out(&admin(&hub, &token, &["pack", "list", "--json"]));
    assert_eq!(packs["packs"][0]["github"], maps["github"]);
    let run = admin(&hub, &token, &["pack", "list"]);
    assert!(
        run.ok && run.stdout.contains("atlas/maps (repository 101, owner 202, workflow deploy.yml, environment production)"),
        "{run}"
    );
    let run = admin(
        &hub,
        &token,
        &["pack", "update", "maps", "--no-github", "--json"],
    );
    assert!(json_out(&run)["github"].is_null(), "{run}");

    // Bad input: the Hub's code and the field, or the flag, named; nothing created.
    let run = admin(&hub, &token, &["product", "create", "Bad Slug!"]);
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr.contains("400 invalid_input") && run.stderr.contains("slug"),
        "{run}"
    );
    let run = admin(&hub, &token, &["product", "create", "launcher"]);
    assert!(
        !run.ok
            && run.stderr.contains("409 product_exists")
            && run.stderr.contains("fix: a product with that slug exists"),
        "{run}"
    );
    let run = admin(
        &hub,
        &token,
        &[
            "product",
            "update",
            "launcher",
            "--max-artifact-size",
            "huge",
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("--max-artifact-size \"huge\""),
        "{run}"
    );
    let run = admin(&hub, &token, &["product", "update", "launcher"]);
    assert!(!run.ok && run.stderr.contains("nothing to change"), "{run}");
    let run = admin(
        &hub,
        &token,
        &["product", "update", "nosuch", "--name", "X"],
    );
    assert!(!run.ok && run.stderr.contains("404 not_found"), "{run}");
    let run = admin(
        &hub,
        &token,
        &[
            "pack",
            "create",
            "tiles",
            "--github-repository",
            "atlas/tiles",
        ],
    );
    assert!(
        !run.ok && run.stderr.contains("needs --github-repository-id"),
        "{run}"
    );
    let products = json_out(&admin(&hub, &token, &["product", "list", "--json"]));
    assert_eq!(products["products"].as_array().unwrap().len(), 2);
    let packs = json_out(&admin(&hub, &token, &["pack", "list", "--json"]));
    assert_eq!(packs["packs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tokens_are_issued_listed_and_revoked_and_the_audit_log_pages() {
    let hub = TestHub::start().await;
    let token = admin_token(&hub);
    assert!(admin(&hub, &token, &["product", "create", "launcher"]).ok);

    // The plaintext alone on stdout, so `$(…)` captures it; what it can do on stderr.
    let run = admin(
        &hub,
        &token,
        &[
            "token",
            "create",
            "--name",
            "launcher CI",
            "--kind",
            "app",
            "--product",
            "launcher",
            "--scope",
            "upload",
            "--scope",
            "publish",
            "--channel",
            "beta",
            "--expires-in-days",
            "30",
        ],
    );
    assert!(run.ok, "{run}");
    let app = run.stdout.trim().to_owned();
    assert!(
        app.starts_with("atlas_app_") && !app.contains(char::is_whitespace),
        "{run}"
    );
    assert_eq!(
        run.stdout,
        format!("{app}\n"),
        "nothing but the token on stdout"
    );
    assert!(
        run.stderr
            .contains("upload, publish on products launcher (channels beta), expires 20"),
        "{run}"
    );
    assert!(
        !run.stderr.contains(&app),
        "the token is printed once: {run}"
    );

    // It works for what it was issued for.
    let d = dir("operators");
    let file = write(&d, "app.AppImage", &b"app ".repeat(500));
    let spec = format!("linux/x86_64/appimage={file}");
    let publish = [
        "publish",
        "--product",
        "launcher",
        "--version",
        "1.0.0",
        "--channel",
        "beta",
        &spec,
    ];
    let run = release(&hub, &app, &publish);
    assert!(run.ok, "{run}");
    assert_eq!(
        latest_version(&hub, "launcher", "beta", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );

    let list = json_out(&admin(&hub, &token, &["token", "list", "--json"]));
    let tokens = list["tokens"].as_array().unwrap();
    let issued = tokens.iter().find(|t| t["name"] == "launcher CI").unwrap();
    let id = issued["id"].as_str().unwrap().to_owned();
    assert_eq!(issued["scopes"], serde_json::json!(["upload", "publish"]));
    assert!(issued["lastUsedAt"].is_string(), "{issued}");
    assert!(issued["revokedAt"].is_null(), "{issued}");
    assert!(
        !list.to_string().contains(&app),
        "a list never holds a secret"
    );
    let run = admin(&hub, &token, &["token", "list"]);
    assert!(
        run.ok
            && run.stdout.contains(&id)
            && run.stdout.contains("upload, publish on launcher (beta)"),
        "{run}"
    );

    let run = admin(&hub, &token, &["token", "revoke", &id]);
    assert!(
        run.ok && run.stdout.contains(&format!("revoked token {id}")),
        "{run}"
    );
    let list = json_out(&admin(&hub, &token, &["token", "list", "--json"]));
    let revoked = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap();
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let run = release(&hub, &app, &publish);
    assert!(!run.ok && run.stderr.contains("401 token_revoked"), "{run}");

    // Bad input is the Hub's refusal, naming the field.
    let run = admin(
        &hub,
        &token,
        &["token", "create", "--name", "x", "--kind", "app"],
    );
    assert!(
        !run.ok && run.stderr.contains("400 invalid_input") && run.stderr.contains("products"),
        "{run}"
    );
    let run = admin(
        &hub,
        &token,
        &["token", "create", "--name", "x", "--kind", "root"],
    );
    assert!(
        !run.ok && run.stderr.contains("invalid value 'root'"),
        "{run}"
    );
    let run = admin(&hub, &token, &["token", "revoke", "not-an-id"]);
    assert!(!run.ok && run.stderr.contains("404 not_found"), "{run}");

    // The audit log: every step above, newest first, a page at a time.
    let all = json_out(&admin(&hub, &token, &["audit", "--all", "--json"]));
    let actions: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.revoke",
            "release.publish",
            "channel.move",
            "token.issue",
            "product.create",
            "token.issue"
        ],
        "{all}"
    );
    assert!(all["nextCursor"].is_null());
    let page = json_out(&admin(&hub, &token, &["audit", "--limit", "2", "--json"]));
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let run = admin(&hub, &token, &["audit", "--limit", "2"]);
    assert!(
        run.ok
            && run
                .stdout
                .contains(&format!("next: atlas-hub admin audit --cursor {cursor}")),
        "{run}"
    );
    let next = json_out(&admin(
        &hub,
        &token,
        &["audit", "--limit", "4", "--cursor", &cursor, "--json"],
    ));
    let rest: Vec<&str> = next["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(rest, actions[2..]);
    let run = admin(&hub, &token, &["audit", "--limit", "0"]);
    assert!(!run.ok && run.stderr.contains("--limit 0"), "{run}");

    // A revoked admin token: refused, and the fix says where a new one comes from.
    let run = admin(
        &hub,
        &token,
        &[
            "token",
            "create",
            "--name",
            "second admin",
            "--kind",
            "admin",
        ],
    );
    assert!(run.ok, "{run}");
    let second = run.stdout.trim().to_owned();
    assert!(second.starts_with("atlas_admin_"), "{run}");
    let second_id = json_out(&admin(&hub, &token, &["token", "list", "--json"]))["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "second admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(admin(&hub, &token, &["token", "revoke", &second_id]).ok);
    let run = admin(&hub, &second, &["product", "list"]);
    assert!(!run.ok, "{run}");
    assert!(run.stderr.contains("401 token_revoked"), "{run}");
    assert!(
        run.stderr.contains("admin bootstrap-token")
            && run.stderr.contains("set ATLAS_ADMIN_TOKEN"),
        "{run}"
    );
    // A deploy token is not an admin token.
    let run = admin(
        &hub,
        &token,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--kind",
            "app",
            "--product",
            "*",
        ],
    );
    assert!(run.ok, "{run}");
    let run = admin(&hub, run.stdout.trim(), &["product", "list"]);
    assert!(
        !run.ok
            && run.stderr.contains("403 scope_denied")
            && run
                .stderr
                .contains("holds a deploy token, not an admin token"),
        "{run}"
    );
    let run = atlas(&hub.url, &[], &["admin", "token", "list"]);
    assert!(
        !run.ok && run.stderr.contains("ATLAS_ADMIN_TOKEN is not set"),
        "{run}"
    );
}

/// `release status --json` and `verify --json` print what their tables show, as JSON.
#[tokio::test]
async fn read_commands_print_json() {
    let hub = TestHub::start().await;
    let token = admin_token(&hub);
    assert!(
        admin(
            &hub,
            &token,
            &[
                "product",
                "create",
                "launcher",
                "--required-platform",
                "linux-x86_64"
            ]
        )
        .ok
    );
    let app = admin(
        &hub,
        &token,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--kind",
            "app",
            "--product",
            "launcher",
        ],
    );
    assert!(app.ok, "{app}");
    let app = app.stdout.trim().to_owned();
    let d = dir("json");
    let file = write(&d, "app.AppImage", &b"json ".repeat(500));
    let spec = format!("linux/x86_64/appimage={file}");
    let run = release(
        &hub,
        &app,
        &[
            "publish",
            "--product",
            "launcher",
            "--version",
            "2.0.0",
            "--channel",
            "stable",
            &spec,
        ],
    );
    assert!(run.ok, "{run}");

    let status = json_out(&atlas(
        &hub.url,
        &[],
        &["release", "status", "--product", "launcher", "--json"],
    ));
    assert_eq!(status["product"], "launcher");
    let stable = status["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stable")
        .unwrap();
    assert_eq!(stable["version"], "2.0.0");
    assert_eq!(stable["rolloutPercent"], 100);
    assert_eq!(stable["serves"][0]["platform"], "linux-x86_64");
    assert_eq!(stable["serves"][0]["filename"], "app.AppImage");
    assert_eq!(stable["serves"][0]["size"], 2500);

    let report = json_out(&atlas(
        &hub.url,
        &[("ATLAS_ADMIN_TOKEN", &token)],
        &["verify", "--json"],
    ));
    assert_eq!(report["failed"], 0, "{report}");
    let passed = report["passed"].as_u64().unwrap();
    assert!(passed >= 10, "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(
        checks.iter().filter(|c| c["result"] == "pass").count() as u64,
        passed
    );
    assert!(checks.iter().any(|c| c["check"] == "health"), "{report}");
}

/// The README's walk-through, exactly as written, in a fresh `sh` against a running Hub:
/// only `cargo run -q --` becomes the built binary, the Hub URL the test Hub's, and `/tmp/` a
/// folder of this test's.
#[tokio::test]
async fn the_readme_walk_through_works_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("```sh\nexport ATLAS_HUB_URL=")
        .expect("the README's walk-through starts with `export ATLAS_HUB_URL=`");
    let block = &readme[start + "```sh\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    for forbidden in ["curl", "sed", "jq"] {
        assert!(
            !block.split_whitespace().any(|w| w == forbidden),
            "the walk-through uses {forbidden}"
        );
    }
    let hub = TestHub::start().await;
    let files = dir("readme");
    // `/tmp/` first: the binary's own path may be under /tmp (a fresh clone's).
    let script = block
        .replace("/tmp/", &format!("{}/", files.display()))
        .replace("cargo run -q --", env!("CARGO_BIN_EXE_atlas-hub"))
        .replace(
            "export ATLAS_HUB_URL=http://127.0.0.1:8080",
            &format!("export ATLAS_HUB_URL={}", hub.url),
        );
    assert!(
        script.contains(&hub.url),
        "the walk-through sets ATLAS_HUB_URL"
    );
    let out = std::process::Command::new("sh")
        .args(["-eu", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        // `admin bootstrap-token` on the test Hub's database (the README's Hub is the local one).
        .env("DATABASE_URL", &hub.database_url)
        .env("ATLAS_TOKEN_PEPPER", crate::support::PEPPER)
        .output()
        .unwrap();
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(run.ok, "the README walk-through failed:\n{run}");
    for line in [
        "published launcher 1.0.0",
        "launcher/stable: 1.0.0 -> 1.1.0 (100% of clients)",
        "rolled back: 1.1.0 -> 1.0.0",
        "0 failed",
        "channel.move",
    ] {
        assert!(run.stdout.contains(line), "no {line:?} in:\n{run}");
    }
    assert_eq!(
        latest_version(&hub, "launcher", "stable", "linux", "x86_64")
            .await
            .as_deref(),
        Some("1.0.0")
    );
}

/// Deploys one file as `build` of `pack` onto `channel` with `api`'s credential.
async fn deploy_pack(api: &Api, pack: &str, build: &str, channel: &str) {
    let bytes = format!("{pack} {build} ").repeat(50).into_bytes();
    let sha256 = crate::support::sha256_hex(&bytes);
    let (status, presigned) = api
        .clone()
        .post(
            "/api/v1/storage/presign",
            json!({"pack": pack, "build": build, "filename": "content.zip", "size": bytes.len(),
                   "sha256": sha256, "contentType": "application/zip"}),
        )
        .await
        .parts();
    assert_eq!(status, 200, "{presigned}");
    assert_eq!(curl_upload(&presigned, &bytes), 200);
    let (status, body) = api
        .clone()
        .post(
            &format!("/api/v1/packs/{pack}/deploy"),
            json!({"build": build, "channel": channel, "artifacts": [
                {"uploadId": presigned["uploadId"], "size": bytes.len(), "sha256": sha256}]}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{body}");
}

/// `(action, subject)` of each entry.
fn actions(entries: &[Value]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect()
}

/// Every entry the audit log lists for `query`, page after page (`limit` per page): each
/// entry once, newest first.
async fn audit_all(api: &Api, query: &str, limit: usize) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/admin/audit?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.clone().get(&path).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let page = r.body["entries"].as_array().unwrap().clone();
        assert!(page.len() <= limit, "{path}: {r:?}");
        entries.extend(page);
        match r.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "{query}: not newest first, or an entry twice: {ids:?}"
    );
    ids.dedup();
    assert_eq!(ids.len(), entries.len());
    entries
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The audit log's filters: by product (never a pack of the same slug), by pack, by actor
/// (any case), by action or action prefix, by time window (since inclusive, until
/// exclusive); combined; paged; bad values refused naming the parameter; from the CLI too.
#[tokio::test]
async fn the_audit_log_filters_by_product_pack_actor_action_and_time() {
    let hub = TestHub::start().await;
    let operator = admin_token(&hub);
    let op = hub.api().bearer(&operator);
    create_product(&hub, &operator, "launcher", json!({})).await;
    create_product(&hub, &operator, "runner", json!({})).await;
    let ci = app_token(
        &hub,
        &operator,
        &["launcher", "runner"],
        &["upload", "publish", "promote", "yank"],
        &[],
    )
    .await;
    let (status, bot) = op
        .clone()
        .post(
            "/api/v1/admin/tokens",
            json!({"name": "Release Bot", "kind": "admin"}),
        )
        .await
        .parts();
    assert_eq!(status, 201, "{bot}");
    let bot = hub.api().bearer(bot["token"].as_str().unwrap());
    for pack in ["maps", "launcher"] {
        let (status, body) = bot
            .clone()
            .post("/api/v1/admin/packs", json!({"slug": pack}))
            .await
            .parts();
        assert_eq!(status, 201, "{body}");
    }
    let file = |tag: &str| [Artifact::new("linux", "x86_64", "appimage", tag)];
    for (product, version, channel) in [
        ("launcher", "1.0.0", Some("stable")),
        ("runner", "1.0.0", Some("beta")),
        ("launcher", "1.1.0", None),
    ] {
        let (status, body) = publish(&hub, &ci, product, version, channel, &file(product)).await;
        assert_eq!(status, 201, "{body}");
    }
    let r = hub
        .api()
        .bearer(&ci)
        .post(
            "/api/v1/releases/launcher/1.1.0/yank",
            json!({"reason": "broken"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    deploy_pack(&bot, "maps", "b1", "beta").await;
    deploy_pack(&bot, "maps", "b2", "beta").await;
    let r = bot
        .clone()
        .put("/api/v1/packs/maps/channels/beta", json!({"build": "b1"}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    deploy_pack(&op, "launcher", "x1", "stable").await;

    let everything = audit_all(&op, "", 100).await;
    let filtered = |query: &'static str| audit_all(&op, query, 100);

    // By product: the product, its releases and channels; not the pack of the same slug,
    // not the tokens issued for it.
    let launcher = pairs(&[
        ("release.yank", "launcher@1.1.0"),
        ("release.publish", "launcher@1.1.0"),
        ("release.publish", "launcher@1.0.0"),
        ("channel.move", "launcher/stable"),
        ("product.create", "launcher"),
    ]);
    assert_eq!(actions(&filtered("product=launcher").await), launcher);
    assert_eq!(
        actions(&filtered("product=runner").await),
        pairs(&[
            ("release.publish", "runner@1.0.0"),
            ("channel.move", "runner/beta"),
            ("product.create", "runner"),
        ])
    );
    assert_eq!(filtered("product=nothing-here").await, Vec::<Value>::new());
    // By pack: pack actions only.
    assert_eq!(
        actions(&filtered("pack=launcher").await),
        pairs(&[("pack.deploy", "launcher@x1"), ("pack.create", "launcher")])
    );
    let maps = pairs(&[
        ("pack.channel.move", "maps/beta"),
        ("pack.deploy", "maps@b2"),
        ("pack.deploy", "maps@b1"),
        ("pack.create", "maps"),
    ]);
    assert_eq!(actions(&filtered("pack=maps").await), maps);
    // By actor: a case-insensitive part of it.
    let by_bot = filtered("actor=release%20BOT").await;
    assert_eq!(
        actions(&by_bot),
        pairs(&[
            ("pack.channel.move", "maps/beta"),
            ("pack.deploy", "maps@b2"),
            ("pack.deploy", "maps@b1"),
            ("pack.create", "launcher"),
            ("pack.create", "maps"),
        ])
    );
    assert!(
        by_bot
            .iter()
            .all(|e| e["actor"].as_str().unwrap().contains("Release Bot")),
        "{by_bot:?}"
    );
    assert_eq!(
        filtered("actor=%25").await,
        Vec::<Value>::new(),
        "% is literal"
    );
    assert_eq!(
        filtered("actor=_").await,
        Vec::<Value>::new(),
        "_ is literal"
    );
    // By action, exact or a prefix ending with '.'.
    let moves = pairs(&[
        ("channel.move", "runner/beta"),
        ("channel.move", "launcher/stable"),
    ]);
    assert_eq!(actions(&filtered("action=channel.move").await), moves);
    assert_eq!(actions(&filtered("action=channel.").await), moves);
    assert_eq!(
        filtered("action=channel").await,
        Vec::<Value>::new(),
        "exact"
    );
    assert_eq!(filtered("action=release.").await.len(), 4);
    assert_eq!(
        actions(&filtered("action=pack.channel.").await),
        pairs(&[("pack.channel.move", "maps/beta")])
    );
    let pack_actions = filtered("action=pack.").await;
    assert_eq!(pack_actions.len(), 6, "{pack_actions:?}");
    assert_eq!(
        actions(&filtered("action=token.issue").await).len(),
        3,
        "the bootstrap token, ci and Release Bot: {everything:?}"
    );
    // By time: since inclusive, until exclusive. The publish of launcher 1.0.0 and its
    // channel move are one transaction: one time.
    let published = everything
        .iter()
        .find(|e| e["subject"] == "launcher@1.0.0")
        .unwrap();
    let at = published["at"].as_str().unwrap();
    let t = |e: &Value| {
        time::OffsetDateTime::parse(
            e["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let since: Vec<Value> = everything
        .iter()
        .filter(|e| t(e) >= t(published))
        .cloned()
        .collect();
    let until: Vec<Value> = everything
        .iter()
        .filter(|e| t(e) < t(published))
        .cloned()
        .collect();
    assert!(since.len() > 2 && until.len() > 2, "{everything:?}");
    assert_eq!(
        audit_all(&op, &format!("since={}", encode(at)), 100).await,
        since
    );
    assert_eq!(
        audit_all(&op, &format!("until={}", encode(at)), 100).await,
        until
    );
    assert_eq!(
        actions(&audit_all(&op, &format!("product=launcher&since={}", encode(at)), 100).await),
        launcher[..4]
    );
    assert_eq!(
        actions(&audit_all(&op, &format!("product=launcher&until={}", encode(at)), 100).await),
        launcher[4..]
    );
    let r = op
        .clone()
        .get(&format!(
            "/api/v1/admin/audit?since={0}&until={0}",
            encode(at)
        ))
        .await;
    assert_eq!((r.status, r.body["entries"].clone()), (200, json!([])));
    // An offset other than Z is the same instant.
    let later = t(published) + time::Duration::hours(2);
    let shifted = later
        .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(shifted.contains("+02:00"), "{shifted}");
    assert_eq!(
        audit_all(&op, &format!("since={}", encode(at)), 100).await,
        audit_all(
            &op,
            &format!("until={}&since={}", encode(&shifted), encode(at)),
            100
        )
        .await
    );

    // Combined.
    assert_eq!(
        actions(&filtered("product=launcher&action=release.").await),
        launcher[..3]
    );
    assert_eq!(
        actions(&filtered("pack=maps&action=pack.deploy&actor=bot").await),
        maps[1..3]
    );
    assert_eq!(
        filtered("pack=maps&actor=operator").await,
        Vec::<Value>::new()
    );
    // Paged: every match once, whatever the page size.
    for limit in [1, 2, 3] {
        assert_eq!(
            actions(&audit_all(&op, "product=launcher", limit).await),
            launcher,
            "limit {limit}"
        );
        assert_eq!(
            actions(&audit_all(&op, "pack=maps&action=pack.", limit).await),
            maps
        );
    }
    // Bad values: 400 naming the parameter.
    let long_actor = format!("actor={}", "a".repeat(201));
    for (query, mention) in [
        ("product=Launcher", "product"),
        ("product=launcher%2Fstable", "product"),
        ("product=launcher%40", "product"),
        ("pack=maps_1", "pack"),
        ("product=launcher&pack=maps", "product"),
        ("actor=a%07b", "actor"),
        (long_actor.as_str(), "actor"),
        ("action=Channel.move", "action"),
        ("action=channel..move", "action"),
        ("action=.move", "action"),
        ("action=channel%25", "action"),
        ("since=yesterday", "since"),
        ("since=2026-11-27", "since"),
        ("since=2026-11-27T16:00:00", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        (
            "since=2026-11-28T00:00:00Z&until=2026-11-27T00:00:00Z",
            "since",
        ),
        ("subject=launcher", "subject"),
        ("product=launcher&product=runner", "product"),
        ("limit=0&product=launcher", "limit"),
    ] {
        let r = op
            .clone()
            .get(&format!("/api/v1/admin/audit?{query}"))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some("invalid_input")),
            "{query}: {r:?}"
        );
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(mention), "{query}: {detail}");
    }

    // From the CLI: the same filters, and the next page's command keeps them.
    let run = admin(
        &hub,
        &operator,
        &[
            "audit",
            "--product",
            "launcher",
            "--action",
            "release.",
            "--json",
        ],
    );
    assert_eq!(
        actions(json_out(&run)["entries"].as_array().unwrap()),
        launcher[..3]
    );
    let run = admin(
        &hub,
        &operator,
        &["audit", "--actor", "Release Bot", "--limit", "2"],
    );
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("next: atlas-hub admin audit --actor 'Release Bot' --cursor "),
        "{run}"
    );
    let run = admin(
        &hub,
        &operator,
        &["audit", "--pack", "maps", "--since", at, "--all", "--json"],
    );
    let all = json_out(&run);
    assert_eq!(
        actions(all["entries"].as_array().unwrap()),
        maps[..3],
        "maps was created before launcher 1.0.0 was published"
    );
    let run = admin(
        &hub,
        &operator,
        &[
            "audit",
            "--until",
            &shifted,
            "--action",
            "channel.move",
            "--json",
        ],
    );
    assert_eq!(
        actions(json_out(&run)["entries"].as_array().unwrap()),
        moves
    );
    let run = admin(&hub, &operator, &["audit", "--since", "yesterday"]);
    assert!(
        !run.ok && run.stderr.contains("400 invalid_input") && run.stderr.contains("since"),
        "{run}"
    );
    let run = admin(
        &hub,
        &operator,
        &["audit", "--product", "launcher", "--pack", "maps"],
    );
    assert!(
        !run.ok && run.stderr.contains("cannot be used with"),
        "{run}"
    );
}
