//! Signing in with GitHub (through the stand-in): the whole flow, the session on the admin
//! API, cross-site protection, sign-out, and the forgeries and failures a sign-in must
//! refuse, each with its own reason in the log.

use reqwest::Method;
use serde_json::{Value, json};

use super::browser::{Browser, location, query_param};
use super::github::{GithubStandIn, GithubUser};
use super::{grant, logged_reason, refusal};
use crate::api::admin_token;
use crate::support::{HubOptions, TestHub, connect};

const CLIENT_ID: &str = "Iv1.atlas-test-app";
const CLIENT_SECRET: &str = "github-client-secret-0123456789";
const SESSION: &str = "__Host-atlas-session";
const FLOW: &str = "__Host-atlas-signin";

/// A Hub whose GitHub sign-in goes to `github`.
async fn hub_with(github: &GithubStandIn) -> TestHub {
    TestHub::start_with(HubOptions {
        env: vec![
            ("ATLAS_SIGNIN_GITHUB_CLIENT_ID".into(), CLIENT_ID.into()),
            (
                "ATLAS_SIGNIN_GITHUB_CLIENT_SECRET".into(),
                CLIENT_SECRET.into(),
            ),
            ("ATLAS_SIGNIN_GITHUB_URL".into(), github.url.clone()),
            ("ATLAS_SIGNIN_GITHUB_API_URL".into(), github.url.clone()),
        ],
        ..Default::default()
    })
    .await
}

/// People: octocat (admin by user rule), mona (releaser through the acme org), eve (no rule).
async fn world() -> (GithubStandIn, TestHub) {
    let github = GithubStandIn::start(CLIENT_ID, CLIENT_SECRET).await;
    github.add_user(GithubUser {
        login: "octocat".into(),
        id: 1,
        orgs: vec!["github".into()],
        teams: vec![],
    });
    github.add_user(GithubUser {
        login: "Mona".into(),
        id: 2,
        orgs: vec!["acme".into(), "other".into()],
        teams: vec![("acme".into(), "release-ops".into())],
    });
    github.add_user(GithubUser {
        login: "eve".into(),
        id: 3,
        orgs: vec!["evil-corp".into()],
        teams: vec![],
    });
    let hub = hub_with(&github).await;
    grant(&hub, "github_user", "octocat", "admin", &[]);
    grant(&hub, "github_org", "acme", "releaser", &["launcher"]);
    (github, hub)
}

/// Starts a sign-in in `browser` and has GitHub answer it; returns the callback URL.
async fn authorize(
    browser: &mut Browser,
    github: &GithubStandIn,
    login: &str,
    return_to: &str,
) -> String {
    github.next_user(login);
    let start = browser
        .get(&format!("/api/v1/auth/signin/github?returnTo={return_to}"))
        .await;
    let to_github = location(&start);
    let answer = browser.get(&to_github).await;
    location(&answer)
}

/// A whole sign-in: the callback's response.
async fn sign_in(browser: &mut Browser, github: &GithubStandIn, login: &str) -> reqwest::Response {
    let callback = authorize(browser, github, login, "/console/products").await;
    browser.get(&callback).await
}

/// A state-changing request with the session cookie, as the Hub's own pages send it.
fn same_origin(
    browser: &Browser,
    hub: &TestHub,
    method: Method,
    path: &str,
    csrf: &str,
) -> reqwest::RequestBuilder {
    browser
        .request(method, path)
        .header("origin", &hub.url)
        .header("sec-fetch-site", "same-origin")
        .header("x-atlas-csrf", csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_opens_a_session_that_works_on_the_admin_api_until_sign_out() {
    let (github, hub) = world().await;
    let mut browser = Browser::new(&hub.url);

    // Signed out: the session endpoint says so and offers GitHub.
    let info: Value = browser
        .get("/api/v1/auth/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["signedIn"], false, "{info}");
    assert_eq!(info["providers"][0]["id"], "github", "{info}");
    assert_eq!(
        info["providers"].as_array().unwrap().len(),
        1,
        "no developer sign-in: {info}"
    );

    // The redirect to GitHub: this Hub's client id and callback, PKCE S256, a state, scopes.
    let start = browser
        .get("/api/v1/auth/signin/github?returnTo=/console/products")
        .await;
    let to_github = location(&start);
    assert!(
        to_github.starts_with(&format!("{}/login/oauth/authorize?", github.url)),
        "{to_github}"
    );
    assert_eq!(
        query_param(&to_github, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(&to_github, "redirect_uri"),
        Some(format!("{}/api/v1/auth/callback/github", hub.url))
    );
    assert_eq!(
        query_param(&to_github, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&to_github, "code_challenge").is_some_and(|c| c.len() >= 43));
    assert!(query_param(&to_github, "state").is_some_and(|s| s.len() >= 32));
    assert!(query_param(&to_github, "scope").is_some_and(|s| s.contains("read:org")));
    let flow_cookie = browser.set_cookie(FLOW).expect("a flow cookie").to_owned();
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(flow_cookie.contains(attribute), "{flow_cookie}");
    }

    // GitHub sends the browser back; the Hub opens a session and returns where it was asked.
    github.next_user("octocat");
    let callback = location(&browser.get(&to_github).await);
    let done = browser.get(&callback).await;
    assert_eq!(location(&done), "/console/products");
    let set = browser
        .set_cookie(SESSION)
        .expect("a session cookie")
        .to_owned();
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(!set.contains("Domain"), "{set}");
    assert!(browser.cookie(FLOW).is_none(), "the flow cookie is removed");

    let info: Value = browser
        .get("/api/v1/auth/session")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&info["signedIn"], &info["person"], &info["role"]),
        (&json!(true), &json!("github:octocat"), &json!("admin")),
        "{info}"
    );
    let csrf = info["csrfToken"].as_str().unwrap().to_owned();

    // The admin API by session: reads, and a write with the cross-site checks passed.
    let r = browser.get("/api/v1/admin/tokens").await;
    assert_eq!(r.status(), 200);
    let create = same_origin(
        &browser,
        &hub,
        Method::POST,
        "/api/v1/admin/products",
        &csrf,
    )
    .json(&json!({"slug": "launcher", "name": "Launcher"}));
    let r = browser.send(create).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let audit: Value = browser
        .get("/api/v1/admin/audit")
        .await
        .json()
        .await
        .unwrap();
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "product.create")
        .expect("an audit entry for the product");
    assert_eq!(
        entry["actor"], "github:octocat",
        "the audit log names the person"
    );
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.signin"),
        "{audit}"
    );

    // Cross-site writes with the cookie are refused, each for its own reason.
    let body = json!({"slug": "runner", "name": "Runner"});
    for (headers, reason) in [
        (
            vec![
                ("sec-fetch-site", "cross-site"),
                ("x-atlas-csrf", csrf.as_str()),
            ],
            "cross_site",
        ),
        (
            vec![
                ("origin", "https://evil.example"),
                ("x-atlas-csrf", csrf.as_str()),
            ],
            "origin_mismatch",
        ),
        (
            vec![("sec-fetch-site", "same-origin")],
            "csrf_token_missing",
        ),
        (vec![("x-atlas-csrf", "00")], "csrf_token_mismatch"),
    ] {
        let mut request = browser
            .request(Method::POST, "/api/v1/admin/products")
            .json(&body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let (status, code, why) = refusal(browser.send(request).await).await;
        assert_eq!(
            (status, code.as_str(), why.as_str()),
            (403, "csrf_failed", reason)
        );
        assert!(logged_reason(&hub, reason), "{reason} not in the log");
    }
    // Token requests are not affected: no Origin, no CSRF header.
    let token = admin_token(&hub);
    let r = crate::support::client()
        .post(hub.at("/api/v1/admin/products"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // The operator's own sessions; then sign-out ends this one.
    let list: Value = browser
        .get("/api/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{list}");
    assert_eq!(
        (&sessions[0]["current"], &sessions[0]["provider"]),
        (&json!(true), &json!("github"))
    );
    let cookie = browser.cookie(SESSION).unwrap().to_owned();
    let r = browser
        .send(same_origin(
            &browser,
            &hub,
            Method::POST,
            "/api/v1/auth/signout",
            &csrf,
        ))
        .await;
    assert_eq!(r.status(), 204);
    assert!(browser.set_cookie(SESSION).unwrap().contains("Max-Age=0"));
    browser.plant(SESSION, &cookie);
    let (status, code, _) = refusal(browser.get("/api/v1/admin/tokens").await).await;
    assert_eq!((status, code.as_str()), (401, "session_invalid"));

    // Only digests are stored, and GitHub's token only sealed.
    let db = connect(&hub.database_url).await;
    let rows = db
        .query("SELECT digest, provider_token FROM operator_sessions", &[])
        .await
        .unwrap();
    for token in github.tokens() {
        for row in &rows {
            let sealed: Option<Vec<u8>> = row.get(1);
            let sealed = sealed.unwrap_or_default();
            assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()));
        }
        assert!(!hub.log().contains(&token), "a GitHub token in the log");
    }
    assert!(!hub.log().contains(CLIENT_SECRET) && !hub.log().contains(&cookie));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_decide_roles_and_leaving_the_org_ends_access_at_the_next_check() {
    let (github, hub) = world().await;
    let mut mona = Browser::new(&hub.url);
    let done = sign_in(&mut mona, &github, "Mona").await;
    assert_eq!(done.status(), 302);
    let info: Value = mona.get("/api/v1/auth/session").await.json().await.unwrap();
    assert_eq!(
        (&info["person"], &info["role"]),
        (&json!("github:Mona"), &json!("releaser")),
        "{info}"
    );
    assert_eq!(info["products"], json!(["launcher"]));
    let csrf = info["csrfToken"].as_str().unwrap().to_owned();

    // A releaser reads what admins read, and may not do what only admins may.
    assert_eq!(mona.get("/api/v1/admin/products").await.status(), 200);
    let r = mona
        .send(
            same_origin(&mona, &hub, Method::POST, "/api/v1/admin/tokens", &csrf)
                .json(&json!({"name": "x", "kind": "admin"})),
        )
        .await;
    let (status, code, _) = refusal(r).await;
    assert_eq!((status, code.as_str()), (403, "scope_denied"));
    // Nor list everyone's sessions.
    let (status, _, _) = refusal(mona.get("/api/v1/auth/sessions?all=true").await).await;
    assert_eq!(status, 403);

    // Removed from the org: nothing changes until the re-check is due (at most 15 minutes;
    // here made due at once), then the session is gone.
    github.remove_from_org("Mona", "acme");
    assert_eq!(mona.get("/api/v1/admin/products").await.status(), 200);
    let db = connect(&hub.database_url).await;
    db.execute(
        "UPDATE operator_sessions SET checked_at = now() - interval '16 minutes'",
        &[],
    )
    .await
    .unwrap();
    let (status, code, _) = refusal(mona.get("/api/v1/admin/products").await).await;
    assert_eq!((status, code.as_str()), (401, "session_invalid"));
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM operator_sessions WHERE person = 'github:Mona'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the session is deleted at the check that ended it");
    assert!(
        github
            .requests()
            .iter()
            .filter(|r| *r == "GET /user/orgs")
            .count()
            >= 2
    );

    // Someone who revoked the app's token loses the session at the next check too.
    let mut octo = Browser::new(&hub.url);
    sign_in(&mut octo, &github, "octocat").await;
    assert_eq!(octo.get("/api/v1/admin/tokens").await.status(), 200);
    github.revoke_tokens("octocat");
    db.execute(
        "UPDATE operator_sessions SET checked_at = now() - interval '16 minutes'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(octo.get("/api/v1/admin/tokens").await.status(), 401);

    // Nobody without a matching rule gets a session.
    let mut eve = Browser::new(&hub.url);
    let (status, code, reason) = refusal(sign_in(&mut eve, &github, "eve").await).await;
    assert_eq!(
        (status, code.as_str(), reason.as_str()),
        (403, "signin_failed", "no_rule")
    );
    assert!(eve.cookie(SESSION).is_none());
    assert!(logged_reason(&hub, "no_rule"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_misdirected_github_sign_ins_are_refused_each_for_its_reason() {
    let (github, hub) = world().await;

    // A callback whose state is not the flow's.
    let mut browser = Browser::new(&hub.url);
    let callback = authorize(&mut browser, &github, "octocat", "/").await;
    let state = query_param(&callback, "state").unwrap();
    let forged = callback.replace(&state, "forged-state");
    let (status, code, reason) = refusal(browser.get(&forged).await).await;
    assert_eq!(
        (status, code.as_str(), reason.as_str()),
        (401, "signin_failed", "state_mismatch")
    );

    // The flow is used up by that attempt: the genuine callback finds nothing now.
    let (_, _, reason) = refusal(browser.get(&callback).await).await;
    assert_eq!(reason, "flow_unknown");

    // A callback without the browser's flow cookie (another browser, or a forged link).
    let mut other = Browser::new(&hub.url);
    let callback = authorize(&mut browser, &github, "octocat", "/").await;
    let (_, _, reason) = refusal(other.get(&callback).await).await;
    assert_eq!(reason, "flow_unknown");

    // A code used twice: a fresh flow carrying a code the Hub already exchanged.
    let mut browser = Browser::new(&hub.url);
    let first = authorize(&mut browser, &github, "octocat", "/").await;
    assert_eq!(browser.get(&first).await.status(), 302);
    let used_code = query_param(&first, "code").unwrap();
    let second = authorize(&mut browser, &github, "octocat", "/").await;
    let reused = second.replace(&query_param(&second, "code").unwrap(), &used_code);
    let (status, code, reason) = refusal(browser.get(&reused).await).await;
    assert_eq!(
        (status, code.as_str(), reason.as_str()),
        (401, "signin_failed", "code_reused")
    );

    // A code injected into someone else's flow: GitHub refuses it, as the victim's PKCE
    // verifier is not the one the code was issued for.
    let mut victim = Browser::new(&hub.url);
    let mut attacker = Browser::new(&hub.url);
    let victims = authorize(&mut victim, &github, "octocat", "/").await;
    let attackers = authorize(&mut attacker, &github, "eve", "/").await;
    let injected = victims.replace(
        &query_param(&victims, "code").unwrap(),
        &query_param(&attackers, "code").unwrap(),
    );
    let (_, _, reason) = refusal(victim.get(&injected).await).await;
    assert_eq!(reason, "code_rejected");

    // A session id planted in the browser before sign-in is never the one it gets.
    let mut planted = Browser::new(&hub.url);
    planted.plant(SESSION, "attacker-chosen-session-id-0123456789abcdef");
    let done = sign_in(&mut planted, &github, "octocat").await;
    assert_eq!(done.status(), 302);
    let given = planted.cookie(SESSION).unwrap().to_owned();
    assert_ne!(given, "attacker-chosen-session-id-0123456789abcdef");
    let mut fixer = Browser::new(&hub.url);
    fixer.plant(SESSION, "attacker-chosen-session-id-0123456789abcdef");
    let (status, code, reason) = refusal(fixer.get("/api/v1/admin/tokens").await).await;
    assert_eq!(
        (status, code.as_str(), reason.as_str()),
        (401, "session_invalid", "session_unknown")
    );
    // Signing in again ends the session the browser held: one live session per sign-in.
    sign_in(&mut planted, &github, "octocat").await;
    assert_ne!(planted.cookie(SESSION).unwrap(), given);
    fixer.plant(SESSION, &given);
    assert_eq!(fixer.get("/api/v1/admin/tokens").await.status(), 401);

    // returnTo is a path on this Hub, or the sign-in does not start.
    for bad in [
        "https://evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let url = format!("/api/v1/auth/signin/github?returnTo={}", urlencode(bad));
        let (status, code, reason) = refusal(browser.get(&url).await).await;
        assert_eq!(
            (status, code.as_str(), reason.as_str()),
            (400, "signin_failed", "unsafe_return_to"),
            "{bad}"
        );
    }

    // A provider that is not configured has no sign-in.
    let (status, _, _) = refusal(browser.get("/api/v1/auth/signin/microsoft").await).await;
    assert_eq!(status, 404);
    let (status, _, _) = refusal(browser.get("/api/v1/auth/signin/local").await).await;
    assert_eq!(
        status, 404,
        "no developer sign-in once a provider is configured"
    );

    for reason in [
        "state_mismatch",
        "flow_unknown",
        "code_reused",
        "code_rejected",
        "session_unknown",
        "unsafe_return_to",
    ] {
        assert!(logged_reason(&hub, reason), "{reason} not in the log");
    }
    // What a sign-in handles never reaches the log.
    let log = hub.log();
    assert!(!log.contains(&used_code) && !log.contains(&given) && !log.contains(CLIENT_SECRET));
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_sign_in_routes_and_each_providers_redirect() {
    let (github, hub) = world().await;
    let admin = admin_token(&hub);
    let rows = |run: &crate::cli::Run| -> Vec<(String, String, String)> {
        let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == "sign-in")
            .map(|c| {
                let t = |k: &str| c[k].as_str().unwrap().to_owned();
                (t("result"), t("subject"), t("detail"))
            })
            .collect()
    };
    let run = crate::cli::atlas(
        &hub.url,
        &[("ATLAS_ADMIN_TOKEN", &admin)],
        &["verify", "--json"],
    );
    let signin = rows(&run);
    assert_eq!(signin.len(), 2, "{run}");
    assert_eq!(signin[0].0, "pass", "{signin:?}");
    assert!(
        signin[0].2.contains("signed out; providers: github"),
        "{signin:?}"
    );
    assert_eq!(
        (signin[1].0.as_str(), signin[1].1.as_str()),
        ("pass", "/api/v1/auth/signin/github?returnTo=/")
    );
    assert!(
        signin[1]
            .2
            .contains(&format!("{}/login/oauth/authorize", github.url)),
        "{signin:?}"
    );

    // A provider the Hub cannot reach fails its row, naming why.
    let broken = TestHub::start_with(HubOptions {
        database_url: Some(hub.database_url.clone()),
        env: vec![
            (
                "ATLAS_SIGNIN_OIDC_ISSUER".into(),
                "http://127.0.0.1:9/unreachable".into(),
            ),
            ("ATLAS_SIGNIN_OIDC_CLIENT_ID".into(), "x".into()),
            ("ATLAS_SIGNIN_OIDC_CLIENT_SECRET".into(), "y".into()),
        ],
        ..Default::default()
    })
    .await;
    let run = crate::cli::atlas(
        &broken.url,
        &[("ATLAS_ADMIN_TOKEN", &admin)],
        &["verify", "--json"],
    );
    assert!(!run.ok, "{run}");
    let signin = rows(&run);
    assert_eq!(signin[1].0, "fail", "{signin:?}");
    assert!(signin[1].2.contains("503"), "{signin:?}");
}
