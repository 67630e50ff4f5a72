//! `atlas-hub serve`: the local all-routes server, with private services when unconfigured.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use atlas_hub::config::{Config, Pooler};
use atlas_hub::db::{Db, migrate};
use atlas_hub::dev::{postgres::LocalPostgres, s3::LocalS3};
use atlas_hub::state::AppState;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Folder for the private PostgreSQL and S3 data.
    #[arg(long, env = "ATLAS_DEV_DIR", default_value = ".atlas")]
    dev_dir: PathBuf,
    /// Port of the private PostgreSQL.
    #[arg(long, env = "ATLAS_DEV_PG_PORT", default_value_t = 54329)]
    pg_port: u16,
}

/// Applies migrations through a one-connection pool on `url`.
pub async fn migrate_url(url: &str) -> Result<migrate::Report, String> {
    let config = minimal_config(url)?;
    let db = Db::new(&config)?;
    let mut conn = db.raw_conn().await.map_err(|e| {
        format!(
            "cannot connect to the database: {}",
            e.cause.unwrap_or(e.detail)
        )
    })?;
    migrate::run(&mut conn, migrate::MIGRATIONS)
        .await
        .map_err(|e| e.to_string())
}

fn minimal_config(url: &str) -> Result<Config, String> {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("DATABASE_URL", url),
        ("ATLAS_DB_POOL_SIZE", "1"),
        ("ATLAS_HUB_URL", "http://127.0.0.1"),
        ("ATLAS_S3_BUCKET", "unused"),
        ("ATLAS_S3_ACCESS_KEY_ID", "unused"),
        ("ATLAS_S3_SECRET_ACCESS_KEY", "unused"),
        ("ATLAS_TOKEN_PEPPER", "unused-unused-unused-unused-unused"),
    ]);
    let mut config =
        Config::from_lookup(&|k| vars.get(k).map(|v| v.to_string())).map_err(|e| e.to_string())?;
    config.db_pooler = match std::env::var("ATLAS_DB_POOLER").as_deref() {
        Ok("transaction") => Pooler::Transaction,
        _ => Pooler::None,
    };
    Ok(config)
}

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
}

/// Runs the local server until Ctrl-C / SIGTERM, then stops whatever it started.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut overrides: HashMap<&'static str, String> = HashMap::new();
    let mut started = Vec::new();

    let postgres = if set("DATABASE_URL") {
        None
    } else {
        let dir = args.dev_dir.join("postgres");
        let pg = LocalPostgres::start(&dir, args.pg_port)
            .map_err(|e| format!("private PostgreSQL: {e}"))?;
        pg.ensure_database("atlas").await?;
        overrides.insert("DATABASE_URL", pg.url("atlas"));
        started.push(format!(
            "private PostgreSQL on 127.0.0.1:{} (data in {})",
            pg.port,
            dir.display()
        ));
        Some(pg)
    };

    let s3 = if set("ATLAS_STORAGE") || set("ATLAS_S3_BUCKET") {
        None
    } else {
        let dir = std::path::absolute(args.dev_dir.join("s3")).map_err(|e| e.to_string())?;
        let s3 = LocalS3::start(&dir, "atlas-artifacts", 0).await?;
        overrides.insert("ATLAS_S3_ENDPOINT", s3.endpoint());
        overrides.insert("ATLAS_S3_BUCKET", "atlas-artifacts".into());
        overrides.insert("ATLAS_S3_REGION", "auto".into());
        overrides.insert(
            "ATLAS_S3_ACCESS_KEY_ID",
            atlas_hub::dev::s3::ACCESS_KEY.into(),
        );
        overrides.insert(
            "ATLAS_S3_SECRET_ACCESS_KEY",
            atlas_hub::dev::s3::SECRET_KEY.into(),
        );
        started.push(format!(
            "local S3 store on {} (data in {})",
            s3.endpoint(),
            dir.display()
        ));
        Some(s3)
    };

    if !set("ATLAS_TOKEN_PEPPER") {
        overrides.insert("ATLAS_TOKEN_PEPPER", dev_pepper(&args.dev_dir)?);
    }
    if !set("ATLAS_HUB_URL") {
        overrides.insert("ATLAS_HUB_URL", format!("http://{addr}"));
    }

    let config =
        Config::from_lookup(&|k| overrides.get(k).cloned().or_else(|| std::env::var(k).ok()))
            .map_err(|e| e.to_string())?;

    let report = migrate_url(config.database_url.expose()).await?;
    // With no sign-in provider configured, the developer signs in with one click (the
    // route exists only in this process's router: no deployed function has it).
    let local_signin = !config.signin.any();
    let mut state = AppState::new(config)?;
    state.local_signin = local_signin;
    let state = Arc::new(state);

    for line in &started {
        println!("started {line}");
    }
    if !report.applied.is_empty() {
        println!("applied migrations: {}", report.applied.join(", "));
    }
    println!("schema version {}", report.version);
    println!("Atlas Hub listening on http://{addr}");
    println!("  try: curl http://{addr}/api/health");
    println!("  console: http://{addr}/console");
    if local_signin {
        println!(
            "  sign in (local developer, admin): http://{addr}{}",
            atlas_hub::routes::local::PATH
        );
    }
    let router = atlas_hub::routes::local_router(state, local_signin);

    let result = atlas_hub::hosts::local::serve(router, listener, shutdown_signal()).await;
    drop(s3);
    if let Some(pg) = postgres {
        pg.stop();
    }
    println!("stopped");
    result.map_err(|e| e.to_string())
}

/// Dev-only pepper, generated once and kept beside the dev data so tokens survive restarts.
fn dev_pepper(dir: &std::path::Path) -> Result<String, String> {
    let path = dir.join("token-pepper");
    if let Ok(p) = std::fs::read_to_string(&path)
        && p.trim().len() >= 32
    {
        return Ok(p.trim().to_owned());
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let pepper = hex::encode(rand::random::<[u8; 32]>());
    std::fs::write(&path, &pepper).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(pepper)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
    }
}
