//! Operator sessions and the access rules behind them (issue 17, first part): rules granted
//! with the CLI against a real database, sessions started, used, expired and ended through
//! the library against the same database.

use std::process::Command;

use atlas_hub::config::Secret;
use atlas_hub::db::Db;
use atlas_hub::domain::sessions::{self, Lifetimes, Role};

use crate::support::{PEPPER, config, connect, fresh_database};

/// `atlas-hub admin access …` on `url`.
fn access(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atlas-hub"))
        .args(["admin", "access"])
        .args(args)
        .env("DATABASE_URL", url)
        .env("ATLAS_TOKEN_PEPPER", PEPPER)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let url = fresh_database(true).await;
    let (ok, out, err) = access(
        &url,
        &[
            "grant",
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
    // Bad input is refused naming what is wrong, and writes nothing.
    let (ok, _, err) = access(
        &url,
        &[
            "grant", "--kind", "github", "--value", "x", "--role", "admin",
        ],
    );
    assert!(!ok && err.contains("github_user"), "{err}");
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
    assert!(!ok && err.contains("viewer, releaser, admin"), "{err}");
    let (ok, out, err) = access(&url, &["list"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("github_team\tacme/ops\treleaser\tlauncher"),
        "{out}"
    );
    assert!(out.contains("github_user\toctocat\tadmin\t*"), "{out}");

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
    assert!(!ok && err.contains("no access rule"), "{err}");

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
