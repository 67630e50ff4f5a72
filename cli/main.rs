//! `atlas-hub`: run the Hub locally, apply migrations, bootstrap the first admin token and
//! sign-in rule, the operator commands (products, packs, tokens, access, audit) and the
//! release client CI uses against
//! a Hub (publish, promote, roll back, yank, pack deploy, verify).

mod admin;
mod client;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "atlas-hub", version, about = "Atlas Hub: release distribution")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on one port. With no DATABASE_URL, starts a private PostgreSQL
    /// (data in .atlas/postgres); with no storage configured, a local S3 store (.atlas/s3).
    Serve(serve::ServeArgs),
    /// Apply pending migrations to DATABASE_URL (run before deploying matching code).
    Migrate,
    /// Operator commands: products, packs, tokens and the audit log over HTTP with an admin
    /// token (ATLAS_HUB_URL, ATLAS_ADMIN_TOKEN); `bootstrap-token` makes the first admin token
    /// with database access.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Publish, promote, roll back, yank and inspect releases on a Hub (ATLAS_HUB_URL,
    /// ATLAS_APP_DEPLOY_TOKEN).
    #[command(subcommand)]
    Release(client::release::ReleaseCommand),
    /// Deploy content packs (GitHub OIDC inside Actions, else ATLAS_PACK_DEPLOY_TOKEN).
    #[command(subcommand)]
    Pack(client::pack::PackCommand),
    /// Check a deployed Hub: health, latest lookups, download redirects, runner installer,
    /// updater endpoints. Prints a pass/fail table; exits non-zero on any failure.
    Verify(client::verify::VerifyArgs),
    /// Print the OpenAPI 3.1 document the code generates (what `openapi.json` must hold).
    Openapi,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// The first admin token, written straight into the database (DATABASE_URL and
    /// ATLAS_TOKEN_PEPPER, or the local `atlas-hub serve` data): use it once per deployment,
    /// or when no admin token is left. Every other token: `admin token create`.
    #[command(alias = "create-token")]
    BootstrapToken(admin::CreateTokenArgs),
    /// Products: create, update, list (over HTTP, ATLAS_ADMIN_TOKEN).
    #[command(subcommand)]
    Product(client::admin::ProductCommand),
    /// Packs and their trusted GitHub publishers: create, update, list (over HTTP).
    #[command(subcommand)]
    Pack(client::admin::PackCommand),
    /// Deploy and admin tokens: create, list, revoke (over HTTP). For the first admin token,
    /// which needs database access, use `admin bootstrap-token`.
    #[command(subcommand)]
    Token(client::admin::TokenCommand),
    /// The audit log, newest first, a page at a time (over HTTP).
    Audit(client::admin::AuditArgs),
    /// Who may sign in, with which role: grant, list, revoke (over HTTP). For the first rule,
    /// which needs database access, use `admin bootstrap-access`.
    #[command(subcommand)]
    Access(client::admin::AccessCommand),
    /// The first sign-in rule, written straight into the database (like `bootstrap-token`):
    /// e.g. `--kind github_user --value octocat --role admin`.
    BootstrapAccess(admin::BootstrapAccessArgs),
    /// Remove usage statistics past the retention period (ATLAS_STATS_RETENTION_DAYS, default
    /// 400), with database access: schedule it daily where Vercel's cron does not run.
    Prune(admin::PruneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("atlas-hub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Migrate => migrate().await,
            Command::Admin(command) => match command {
                AdminCommand::BootstrapToken(args) => admin::create_token(args).await,
                AdminCommand::Product(c) => client::admin::product(c).await,
                AdminCommand::Pack(c) => client::admin::pack(c).await,
                AdminCommand::Token(c) => client::admin::token(c).await,
                AdminCommand::Audit(a) => client::admin::audit(a).await,
                AdminCommand::Access(c) => client::admin::access(c).await,
                AdminCommand::BootstrapAccess(a) => admin::bootstrap_access(a).await,
                AdminCommand::Prune(a) => admin::prune(a).await,
            },
            Command::Release(command) => client::release::run(command).await,
            Command::Pack(command) => client::pack::run(command).await,
            Command::Verify(args) => client::verify::run(args).await,
            Command::Openapi => {
                print!("{}", atlas_hub::routes::openapi::generate_text());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("atlas-hub: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate() -> Result<(), String> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set: migrate needs the database to change".to_owned())?;
    let report = serve::migrate_url(&url).await?;
    if report.applied.is_empty() {
        println!("schema is up to date at version {}", report.version);
    } else {
        for name in &report.applied {
            println!("applied {name}");
        }
        println!("schema is now at version {}", report.version);
    }
    Ok(())
}
