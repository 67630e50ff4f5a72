//! The database: the Hub through a transaction-mode PgBouncer, and migrations (edited,
//! repeated, concurrent).

use super::*;

// ---- PgBouncer (transaction mode) --------------------------------------------------------

fn start_pgbouncer() -> LocalPgBouncer {
    let dir = work_dir().join(unique_name("pgbouncer"));
    LocalPgBouncer::start(&dir, free_port().unwrap(), services().pg_port).expect("pgbouncer")
}

/// The database name at the end of a connection URL.
fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn the_hub_works_through_a_transaction_mode_pgbouncer() {
    let bouncer = start_pgbouncer();
    let direct = fresh_database(true).await;
    let hub = TestHub::start_with(HubOptions {
        database_url: Some(bouncer.url(database_name(&direct))),
        env: vec![
            ("ATLAS_DB_POOLER".into(), "transaction".into()),
            ("ATLAS_LIMIT_AUTH_FAILURES".into(), "2/min".into()),
        ],
        ..Default::default()
    })
    .await;
    let c = client();
    // 50 requests, 10 at a time, so the Hub's pooled connections share PgBouncer's servers.
    for _ in 0..5 {
        let batch = (0..10).map(|_| c.get(hub.at("/api/health")).send());
        for r in futures_util::future::join_all(batch).await {
            let r = r.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{body}\n{}", hub.log());
            assert_eq!(body["checks"]["database"], "ok");
        }
    }

    // The write paths' statements through the pooler: token lookup, presign limit, upload
    // record; then failed authentications counted up to the limit and the 429.
    let admin = crate::api::admin_token_on(&direct);
    crate::api::create_product(&hub, &admin, "launcher", json!({})).await;
    let app = crate::api::app_token(&hub, &admin, &["launcher"], crate::api::ALL_SCOPES, &[]).await;
    let a = crate::api::Artifact::new("linux", "x86_64", "appimage", "pooled");
    let (status, p) = crate::api::presign(&hub, &app, "launcher", "1.0.0", &a).await;
    assert_eq!(status, 200, "{p}\n{}", hub.log());
    let wrong = format!("atlas_app_{}", "x".repeat(43));
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (status, body) = hub
            .api()
            .bearer(&wrong)
            .get("/api/v1/admin/tokens")
            .await
            .parts();
        codes.push((status, body["code"].as_str().unwrap_or("").to_owned()));
    }
    let expected = [
        (401, "token_invalid"),
        (401, "token_invalid"),
        (429, "rate_limited"),
    ];
    assert_eq!(
        codes
            .iter()
            .map(|(s, c)| (*s, c.as_str()))
            .collect::<Vec<_>>(),
        expected,
        "{}",
        hub.log()
    );
}

/// Why `ATLAS_DB_POOLER=transaction` exists: a statement prepared on one PgBouncer server
/// connection is unknown to the next one. Made deterministic by pinning the only warm
/// server connection inside another client's transaction.
#[tokio::test]
async fn named_statements_break_behind_pgbouncer_and_unnamed_ones_do_not() {
    let bouncer = start_pgbouncer();
    let direct = fresh_database(true).await;
    let url = bouncer.url(database_name(&direct));

    async fn second_query_while_a_transaction_holds_the_server(
        url: &str,
        pooler: &str,
    ) -> Result<(), atlas_hub::db::SqlError> {
        let db = Db::new(&config(url, &[("ATLAS_DB_POOLER", pooler)])).unwrap();
        let a = db.raw_conn().await.unwrap();
        let mut b = db.raw_conn().await.unwrap();
        let sql = "SELECT count(*) FROM atlas_schema_migrations WHERE version >= $1";
        let param: i32 = 0;
        let params: &[atlas_hub::db::Param<'_>] = &[(&param, tokio_postgres::types::Type::INT4)];
        a.query(sql, params).await?;
        let tx = b.transaction().await.unwrap();
        tx.batch("SELECT 1").await.unwrap();
        let second = a.query(sql, params).await;
        drop(tx);
        second.map(|_| ())
    }

    // Each run gets its own PgBouncer so its server pool starts cold.
    let named = second_query_while_a_transaction_holds_the_server(&url, "none").await;
    let error = named.expect_err("a cached named statement should be missing on a new server");
    assert!(
        error.to_string().contains("prepared statement")
            || format!("{error:?}").contains("prepared statement"),
        "{error:?}"
    );

    let bouncer = start_pgbouncer();
    let url = bouncer.url(database_name(&direct));
    second_query_while_a_transaction_holds_the_server(&url, "transaction")
        .await
        .expect("unnamed statements work on any server connection");
}

// ---- Migrations --------------------------------------------------------------------------

async fn unmigrated_db() -> (Db, String) {
    let url = fresh_database(false).await;
    (Db::new(&config(&url, &[])).unwrap(), url)
}

async fn applied_rows(url: &str) -> Vec<(i32, String, String)> {
    crate::support::connect(url)
        .await
        .query(
            "SELECT version, name, checksum FROM atlas_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let (db, url) = unmigrated_db().await;
    let mut conn = db.raw_conn().await.unwrap();
    migrate::run(&mut conn, MIGRATIONS).await.unwrap();
    let before = applied_rows(&url).await;

    let first = &MIGRATIONS[0];
    let edited = [Migration {
        version: first.version,
        name: first.name,
        sql: "-- someone fixed a typo after it shipped\nSELECT 1;",
    }];
    let error = migrate::run(&mut conn, &edited)
        .await
        .expect_err("an edited migration must be refused");
    let message = error.to_string();
    assert!(message.contains("edited"), "{message}");
    assert!(message.contains(first.name), "{message}");
    assert_eq!(applied_rows(&url).await, before, "nothing recorded changes");
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let (db, url) = unmigrated_db().await;
    let mut conn = db.raw_conn().await.unwrap();
    let first = migrate::run(&mut conn, MIGRATIONS).await.unwrap();
    let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(first.applied, names);
    assert_eq!(first.version, migrate::expected_version());
    let applied_at = |url: String| async move {
        crate::support::connect(&url)
            .await
            .query(
                "SELECT applied_at::text FROM atlas_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let before = applied_at(url.clone()).await;

    let second = migrate::run(&mut conn, MIGRATIONS).await.unwrap();
    assert!(second.applied.is_empty(), "{:?}", second.applied);
    assert_eq!(second.version, migrate::expected_version());
    assert_eq!(applied_at(url.clone()).await, before);
    assert_eq!(
        migrate::current_version(&conn).await.unwrap(),
        migrate::expected_version()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_both_succeed_and_apply_each_file_once() {
    let (a, url) = unmigrated_db().await;
    let b = Db::new(&config(&url, &[])).unwrap();
    let c = Db::new(&config(&url, &[])).unwrap();
    let (mut ca, mut cb, mut cc) = (
        a.raw_conn().await.unwrap(),
        b.raw_conn().await.unwrap(),
        c.raw_conn().await.unwrap(),
    );
    let (ra, rb, rc) = tokio::join!(
        migrate::run(&mut ca, MIGRATIONS),
        migrate::run(&mut cb, MIGRATIONS),
        migrate::run(&mut cc, MIGRATIONS),
    );
    let reports = [ra.unwrap(), rb.unwrap(), rc.unwrap()];
    let mut applied: Vec<&str> = reports.iter().flat_map(|r| r.applied.clone()).collect();
    applied.sort();
    let mut names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    names.sort();
    assert_eq!(applied, names, "each migration applied exactly once");
    for r in &reports {
        assert_eq!(r.version, migrate::expected_version());
    }
    let rows = applied_rows(&url).await;
    assert_eq!(rows.len(), MIGRATIONS.len());
    for (row, m) in rows.iter().zip(MIGRATIONS) {
        assert_eq!((row.0, row.1.as_str()), (m.version, m.name));
        assert_eq!(row.2, migrate::checksum(m.sql));
    }
}
