//! `atlas-hub release …`: publish files as a release, promote, roll back, yank, status.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use atlas_hub::domain::ids::{Slug, Version, parse_channel};
use reqwest::Method;
use serde_json::{Value, json};

use super::files::{ReleaseFile, human_bytes, mark_primaries, parse_rate};
use super::hub::{ClientError, Credential, Hub, Problem};
use super::table::Table;
use super::upload::Uploader;
use super::{HubArgs, channels, release};

/// The variable CI keeps the app deploy token in.
const TOKEN_VAR: &str = "ATLAS_APP_DEPLOY_TOKEN";

/// Release commands (app deploy token in ATLAS_APP_DEPLOY_TOKEN, Hub in ATLAS_HUB_URL).
#[derive(clap::Subcommand)]
pub enum ReleaseCommand {
    /// Hash, upload and publish files as a release, optionally onto a channel. Safe to re-run:
    /// files already in storage are skipped and an identical release is left as it is.
    Publish(PublishArgs),
    /// Point a channel at a published release, optionally for a share of clients.
    Promote(PromoteArgs),
    /// Point a channel back at the release it served before.
    Rollback(RollbackArgs),
    /// Withdraw a release from latest lookups, the updater and channel targets (pinned
    /// download links keep working); `--undo` brings it back.
    Yank(YankArgs),
    /// Show a product's channels and what each serves per platform.
    Status(StatusArgs),
    /// A product's usage: downloads, update checks, distinct clients by day, version,
    /// platform or channel; the installed base by version; rollout adoption (admin token).
    Stats(super::stats::StatsArgs),
}

/// The app deploy token. (No `Debug` on argument structs: they hold secrets.)
#[derive(clap::Args)]
pub struct TokenArgs {
    /// App deploy token scoped to the product.
    #[arg(long, env = TOKEN_VAR, hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
}

impl TokenArgs {
    fn credential(self, scopes: &str) -> Result<Credential, ClientError> {
        Credential::bearer(
            self.token,
            TOKEN_VAR,
            &format!(
                "an app deploy token allowed to {scopes} (an admin issues one with POST /api/v1/admin/tokens)"
            ),
        )
    }
}

/// `release publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Product slug, e.g. launcher.
    #[arg(long)]
    product: String,
    /// SemVer version (a leading v is dropped), e.g. 1.4.0.
    #[arg(long)]
    version: String,
    /// Channel to point at the new release (stable, beta or dev).
    #[arg(long)]
    channel: Option<String>,
    /// Share of clients (0–100) the channel offers the release to; the rest keep the previous one.
    #[arg(long, value_name = "PERCENT", requires = "channel")]
    rollout: Option<i16>,
    #[arg(long, conflicts_with = "notes_file")]
    notes: Option<String>,
    /// Read the release notes from a file.
    #[arg(long, value_name = "FILE")]
    notes_file: Option<PathBuf>,
    /// The primary file of a platform that has several (repeatable), e.g. linux/x86_64/appimage.
    #[arg(long, value_name = "OS/ARCH/KIND")]
    primary: Vec<String>,
    /// Send at most this many bytes per second, e.g. 500K or 10M.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// Files as os/arch/kind=path, e.g. linux/x86_64/appimage=dist/app.AppImage. A
    /// `<path>.sig` beside a file is sent as its updater signature.
    #[arg(required = true, value_name = "OS/ARCH/KIND=PATH")]
    files: Vec<String>,
}

/// `release promote`.
#[derive(clap::Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    token: TokenArgs,
    #[arg(long)]
    product: String,
    /// Channel to move (stable, beta or dev).
    #[arg(long)]
    channel: String,
    /// The published version the channel should serve.
    #[arg(long)]
    version: String,
    /// Share of clients (0–100) offered the release; the rest keep the channel's previous one.
    #[arg(long, value_name = "PERCENT")]
    rollout: Option<i16>,
    /// Move even if the release lacks a platform the channel serves today (audited).
    #[arg(long)]
    force: bool,
}

/// `release rollback`.
#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    token: TokenArgs,
    #[arg(long)]
    product: String,
    /// Channel to roll back.
    #[arg(long)]
    channel: String,
    /// The bad version being rolled back from. With it the command is safe to re-run: if the
    /// channel was already rolled back from this version, nothing moves.
    #[arg(long, value_name = "VERSION")]
    from: Option<String>,
    /// Move even if the previous release lacks a platform the channel serves today (audited).
    #[arg(long)]
    force: bool,
}

/// `release yank`.
#[derive(clap::Args)]
pub struct YankArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    token: TokenArgs,
    #[arg(long)]
    product: String,
    /// Version to yank.
    #[arg(long)]
    version: String,
    /// Why (one line, up to 500 characters), shown with the release and in the audit log. On
    /// a release already yanked it replaces the reason it has.
    #[arg(long, value_name = "TEXT", conflicts_with = "undo")]
    reason: Option<String>,
    /// Bring a yanked release back (and clear its reason).
    #[arg(long)]
    undo: bool,
}

/// `release status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[arg(long)]
    product: String,
    /// Print JSON (`{product, hub, channels: [{…, serves: [...]}]}`) instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs a release command.
pub async fn run(command: ReleaseCommand) -> Result<(), String> {
    let done = match command {
        ReleaseCommand::Publish(a) => publish(a).await,
        ReleaseCommand::Promote(a) => promote(a).await,
        ReleaseCommand::Rollback(a) => rollback(a).await,
        ReleaseCommand::Yank(a) => yank(a).await,
        ReleaseCommand::Status(a) => status(a).await,
        ReleaseCommand::Stats(a) => return super::stats::run(a).await,
    };
    done.map_err(String::from)
}

fn usage(e: atlas_hub::error::ApiError) -> ClientError {
    ClientError::Usage(e.detail)
}

/// `1 file`, `3 files`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn check_rollout(rollout: Option<i16>) -> Result<(), ClientError> {
    match rollout {
        Some(p) if !(0..=100).contains(&p) => Err(ClientError::Usage(format!(
            "--rollout {p}: give a percentage from 0 to 100"
        ))),
        _ => Ok(()),
    }
}

/// The content type stored with an artifact (browsers and package tools look at it).
fn content_type(kind: &str, filename: &str) -> &'static str {
    match kind {
        "appimage" => "application/vnd.appimage",
        "deb" => "application/vnd.debian.binary-package",
        "rpm" => "application/x-rpm",
        "msi" => "application/x-msi",
        "dmg" => "application/x-apple-diskimage",
        "tar.gz" => "application/gzip",
        "zip" => "application/zip",
        _ if filename.ends_with(".tar.gz") || filename.ends_with(".tgz") => "application/gzip",
        _ if filename.ends_with(".zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// A 409 `version_exists` with what the existing release holds.
async fn with_existing(hub: &Hub, product: &str, version: &str, e: ClientError) -> ClientError {
    let ClientError::Hub(mut p) = e else { return e };
    if p.code != "version_exists" {
        return ClientError::Hub(p);
    }
    if let Ok(existing) = release(hub, product, version).await {
        p.context.push(format!(
            "{product} {} exists (published {}{}) with:",
            existing.version,
            existing.published_at,
            if existing.yanked { ", yanked" } else { "" }
        ));
        for a in &existing.artifacts {
            p.context.push(format!(
                "  {}/{}/{}  {}  {}  sha256 {}",
                a.os,
                a.arch,
                a.kind,
                a.filename,
                human_bytes(a.size),
                a.sha256
            ));
        }
    }
    ClientError::Hub(p)
}

async fn publish(a: PublishArgs) -> Result<(), ClientError> {
    let product = Slug::parse("product", &a.product)
        .map_err(usage)?
        .to_string();
    let version = Version::parse(&a.version).map_err(usage)?.to_string();
    let channel = a
        .channel
        .as_deref()
        .map(parse_channel)
        .transpose()
        .map_err(usage)?;
    check_rollout(a.rollout)?;
    let notes = match &a.notes_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| ClientError::Usage(format!("--notes-file {}: {e}", path.display())))?,
        None => a.notes.clone().unwrap_or_default(),
    };
    let mut files = a
        .files
        .iter()
        .map(|spec| ReleaseFile::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    mark_primaries(&mut files, &a.primary)?;
    let hub = Hub::new(
        a.hub.hub,
        a.token.credential("upload and publish")?,
        a.hub.attempts,
    )?;

    for f in &mut files {
        f.file.hash().await?;
        eprintln!(
            "{}: {} ({}) sha256 {}{}",
            f.label(),
            f.file.filename,
            human_bytes(f.file.size),
            f.file.sha256,
            if f.signature.is_some() {
                ", signed"
            } else {
                ""
            }
        );
    }

    check_signatures(&hub, &product, &version, &files).await?;

    let uploader = Uploader {
        hub: &hub,
        limit_rate: a.limit_rate,
    };
    let mut entries = Vec::with_capacity(files.len());
    for f in &files {
        let presign = json!({
            "product": product, "version": version, "os": f.os, "arch": f.arch, "kind": f.kind,
            "filename": f.file.filename, "size": f.file.size, "sha256": f.file.sha256,
            "contentType": content_type(&f.kind, &f.file.filename),
        });
        let uploaded = match uploader.ensure(&presign, &f.file, &f.label()).await {
            Ok(p) => p,
            Err(e) => return Err(with_existing(&hub, &product, &version, e).await),
        };
        let mut entry = json!({
            "uploadId": uploaded.upload_id, "os": f.os, "arch": f.arch, "kind": f.kind,
            "size": f.file.size, "sha256": f.file.sha256,
        });
        if let Some(sig) = &f.signature {
            entry["signature"] = json!(sig);
        }
        if f.primary {
            entry["primary"] = json!(true);
        }
        entries.push(entry);
    }

    let mut body = json!({"version": version, "notes": notes, "artifacts": entries});
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if let Some(r) = a.rollout {
        body["rolloutPercent"] = json!(r);
    }
    let action = format!("publish {product} {version}");
    let answer = match hub
        .call(
            Method::POST,
            &format!("/api/v1/releases/{product}/publish"),
            Some(&body),
            &action,
        )
        .await
    {
        Ok(answer) => answer,
        Err(e) => return Err(with_existing(&hub, &product, &version, e).await),
    };
    let published = answer.json();
    let created = answer.status.as_u16() == 201;
    if created {
        let on = match (channel, a.rollout) {
            (Some(c), Some(r)) if r < 100 => format!("; {c} offers it to {r}% of clients"),
            (Some(c), _) => format!("; {c} now serves it"),
            (None, _) => String::new(),
        };
        println!(
            "published {product} {version} ({}){on}",
            plural(files.len(), "file")
        );
    } else {
        // An identical re-publish: the Hub moved the channel to it if it served an older
        // version, and refused (409, an error above) if it serves a newer one.
        let on = match channel {
            Some(c) => format!("; {c} serves it"),
            None => String::new(),
        };
        println!("{product} {version} was already published with these exact files and notes{on}");
    }
    let mut t = Table::new(&["PLATFORM/KIND", "FILE", "DOWNLOAD"]);
    for art in published["artifacts"].as_array().into_iter().flatten() {
        let s = |k: &str| art[k].as_str().unwrap_or_default().to_owned();
        t.row(vec![
            format!("{}/{}/{}", s("os"), s("arch"), s("kind")),
            s("filename"),
            s("downloadUrl"),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// Checks each `.sig` before anything is uploaded, as the updater clients will: against the
/// file's bytes with the product's `updaterPublicKey` (the Hub cannot: it never sees the
/// bytes), and that a version its trusted comment names is this release's (Tauri refuses an
/// update whose signature names another version).
async fn check_signatures(
    hub: &Hub,
    product: &str,
    version: &str,
    files: &[ReleaseFile],
) -> Result<(), ClientError> {
    if files.iter().all(|f| f.signature.is_none()) {
        return Ok(());
    }
    let listing = hub
        .get_json(
            &format!("/api/v1/releases/{product}?limit=1"),
            &format!("read {product}'s updater key"),
        )
        .await?;
    let key = listing["updaterPublicKey"].as_str();
    for f in files {
        let Some(sig) = &f.signature else { continue };
        let refused = |why: String| {
            ClientError::Usage(format!(
                "{}: the signature {}.sig {why}; nothing was uploaded. Sign the file again \
                 (`tauri signer sign {}`) and publish again",
                f.label(),
                f.file.path.display(),
                f.file.path.display()
            ))
        };
        if let Some(signed) = atlas_hub::domain::signature::signed_version(sig)
            && Version::parse(&signed)
                .map(|v| v.to_string())
                .ok()
                .as_deref()
                != Some(version)
        {
            return Err(refused(format!("names version {signed:?}, not {version}")));
        }
        if let Some(key) = key {
            let file = std::fs::File::open(&f.file.path)
                .map_err(|e| ClientError::Usage(format!("{}: {e}", f.file.path.display())))?;
            atlas_hub::domain::signature::verify(key, sig, std::io::BufReader::new(file))
                .map_err(|why| refused(format!("does not verify: {why}")))?;
        }
    }
    match key {
        Some(_) => eprintln!("signatures verified with {product}'s updater key"),
        None => eprintln!(
            "note: {product} has no updaterPublicKey, so the signatures were not checked against \
             the files; an admin sets it with `atlas-hub admin product update {product} \
             --updater-public-key @key.pub`"
        ),
    }
    Ok(())
}

/// Moves `channel` to `version` with compare-and-swap on `expected`; a 409 `channel_moved`
/// that shows the channel already at `version` (an earlier attempt whose answer was lost)
/// counts as done.
async fn move_channel(
    hub: &Hub,
    product: &str,
    channel: &str,
    version: &str,
    expected: Option<&str>,
    rollout: Option<i16>,
    force: bool,
) -> Result<Value, ClientError> {
    let mut body = json!({"version": version, "expectedVersion": expected, "force": force});
    if let Some(r) = rollout {
        body["rolloutPercent"] = json!(r);
    }
    let action = format!("move {product}/{channel} to {version}");
    match hub
        .call(
            Method::PUT,
            &format!("/api/v1/releases/{product}/channels/{channel}"),
            Some(&body),
            &action,
        )
        .await
    {
        Ok(answer) => Ok(answer.json()["channel"].clone()),
        Err(ClientError::Hub(p))
            if p.code == "channel_moved" && p.body["currentVersion"] == version =>
        {
            Ok(json!({"version": version}))
        }
        Err(e) => Err(e),
    }
}

fn current<'a>(
    list: &'a [super::Channel],
    product: &str,
    channel: &str,
) -> Result<&'a super::Channel, ClientError> {
    list.iter().find(|c| c.name == channel).ok_or_else(|| {
        ClientError::Hub(Problem {
            action: format!("find {product}/{channel}"),
            status: 404,
            code: "not_found".into(),
            detail: format!("{product} has no channel {channel}"),
            body: Value::Null,
            credential: TOKEN_VAR,
            context: Vec::new(),
        })
    })
}

async fn promote(a: PromoteArgs) -> Result<(), ClientError> {
    let product = Slug::parse("product", &a.product)
        .map_err(usage)?
        .to_string();
    let channel = parse_channel(&a.channel).map_err(usage)?;
    let version = Version::parse(&a.version).map_err(usage)?.to_string();
    check_rollout(a.rollout)?;
    let hub = Hub::new(a.hub.hub, a.token.credential("promote")?, a.hub.attempts)?;
    let list = channels(&hub, &product).await?;
    let before = current(&list, &product, channel)?.clone();
    let moved = move_channel(
        &hub,
        &product,
        channel,
        &version,
        before.version.as_deref(),
        a.rollout,
        a.force,
    )
    .await?;
    let rollout = moved["rolloutPercent"].as_i64().unwrap_or(100);
    let from = before.version.as_deref().unwrap_or("nothing");
    if before.version.as_deref() == Some(version.as_str()) {
        println!(
            "{product}/{channel} serves {version} to {rollout}% of clients (it already pointed there{})",
            if i64::from(before.rollout_percent) != rollout {
                format!("; rollout was {}%", before.rollout_percent)
            } else {
                String::new()
            }
        );
    } else {
        println!("{product}/{channel}: {from} -> {version} ({rollout}% of clients)");
    }
    if rollout < 100 {
        println!(
            "the other {}% keep {}",
            100 - rollout,
            moved["previousVersion"]
                .as_str()
                .unwrap_or("the previous release")
        );
    }
    Ok(())
}

async fn rollback(a: RollbackArgs) -> Result<(), ClientError> {
    let product = Slug::parse("product", &a.product)
        .map_err(usage)?
        .to_string();
    let channel = parse_channel(&a.channel).map_err(usage)?;
    let from = a
        .from
        .as_deref()
        .map(|v| Version::parse(v).map(|v| v.to_string()))
        .transpose()
        .map_err(usage)?;
    let hub = Hub::new(a.hub.hub, a.token.credential("promote")?, a.hub.attempts)?;
    let list = channels(&hub, &product).await?;
    let ch = current(&list, &product, channel)?.clone();
    let Some(now) = ch.version.clone() else {
        return Err(ClientError::Usage(format!(
            "{product}/{channel} has no release yet; nothing to roll back"
        )));
    };
    if let Some(from) = &from
        && &now != from
    {
        if ch.previous_version.as_deref() == Some(from.as_str()) {
            println!(
                "{product}/{channel} was already rolled back from {from}: it serves {now}; nothing changed"
            );
            return Ok(());
        }
        return Err(ClientError::Usage(format!(
            "{product}/{channel} serves {now}, not {from}; nothing rolled back (check `atlas-hub release status --product {product}`)"
        )));
    }
    let Some(previous) = ch.previous_version.clone() else {
        return Err(ClientError::Usage(format!(
            "{product}/{channel} serves {now} and has no previous release to roll back to; \
             point it at a release with `atlas-hub release promote --version <version>`"
        )));
    };
    move_channel(
        &hub,
        &product,
        channel,
        &previous,
        Some(&now),
        None,
        a.force,
    )
    .await?;
    println!("{product}/{channel} rolled back: {now} -> {previous} (100% of clients)");
    println!(
        "undo with: atlas-hub release promote --product {product} --channel {channel} --version {now}"
    );
    Ok(())
}

async fn yank(a: YankArgs) -> Result<(), ClientError> {
    let product = Slug::parse("product", &a.product)
        .map_err(usage)?
        .to_string();
    let version = Version::parse(&a.version).map_err(usage)?.to_string();
    let hub = Hub::new(a.hub.hub, a.token.credential("yank")?, a.hub.attempts)?;
    let (verb, action) = if a.undo {
        ("unyank", "unyanked")
    } else {
        ("yank", "yanked")
    };
    // Without a reason no body is sent, as before reasons existed: any Hub takes that.
    let body = a.reason.as_ref().map(|reason| json!({ "reason": reason }));
    hub.call(
        Method::POST,
        &format!("/api/v1/releases/{product}/{version}/{verb}"),
        body.as_ref(),
        &format!("{verb} {product} {version}"),
    )
    .await?;
    if a.undo {
        println!("{action} {product} {version}: channels may point at it again");
    } else {
        let why = a
            .reason
            .map(|r| format!(" ({})", r.trim()))
            .unwrap_or_default();
        println!(
            "{action} {product} {version}{why}: latest lookups, the updater and channel moves no \
             longer offer it; pinned download links keep working"
        );
    }
    Ok(())
}

async fn status(a: StatusArgs) -> Result<(), ClientError> {
    let product = Slug::parse("product", &a.product)
        .map_err(usage)?
        .to_string();
    let hub = Hub::new(a.hub.hub, Credential::None, a.hub.attempts)?;
    let list = channels(&hub, &product).await?;

    // Platforms a channel serves: those of its release and of the one before it; for each,
    // what a client of that platform is given today.
    let mut releases = BTreeMap::new();
    let mut serves: Vec<Vec<Value>> = Vec::new();
    for c in &list {
        let mut platforms = BTreeSet::new();
        for v in [&c.version, &c.previous_version].into_iter().flatten() {
            if !releases.contains_key(v) {
                releases.insert(v.clone(), release(&hub, &product, v).await?);
            }
            platforms.extend(
                releases[v]
                    .artifacts
                    .iter()
                    .map(|a| (a.os.clone(), a.arch.clone())),
            );
        }
        let mut rows = Vec::new();
        for (os, arch) in platforms {
            let answer = hub
                .send(
                    Method::GET,
                    &format!(
                        "/api/v1/releases/{product}/latest/{os}/{arch}?channel={}",
                        c.name
                    ),
                    None,
                    "latest",
                )
                .await?;
            let body = answer.json();
            let art = &body["artifact"];
            rows.push(if answer.status.is_success() {
                json!({
                    "platform": format!("{os}-{arch}"), "version": body["version"],
                    "kind": art["kind"], "filename": art["filename"], "size": art["size"],
                    "sha256": art["sha256"],
                })
            } else {
                json!({"platform": format!("{os}-{arch}"), "version": null,
                       "status": answer.status.as_u16(), "code": body["code"]})
            });
        }
        serves.push(rows);
    }

    if a.json {
        let channels: Vec<Value> = list
            .iter()
            .zip(&serves)
            .map(|(c, rows)| {
                json!({
                    "name": c.name, "version": c.version, "previousVersion": c.previous_version,
                    "rolloutPercent": c.rollout_percent, "updatedAt": c.updated_at,
                    "serves": rows,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"product": product, "hub": hub.base(), "channels": channels})
        );
        return Ok(());
    }

    println!("{product} at {}\n", hub.base());
    let mut t = Table::new(&["CHANNEL", "VERSION", "ROLLOUT", "PREVIOUS", "UPDATED"]);
    for c in &list {
        let dash = || "-".to_owned();
        t.row(vec![
            c.name.clone(),
            c.version.clone().unwrap_or_else(dash),
            if c.version.is_some() {
                format!("{}%", c.rollout_percent)
            } else {
                dash()
            },
            c.previous_version.clone().unwrap_or_else(dash),
            if c.version.is_some() {
                c.updated_at.clone()
            } else {
                dash()
            },
        ]);
    }
    print!("{}", t.render());
    let mut t = Table::new(&[
        "CHANNEL", "PLATFORM", "SERVES", "KIND", "FILE", "SIZE", "SHA256",
    ]);
    let cell = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for (c, rows) in list.iter().zip(&serves) {
        for r in rows {
            if r["version"].is_string() {
                t.row(vec![
                    c.name.clone(),
                    cell(&r["platform"]),
                    cell(&r["version"]),
                    cell(&r["kind"]),
                    cell(&r["filename"]),
                    human_bytes(r["size"].as_u64().unwrap_or_default()),
                    cell(&r["sha256"]).chars().take(12).collect(),
                ]);
            } else {
                t.row(vec![
                    c.name.clone(),
                    cell(&r["platform"]),
                    format!("nothing ({})", r["status"]),
                ]);
            }
        }
    }
    println!();
    print!("{}", t.render());
    Ok(())
}
