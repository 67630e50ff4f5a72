//! Cases for the admin routes and the pack routes.

use super::*;

pub(super) fn admin_and_pack_cases() -> Vec<Case> {
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
