//! `atlas-hub pack deploy`: upload a pack build and point a pack channel at it, authorised by
//! GitHub Actions OIDC inside a workflow (a fresh token per request) or by a pack deploy token.

use std::path::Path;

use atlas_hub::domain::ids::Slug;
use reqwest::Method;
use serde_json::json;

use super::HubArgs;
use super::files::{LocalFile, human_bytes, parse_rate};
use super::hub::{ClientError, Credential, Hub};
use super::oidc::OidcSource;
use super::upload::Uploader;

/// Pack commands.
#[derive(clap::Subcommand)]
pub enum PackCommand {
    /// Upload files as a pack build and point a pack channel at it. Inside GitHub Actions
    /// (with `permissions: id-token: write`) it authenticates with an OIDC token it requests
    /// itself; elsewhere with ATLAS_PACK_DEPLOY_TOKEN. Safe to re-run.
    Deploy(DeployArgs),
}

/// How `pack deploy` authenticates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// GitHub OIDC when the Actions runtime offers it, else the pack deploy token.
    Auto,
    /// GitHub OIDC only.
    Oidc,
    /// The pack deploy token only.
    Token,
}

/// `pack deploy`.
#[derive(clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[arg(long)]
    pack: String,
    /// Build identifier, e.g. the commit or a build number.
    #[arg(long)]
    build: String,
    /// Pack channel to point at the build (free-form, e.g. live or staging).
    #[arg(long)]
    channel: String,
    /// How to authenticate.
    #[arg(long, value_enum, default_value_t = AuthMode::Auto)]
    auth: AuthMode,
    /// Pack deploy token (sent as x-atlas-pack-deploy-token) when OIDC is not used.
    #[arg(
        long,
        env = "ATLAS_PACK_DEPLOY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Audience to request OIDC tokens for: the Hub's configured ATLAS_OIDC_AUDIENCE.
    #[arg(long, env = "ATLAS_OIDC_AUDIENCE", value_name = "AUDIENCE")]
    audience: Option<String>,
    /// Send at most this many bytes per second, e.g. 500K or 10M.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// Files of the build.
    #[arg(required = true, value_name = "PATH")]
    files: Vec<std::path::PathBuf>,
}

/// Runs a pack command.
pub async fn run(command: PackCommand) -> Result<(), String> {
    match command {
        PackCommand::Deploy(a) => Ok(deploy(a).await?),
    }
}

fn credential(a: &DeployArgs) -> Result<Credential, ClientError> {
    let oidc = OidcSource::from_env(a.audience.clone());
    let token = a.token.clone().filter(|t| !t.trim().is_empty());
    match (a.auth, oidc, token) {
        (AuthMode::Auto | AuthMode::Oidc, Some(source), _) => Ok(Credential::Oidc(source)),
        (AuthMode::Auto | AuthMode::Token, _, Some(token)) => Ok(Credential::PackToken(token.trim().to_owned())),
        (AuthMode::Oidc, None, _) => Err(ClientError::Usage(
            "no GitHub OIDC token available: ACTIONS_ID_TOKEN_REQUEST_URL and \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN are set only inside GitHub Actions for jobs with \
             `permissions: id-token: write`"
                .into(),
        )),
        (AuthMode::Token, _, None) => Err(ClientError::Usage(
            "ATLAS_PACK_DEPLOY_TOKEN is not set: set it (or pass --token) to the pack deploy token an admin issued for this pack".into(),
        )),
        (AuthMode::Auto, None, None) => Err(ClientError::Usage(format!(
            "no credential for the pack deploy: {}",
            if std::env::var_os("GITHUB_ACTIONS").is_some() {
                "give the job `permissions: id-token: write` (GitHub OIDC), or set ATLAS_PACK_DEPLOY_TOKEN"
            } else {
                "set ATLAS_PACK_DEPLOY_TOKEN (or pass --token) to the pack deploy token an admin issued for this pack"
            }
        ))),
    }
}

async fn deploy(a: DeployArgs) -> Result<(), ClientError> {
    let pack = Slug::parse("pack", &a.pack)
        .map_err(|e| ClientError::Usage(e.detail))?
        .to_string();
    let build = a.build.trim().to_owned();
    if build.is_empty() {
        return Err(ClientError::Usage("--build must not be empty".into()));
    }
    let channel = a.channel.trim().to_owned();
    let mut files = a
        .files
        .iter()
        .map(|p| LocalFile::open(Path::new(p)))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, f) in files.iter().enumerate() {
        if files[..i].iter().any(|o| o.filename == f.filename) {
            return Err(ClientError::Usage(format!(
                "two files are named {}: a pack build holds one file per name",
                f.filename
            )));
        }
    }
    let credential = credential(&a)?;
    eprintln!("authenticating with {}", credential.source());
    let hub = Hub::new(a.hub.hub, credential, a.hub.attempts)?;
    for f in &mut files {
        f.hash().await?;
        eprintln!(
            "{}: {} sha256 {}",
            f.filename,
            human_bytes(f.size),
            f.sha256
        );
    }
    let uploader = Uploader {
        hub: &hub,
        limit_rate: a.limit_rate,
    };
    let mut artifacts = Vec::with_capacity(files.len());
    for f in &files {
        let presign = json!({
            "pack": pack, "build": build, "filename": f.filename, "size": f.size,
            "sha256": f.sha256, "contentType": "application/octet-stream",
        });
        let uploaded = uploader
            .ensure(&presign, f, &format!("{pack}/{build}"))
            .await?;
        artifacts.push(json!({
            "uploadId": uploaded.upload_id, "filename": f.filename, "size": f.size, "sha256": f.sha256,
        }));
    }
    let body = json!({"build": build, "channel": channel, "artifacts": artifacts});
    let answer = hub
        .call(
            Method::POST,
            &format!("/api/v1/packs/{pack}/deploy"),
            Some(&body),
            &format!("deploy {pack} build {build} to {channel}"),
        )
        .await?;
    let verb = if answer.status.as_u16() == 201 {
        "deployed"
    } else {
        "already deployed"
    };
    println!(
        "{verb} {pack} build {build} ({}); pack channel {channel} serves it",
        super::release::plural(files.len(), "file")
    );
    Ok(())
}
