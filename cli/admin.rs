//! `atlas-hub admin bootstrap-token` (once `admin create-token`): the first admin token,
//! created with database access (there is no unauthenticated bootstrap route). Every later
//! token is issued over HTTP with `admin token create` (`cli/client/admin.rs`).

use std::collections::HashMap;

use atlas_hub::config::{Config, Secret};
use atlas_hub::db::Db;
use atlas_hub::domain::audit::{self, Actor};
use atlas_hub::domain::tokens::{self, TokenKind, TokenSpec};

#[derive(clap::Args)]
pub struct CreateTokenArgs {
    /// A name saying who or what holds the token.
    #[arg(long)]
    name: String,
    /// Days until it expires (default: never).
    #[arg(long)]
    expires_in_days: Option<i64>,
    /// Dev folder of `atlas-hub serve`, used when DATABASE_URL is not set.
    #[arg(long, env = "ATLAS_DEV_DIR", default_value = ".atlas")]
    dev_dir: std::path::PathBuf,
    /// Port of the private PostgreSQL, used when DATABASE_URL is not set.
    #[arg(long, env = "ATLAS_DEV_PG_PORT", default_value_t = 54329)]
    pg_port: u16,
}

/// Creates an admin token and prints it once.
pub async fn create_token(args: CreateTokenArgs) -> Result<(), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let (url, pepper) = match env("DATABASE_URL") {
        Some(url) => (
            url,
            env("ATLAS_TOKEN_PEPPER").ok_or("ATLAS_TOKEN_PEPPER is not set: use the deployment's pepper, or tokens will not verify")?,
        ),
        None => {
            let pepper = std::fs::read_to_string(args.dev_dir.join("token-pepper")).map_err(|_| {
                "DATABASE_URL is not set and no local Hub data was found: set DATABASE_URL and \
                 ATLAS_TOKEN_PEPPER, or start `atlas-hub serve` first"
                    .to_owned()
            })?;
            eprintln!("using the local Hub's private PostgreSQL on port {}", args.pg_port);
            (
                format!("postgres://atlas@127.0.0.1:{}/atlas", args.pg_port),
                pepper.trim().to_owned(),
            )
        }
    };
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", url),
        ("ATLAS_DB_POOL_SIZE", "1".into()),
        ("ATLAS_HUB_URL", "http://127.0.0.1".into()),
        ("ATLAS_S3_BUCKET", "unused".into()),
        ("ATLAS_S3_ACCESS_KEY_ID", "unused".into()),
        ("ATLAS_S3_SECRET_ACCESS_KEY", "unused".into()),
        ("ATLAS_TOKEN_PEPPER", pepper),
        (
            "ATLAS_DB_POOLER",
            std::env::var("ATLAS_DB_POOLER").unwrap_or_else(|_| "none".into()),
        ),
    ]);
    let config = Config::from_lookup(&|k| vars.get(k).cloned()).map_err(|e| e.to_string())?;
    let db = Db::new(&config)?;
    let mut conn = db
        .conn()
        .await
        .map_err(|e| format!("{}: {}", e.code, e.cause.unwrap_or(e.detail)))?;
    let expires_at = args
        .expires_in_days
        .map(|d| time::OffsetDateTime::now_utc() + time::Duration::days(d));
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let spec = TokenSpec {
        name: args.name,
        kind: TokenKind::Admin,
        products: Vec::new(),
        pack_id: None,
        scopes: Vec::new(),
        channels: Vec::new(),
        expires_at,
        created_by: format!("cli:{who}"),
    };
    let api =
        |e: atlas_hub::error::ApiError| format!("{}: {}", e.code, e.cause.unwrap_or(e.detail));
    let tx = conn.transaction().await.map_err(api)?;
    let (id, token): (uuid::Uuid, Secret) = tokens::create(&tx, &config.token_pepper, &spec)
        .await
        .map_err(api)?;
    let actor = Actor {
        name: spec.created_by.clone(),
        token_id: None,
    };
    audit::record(
        &tx,
        &actor,
        "token.issue",
        &format!("token:{id}"),
        serde_json::json!({"name": spec.name, "kind": "admin"}),
    )
    .await
    .map_err(api)?;
    tx.commit().await.map_err(api)?;
    eprintln!(
        "created admin token {id} ({}); it is shown only once:",
        spec.name
    );
    println!("{}", token.expose());
    Ok(())
}
