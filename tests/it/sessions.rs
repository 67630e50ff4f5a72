//! Operator sessions and the access rules behind them: the first rule granted with database
//! access (`admin bootstrap-access`), the next ones over HTTP (`admin access`), sessions
//! started, used, expired and ended through the library against the same database.

use std::process::Command;

use atlas_hub::config::Secret;
use atlas_hub::db::Db;
use atlas_hub::domain::sessions::{self, Lifetimes, Origin, Role};

use crate::api::admin_token;
use crate::support::{PEPPER, TestHub, config, connect};

/// `atlas-hub admin <args>` with database access to `hub` and its admin token.
fn admin(hub: &TestHub, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &hub.database_url)
        .env("ATLAS_TOKEN_PEPPER", PEPPER)
        .env("ATLAS_HUB_URL", &hub.url)
        .env("ATLAS_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn github() -> Origin {
    Origin {
        provider: "github".into(),
        ..Origin::default()
    }
}

/// The role a cookie value's session has now, if it is live.
async fn live(conn: &impl atlas_hub::db::Sql, cookie: &str) -> Option<Role> {
    sessions::authenticate(conn, &Secret::new(PEPPER), cookie, Lifetimes::default())
        .await
        .unwrap()
        .map(|o| o.role)
}

fn claims(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| (*c).to_owned()).collect()
}

#[tokio::test]
async fn rules_from_the_cli_decide_who_gets_a_session_and_removing_one_ends_its_access() {
    let hub = TestHub::start().await;
    let url = hub.database_url.clone();
    let token = admin_token(&hub);
    let access = |_: &str, args: &[&str]| {
        let mut all = vec!["access"];
        all.extend_from_slice(args);
        admin(&hub, &token, &all)
    };
    // The first rule with database access; the next ones over HTTP.
    let (ok, out, err) = admin(
        &hub,
        "",
        &[
            "bootstrap-access",
            "--kind",
            "github_team",
            "--value",
            "Acme/Ops",
            "--role",
            "releaser",
            "--product",
            "launcher",
        ],
    );
    assert!(ok, "{err}");
    let team_rule: i64 = out
        .strip_prefix("rule ")
        .and_then(|r| r.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no rule id in {out:?}"));
    assert!(
        access(
            &url,
            &[
                "grant",
                "--kind",
                "github_user",
                "--value",
                "OctoCat",
                "--role",
                "admin"
            ]
        )
        .0
    );
    // Bad input is refused naming what is wrong, and writes nothing: with database access…
    let (ok, _, err) = admin(
        &hub,
        "",
        &[
            "bootstrap-access",
            "--kind",
            "github",
            "--value",
            "x",
            "--role",
            "admin",
        ],
    );
    assert!(!ok && err.contains("github_user"), "{err}");
    // …and over HTTP.
    let (ok, _, err) = access(
        &url,
        &[
            "grant", "--kind", "github", "--value", "x", "--role", "admin",
        ],
    );
    assert!(!ok && err.contains("400 invalid_input"), "{err}");
    let (ok, _, err) = access(
        &url,
        &[
            "grant",
            "--kind",
            "github_team",
            "--value",
            "no-slash",
            "--role",
            "admin",
        ],
    );
    assert!(!ok && err.contains("github_team"), "{err}");
    let (ok, _, err) = access(
        &url,
        &[
            "grant",
            "--kind",
            "github_user",
            "--value",
            "x",
            "--role",
            "root",
        ],
    );
    assert!(!ok && err.contains("invalid_input"), "{err}");
    let (ok, out, err) = access(&url, &["list", "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules: Vec<(String, String, String, String)> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let t = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (t("kind"), t("value"), t("role"), r["products"].to_string())
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                "github_team".into(),
                "acme/ops".into(),
                "releaser".into(),
                r#"["launcher"]"#.into()
            ),
            (
                "github_user".into(),
                "octocat".into(),
                "admin".into(),
                r#"["*"]"#.into()
            ),
        ],
        "{out}"
    );

    let config = config(&url, &[]);
    let pepper = Secret::new(PEPPER);
    let db = Db::new(&config).unwrap();
    let conn = db.conn().await.unwrap();
    let life = Lifetimes::default();

    // A team member is a releaser of the rule's products; a matching user rule makes admin.
    let (member, cookie) = sessions::start(
        &conn,
        &pepper,
        "github:mona",
        &claims(&["github_user:mona", "github_team:acme/ops"]),
        &github(),
        life,
    )
    .await
    .unwrap();
    assert_eq!(
        (member.role, member.products.clone()),
        (Role::Releaser, vec!["launcher".to_owned()])
    );
    let (admin, admin_cookie) = sessions::start(
        &conn,
        &pepper,
        "github:octocat",
        &claims(&["github_user:octocat", "github_team:acme/ops"]),
        &github(),
        life,
    )
    .await
    .unwrap();
    assert_eq!(admin.role, Role::Admin);
    // Nobody without a matching rule gets a session.
    let refused = sessions::start(
        &conn,
        &pepper,
        "github:eve",
        &claims(&["github_user:eve", "github_org:acme"]),
        &github(),
        life,
    )
    .await
    .unwrap_err();
    assert_eq!(
        (refused.status.as_u16(), refused.code.as_str()),
        (403, "scope_denied")
    );

    let seen = sessions::authenticate(&conn, &pepper, cookie.expose(), life)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (seen.session_id, seen.role),
        (member.session_id, Role::Releaser)
    );
    assert_eq!(live(&conn, "not-a-session").await, None);
    assert_ne!(
        cookie.expose(),
        admin_cookie.expose(),
        "each sign-in gets its own id"
    );

    // Only the digest is stored.
    let rows = connect(&url).await;
    let stored = rows
        .query("SELECT digest, person FROM operator_sessions", &[])
        .await
        .unwrap();
    for row in &stored {
        let digest: Vec<u8> = row.get(0);
        assert_eq!(digest.len(), 32);
        assert!(!String::from_utf8_lossy(&digest).contains(cookie.expose()));
    }

    // Removing the team rule ends the member's access at once; the admin keeps theirs.
    let (ok, _, err) = access(&url, &["revoke", &team_rule.to_string()]);
    assert!(ok, "{err}");
    assert_eq!(live(&conn, cookie.expose()).await, None);
    assert_eq!(live(&conn, admin_cookie.expose()).await, Some(Role::Admin));
    let (ok, _, err) = access(&url, &["revoke", &team_rule.to_string()]);
    assert!(!ok && err.contains("404 not_found"), "{err}");

    // Idle and absolute expiry, then sign-out.
    rows.execute(
        "UPDATE operator_sessions SET last_seen_at = now() - interval '9 hours'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(live(&conn, admin_cookie.expose()).await, None);
    rows.execute("UPDATE operator_sessions SET last_seen_at = now(), expires_at = now() - interval '1 second'", &[])
        .await
        .unwrap();
    assert_eq!(live(&conn, admin_cookie.expose()).await, None);
    rows.execute(
        "UPDATE operator_sessions SET expires_at = now() + interval '1 day'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(live(&conn, admin_cookie.expose()).await, Some(Role::Admin));
    assert!(
        sessions::end(&conn, &pepper, admin_cookie.expose())
            .await
            .unwrap()
    );
    assert_eq!(live(&conn, admin_cookie.expose()).await, None);

    // Every grant and removal is in the audit log.
    let audited: i64 = rows
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action IN ('access.grant', 'access.revoke')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 3);
}
