//! What an operator does with database access (there is no unauthenticated bootstrap
//! route): `atlas-hub admin bootstrap-token` (once `admin create-token`), the first admin
//! token, and `admin bootstrap-access`, the first rule that lets operators sign in. Every
//! later token and rule is made over HTTP with `admin token create` and `admin access grant`
//! (`cli/client/admin.rs`).

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
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Where the database is: DATABASE_URL (with ATLAS_TOKEN_PEPPER), else the local Hub's.
#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// Dev folder of `atlas-hub serve`, used when DATABASE_URL is not set.
    #[arg(long, env = "ATLAS_DEV_DIR", default_value = ".atlas")]
    dev_dir: std::path::PathBuf,
    /// Port of the private PostgreSQL, used when DATABASE_URL is not set.
    #[arg(long, env = "ATLAS_DEV_PG_PORT", default_value_t = 54329)]
    pg_port: u16,
}

/// The configuration and database of `args`.
async fn database(args: &DatabaseArgs) -> Result<(Config, Db), String> {
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
    Ok((config, db))
}

fn api(e: atlas_hub::error::ApiError) -> String {
    format!("{}: {}", e.code, e.cause.unwrap_or(e.detail))
}

fn who() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Creates an admin token and prints it once.
pub async fn create_token(args: CreateTokenArgs) -> Result<(), String> {
    let (config, db) = database(&args.database).await?;
    let mut conn = db.conn().await.map_err(api)?;
    let expires_at = args
        .expires_in_days
        .map(|d| time::OffsetDateTime::now_utc() + time::Duration::days(d));
    let spec = TokenSpec {
        name: args.name,
        kind: TokenKind::Admin,
        products: Vec::new(),
        pack_id: None,
        scopes: Vec::new(),
        channels: Vec::new(),
        expires_at,
        created_by: who(),
    };
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

/// `admin bootstrap-access`: the first sign-in rule, with database access.
#[derive(clap::Args)]
pub struct BootstrapAccessArgs {
    #[command(flatten)]
    rule: crate::client::admin::RuleArgs,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Grants a role by rule straight in the database, audited as the command line's user.
pub async fn bootstrap_access(args: BootstrapAccessArgs) -> Result<(), String> {
    use atlas_hub::domain::sessions::{self, Role, RuleKind};
    let rule = args.rule;
    let kind = RuleKind::parse(&rule.kind)
        .filter(|k| *k != RuleKind::LocalUser)
        .ok_or_else(|| {
            format!(
                "--kind {:?} is not one of {}",
                rule.kind,
                RuleKind::ALL
                    .iter()
                    .filter(|k| **k != RuleKind::LocalUser)
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let role = Role::parse(&rule.role).ok_or_else(|| {
        format!(
            "--role {:?} is not one of viewer, releaser, admin",
            rule.role
        )
    })?;
    let (_, db) = database(&args.database).await?;
    let mut conn = db.conn().await.map_err(api)?;
    let tx = conn.transaction().await.map_err(api)?;
    let id = sessions::grant(&tx, kind, &rule.value, role, &rule.products, &who())
        .await
        .map_err(api)?;
    let detail = serde_json::json!({"kind": kind.as_str(), "value": rule.value, "role": role.as_str(), "products": rule.products});
    audited(tx, "access.grant", id, detail).await?;
    println!(
        "rule {id}: {} {} -> {}",
        kind.as_str(),
        rule.value.trim(),
        role.as_str()
    );
    Ok(())
}

/// Commits a change to rule `id` with its audit entry, as the command line's operator.
async fn audited(
    tx: atlas_hub::db::Tx<'_>,
    action: &str,
    id: i64,
    detail: serde_json::Value,
) -> Result<(), String> {
    let actor = Actor {
        name: who(),
        token_id: None,
    };
    audit::commit(tx, &actor, action, &format!("access_rule:{id}"), detail)
        .await
        .map_err(api)
}

/// `admin prune`: statistics rows past the retention period, with database access (what
/// Vercel's scheduler does through `/api/v1/admin/prune`, for anywhere else: a cron job).
#[derive(clap::Args)]
pub struct PruneArgs {
    /// Days of daily statistics to keep.
    #[arg(long, env = "ATLAS_STATS_RETENTION_DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(7..=3650))]
    retention_days: u32,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Removes daily statistics rows older than the retention period, audited.
pub async fn prune(args: PruneArgs) -> Result<(), String> {
    let (_, db) = database(&args.database).await?;
    let mut conn = db.conn().await.map_err(api)?;
    let tx = conn.transaction().await.map_err(api)?;
    let pruned = atlas_hub::domain::stats::prune(&tx, args.retention_days)
        .await
        .map_err(api)?;
    let actor = Actor {
        name: who(),
        token_id: None,
    };
    let detail = serde_json::json!({"before": pruned.before, "requestRows": pruned.request_rows,
        "clientRows": pruned.client_rows, "downloadRows": pruned.download_rows});
    audit::commit(tx, &actor, "stats.prune", "stats", detail)
        .await
        .map_err(api)?;
    println!(
        "removed statistics before {}: {} request rows, {} client rows, {} download rows",
        pruned.before, pruned.request_rows, pruned.client_rows, pruned.download_rows
    );
    Ok(())
}
