//! Reads: ETags and 304s, short-lived download redirects, history pages, bad input.

use super::*;

#[tokio::test]
async fn reads_are_cacheable_with_etags_and_answer_304() {
    let (hub, _, app) = setup(&[]).await;
    let a = [Artifact::new("darwin", "aarch64", "app", "m")];
    assert_eq!(
        publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &a)
            .await
            .0,
        201
    );
    for path in [
        "/api/v1/releases/launcher/latest/macos/arm64",
        "/api/v1/releases/launcher",
        "/api/v1/releases/launcher/1.0.0",
        "/api/v1/releases/launcher/channels",
    ] {
        let r = client().get(hub.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(
            cc.contains("s-maxage=") && cc.contains("public"),
            "{path}: {cc}"
        );
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"'), "{path}: strong etag");
        let again = client()
            .get(hub.at(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    }
}

#[tokio::test]
async fn download_redirects_are_short_lived_never_cached_and_counted() {
    let (hub, _, app) = setup(&[]).await;
    let a = [Artifact::new("linux", "x86_64", "appimage", "dl")];
    let (_, release) = publish(&hub, &app, "launcher", "1.0.0", Some("stable"), &a).await;
    let url = release["artifacts"][0]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&hub.url), "{url}");
    for method in ["GET", "HEAD"] {
        let r = client()
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{method}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let location = r.headers()["location"].to_str().unwrap();
        assert!(location.contains("X-Amz-Expires=300"), "{location}");
        assert!(
            location.contains("response-content-disposition=attachment"),
            "{location}"
        );
        assert!(r.bytes().await.unwrap().is_empty(), "the Hub proxied bytes");
    }
    let mut counted = 0;
    for _ in 0..50 {
        counted = count_rows(&hub, "download_counts", "count >= 1").await;
        if counted > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 1, "the GET was not counted");
    let r = client()
        .get(hub.at("/api/v1/download/dl_unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn history_is_paginated_newest_first() {
    let (hub, _, app) = setup(&[]).await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        let a = [Artifact::new("linux", "x86_64", "appimage", v)];
        assert_eq!(publish(&hub, &app, "launcher", v, None, &a).await.0, 201);
    }
    let (_, page1) = hub
        .api()
        .get("/api/v1/releases/launcher?limit=2")
        .await
        .parts();
    let versions: Vec<_> = page1["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].clone())
        .collect();
    assert_eq!(versions, vec![json!("1.2.0"), json!("1.1.0")]);
    let cursor = page1["nextCursor"].as_str().unwrap();
    let (_, page2) = hub
        .api()
        .get(&format!(
            "/api/v1/releases/launcher?limit=2&cursor={cursor}"
        ))
        .await
        .parts();
    assert_eq!(page2["releases"][0]["version"], "1.0.0");
    assert!(page2["nextCursor"].is_null());
    let (s, b) = hub
        .api()
        .get("/api/v1/releases/launcher?limit=1000")
        .await
        .parts();
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_input")));
}

#[tokio::test]
async fn bad_input_answers_problems_not_500s() {
    let (hub, admin, app) = setup(&[]).await;
    let cases = [
        (
            "GET",
            "/api/v1/releases/launcher/latest/freebsd/x86_64",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/releases/Launcher/latest/linux/x86_64",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/releases/nope/latest/linux/x86_64",
            None,
            404,
        ),
        ("GET", "/api/v1/releases/launcher/not-semver", None, 400),
        (
            "POST",
            "/api/v1/storage/presign",
            Some(json!({"product": "launcher"})),
            400,
        ),
        (
            "POST",
            "/api/v1/releases/launcher/publish",
            Some(json!({"version": "x", "artifacts": []})),
            400,
        ),
        (
            "POST",
            "/api/v1/admin/products",
            Some(json!({"slug": "Bad Slug"})),
            400,
        ),
        (
            "POST",
            "/api/v1/admin/products",
            Some(json!({"slug": "launcher"})),
            409,
        ),
        (
            "POST",
            "/api/v1/admin/tokens",
            Some(json!({"name": "x", "kind": "app"})),
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let token = if path.contains("/admin/") {
            &admin
        } else {
            &app
        };
        let (s, b) = hub
            .api()
            .bearer(token)
            .send(method.parse().unwrap(), path, body)
            .await
            .parts();
        assert_eq!(s, expected, "{method} {path}: {b}");
        assert!(b["code"].is_string() && b["requestId"].is_string(), "{b}");
    }
    let r = client()
        .post(hub.at("/api/v1/releases/launcher/publish"))
        .bearer_auth(&app)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// A yank may say why: the reason shows in the release, the history and the audit log, a
/// bad one is refused naming `reason`, yanks without a body keep working, unyank clears it.
#[tokio::test]
async fn yank_reasons_show_in_detail_history_and_audit_and_unyank_clears_them() {
    let (hub, admin, app) = setup(&[]).await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        let a = [Artifact::new("linux", "x86_64", "appimage", v)];
        assert_eq!(publish(&hub, &app, "launcher", v, None, &a).await.0, 201);
    }
    let yank = |version: &str, body: Option<serde_json::Value>| {
        let path = format!("/api/v1/releases/launcher/{version}/yank");
        let api = hub.api().bearer(&app);
        async move { api.send(http::Method::POST, &path, body).await }
    };
    let detail = |version: &str| {
        let path = format!("/api/v1/releases/launcher/{version}");
        let api = hub.api();
        async move { api.get(&path).await.body }
    };
    let history = || async {
        let body = hub.api().get("/api/v1/releases/launcher").await.body;
        body["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["version"].as_str().unwrap().to_owned(),
                    r["yanked"].as_bool().unwrap(),
                    r["yankReason"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let yank_audit = || async {
        let body = hub
            .api()
            .bearer(&admin)
            .get("/api/v1/admin/audit?action=release.yank&limit=100")
            .await
            .body;
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["subject"].as_str().unwrap().to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };

    let reason = "crashes on start on Wayland (#1234) — use 1.1.0";
    let r = yank("1.0.0", Some(json!({ "reason": reason }))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["yanked"].as_bool(), r.body["yankReason"].as_str()),
        (Some(true), Some(reason))
    );
    assert_eq!(detail("1.0.0").await["yankReason"], reason);
    // Without a body, and with `{}`: a yank without a reason, as before reasons existed.
    let r = yank("1.1.0", None).await;
    assert_eq!(
        (r.status, r.body["yankReason"].clone()),
        (200, json!(null)),
        "{r:?}"
    );
    let r = yank("1.1.0", Some(json!({}))).await;
    assert_eq!(
        (r.status, r.body["yankReason"].clone()),
        (200, json!(null)),
        "{r:?}"
    );
    assert_eq!(
        detail("1.2.0").await["yankReason"],
        json!(null),
        "not yanked"
    );
    assert_eq!(
        history().await,
        [
            ("1.2.0".to_owned(), false, json!(null)),
            ("1.1.0".to_owned(), true, json!(null)),
            ("1.0.0".to_owned(), true, json!(reason)),
        ]
    );
    assert_eq!(
        yank_audit().await,
        [
            ("launcher@1.1.0".to_owned(), json!({"reason": null})),
            ("launcher@1.0.0".to_owned(), json!({"reason": reason})),
        ],
        "one entry per yank, the repeated one not audited"
    );

    // A new reason for a yanked release replaces the old one, audited; none keeps it.
    let r = yank("1.0.0", Some(json!({"reason": "  also corrupts saves  "}))).await;
    assert_eq!(
        (r.status, r.body["yankReason"].as_str()),
        (200, Some("also corrupts saves"))
    );
    let r = yank("1.0.0", None).await;
    assert_eq!(r.body["yankReason"], "also corrupts saves");
    assert_eq!(yank_audit().await.len(), 3);
    assert_eq!(
        yank_audit().await[0].1,
        json!({"reason": "also corrupts saves"})
    );

    // Bad reasons: 400 naming reason, and nothing changes.
    let long = "x".repeat(501);
    for (body, mention) in [
        (json!({"reason": "first line\nsecond line"}), "reason"),
        (json!({"reason": "tab\there"}), "reason"),
        (json!({"reason": "bidi \u{202e}txet"}), "reason"),
        (json!({"reason": long}), "reason"),
        (json!({"reason": ""}), "reason"),
        (json!({"reason": "   "}), "reason"),
        (json!({"reason": 5}), "reason"),
        (json!({"reason": ["a"]}), "reason"),
        (json!({"why": "x"}), "unknown field `why`"),
    ] {
        let r = yank("1.2.0", Some(body.clone())).await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some("invalid_input")),
            "{body}: {r:?}"
        );
        let detail_text = r.body["detail"].as_str().unwrap();
        assert!(detail_text.contains(mention), "{body}: {detail_text}");
    }
    let r = client()
        .post(hub.at("/api/v1/releases/launcher/1.2.0/yank"))
        .bearer_auth(&app)
        .header("content-type", "text/plain")
        .body("reason=broken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        detail("1.2.0").await["yanked"],
        false,
        "a refused yank yanked"
    );
    assert_eq!(yank_audit().await.len(), 3);
    // 500 characters (not bytes) is the limit.
    let r = yank("1.2.0", Some(json!({"reason": "é".repeat(500)}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["yankReason"].as_str().unwrap().chars().count(), 500);

    // Unyank clears the reason; a later yank without one does not bring it back.
    let r = hub
        .api()
        .bearer(&app)
        .send(
            http::Method::POST,
            "/api/v1/releases/launcher/1.0.0/unyank",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["yanked"].as_bool()),
        (200, Some(false)),
        "{r:?}"
    );
    assert_eq!(r.body["yankReason"], json!(null));
    assert_eq!(detail("1.0.0").await["yankReason"], json!(null));
    assert_eq!(history().await[2], ("1.0.0".to_owned(), false, json!(null)));
    let r = yank("1.0.0", None).await;
    assert_eq!(
        (r.status, r.body["yankReason"].clone()),
        (200, json!(null)),
        "{r:?}"
    );
    assert_eq!(
        count_rows(&hub, "releases", "yank_reason IS NOT NULL").await,
        1
    );
}
