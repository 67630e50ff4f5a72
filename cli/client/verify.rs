//! `atlas-hub verify`: the post-deploy checklist as one command. Health (with storage),
//! latest lookups for every product, channel and platform, download redirects (a 302 with
//! no body bytes to a presigned URL storage honours), the runner installer, and the updater
//! endpoints, and the operator sign-in (the session endpoint answers a cookieless request
//! "signed out", and each configured provider's authorization redirect is well-formed).
//! Prints a pass/fail table; exits non-zero when any check fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use atlas_hub::domain::ids::{Slug, parse_channel};
use reqwest::Method;
use serde_json::Value;

use super::files::human_bytes;
use super::hub::{Answer, ClientError, Credential, Hub, Problem, chain};
use super::table::Table;
use super::{ReleaseInfo, channels, release};

/// `verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The Hub's base URL, e.g. https://hub.example.com.
    #[arg(long = "hub", env = "ATLAS_HUB_URL", value_name = "URL")]
    hub: Option<String>,
    /// A product to check (repeatable). Without it, every product is listed with the admin token.
    #[arg(long = "product", value_name = "SLUG")]
    products: Vec<String>,
    /// Admin token, to list every product and its required platforms.
    #[arg(
        long,
        env = "ATLAS_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// A channel to check (repeatable); default: stable, beta and dev.
    #[arg(long = "channel", value_name = "CHANNEL")]
    channels: Vec<String>,
    /// Print JSON (`{hub, checks: [{result, check, subject, detail}], passed, failed, …}`)
    /// instead of the table; the exit status is the same.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    Warn,
    Skip,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "warn",
            Outcome::Skip => "skip",
        }
    }
}

/// The checks so far.
#[derive(Default)]
struct Report {
    rows: Vec<(Outcome, String, String, String)>,
}

impl Report {
    fn add(&mut self, outcome: Outcome, check: &str, subject: &str, detail: impl Into<String>) {
        self.rows
            .push((outcome, check.to_owned(), subject.to_owned(), detail.into()));
    }

    fn count(&self, o: Outcome) -> usize {
        self.rows.iter().filter(|r| r.0 == o).count()
    }
}

/// A product to check, with the platforms every channel must serve (known with an admin token).
struct ProductToCheck {
    slug: String,
    required: Vec<String>,
}

/// Runs the checks.
pub async fn run(a: VerifyArgs) -> Result<(), String> {
    let credential = match a.token.clone().filter(|t| !t.trim().is_empty()) {
        Some(token) => Credential::Bearer {
            token: token.trim().to_owned(),
            var: "ATLAS_ADMIN_TOKEN",
        },
        None => Credential::None,
    };
    // One attempt per check: verify reports what a client sees, it does not paper over it.
    let hub = Hub::new(a.hub.clone(), credential, 1)?;
    let channel_filter = a
        .channels
        .iter()
        .map(|c| parse_channel(c).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.detail)?;
    if a.products.is_empty() && matches!(hub.credential(), Credential::None) {
        return Err(
            "name the products to check with --product (repeatable), or set \
                    ATLAS_ADMIN_TOKEN (or pass --token) to check every product"
                .into(),
        );
    }

    let mut report = Report::default();
    health(&hub, &mut report, false).await;
    health(&hub, &mut report, true).await;
    let products = products(&hub, &a, &mut report).await?;
    let mut state = Seen::default();
    for p in &products {
        product(&hub, &mut report, &mut state, p, &channel_filter).await;
    }
    installer(&hub, &mut report).await;
    signin(&hub, &mut report).await;

    let failed = report.count(Outcome::Fail);
    if a.json {
        let checks: Vec<Value> = report
            .rows
            .iter()
            .map(|(o, check, subject, detail)| {
                serde_json::json!({"result": o.label().to_lowercase(), "check": check,
                                   "subject": subject, "detail": detail})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "hub": hub.base(), "checks": checks, "passed": report.count(Outcome::Pass),
                "failed": failed, "warnings": report.count(Outcome::Warn),
                "skipped": report.count(Outcome::Skip),
            })
        );
    } else {
        let mut t = Table::new(&["RESULT", "CHECK", "SUBJECT", "DETAIL"]);
        for (o, check, subject, detail) in &report.rows {
            t.row(vec![
                o.label().to_owned(),
                check.clone(),
                subject.clone(),
                detail.clone(),
            ]);
        }
        print!("{}", t.render());
        println!(
            "\nverify {}: {} passed, {failed} failed, {} warnings, {} skipped",
            hub.base(),
            report.count(Outcome::Pass),
            report.count(Outcome::Warn),
            report.count(Outcome::Skip)
        );
    }
    if failed > 0 {
        let names: Vec<String> = report
            .rows
            .iter()
            .filter(|r| r.0 == Outcome::Fail)
            .map(|r| format!("{} {}", r.1, r.2).trim().to_owned())
            .collect();
        return Err(format!(
            "verify failed: {failed} checks failed: {}",
            names.join("; ")
        ));
    }
    Ok(())
}

/// Things noticed once per run rather than per row.
#[derive(Default)]
struct Seen {
    foreign_download_url: Option<String>,
}

async fn get(hub: &Hub, path: &str) -> Result<Answer, ClientError> {
    hub.send(Method::GET, path, None, &format!("GET {path}"))
        .await
}

/// `GET /api/health` (and `?deep=1`, which also checks storage).
async fn health(hub: &Hub, r: &mut Report, deep: bool) {
    let (check, path) = if deep {
        ("health (deep)", "/api/health?deep=1")
    } else {
        ("health", "/api/health")
    };
    match get(hub, path).await {
        Ok(answer) => {
            let body = answer.json();
            let checks = body["checks"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let detail = format!(
                "{checks} (schema version {} of {}), Hub {}",
                body["schema"]["current"],
                body["schema"]["expected"],
                body["version"].as_str().unwrap_or("?")
            );
            if answer.status.is_success() && body["status"] == "ok" {
                r.add(Outcome::Pass, check, path, detail);
            } else {
                r.add(
                    Outcome::Fail,
                    check,
                    path,
                    format!("{}: {detail}", answer.status.as_u16()),
                );
            }
        }
        Err(e) => r.add(Outcome::Fail, check, path, e.to_string()),
    }
}

/// The products to check: `--product`, or every product from the admin API.
async fn products(
    hub: &Hub,
    a: &VerifyArgs,
    r: &mut Report,
) -> Result<Vec<ProductToCheck>, String> {
    let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !matches!(hub.credential(), Credential::None) {
        match hub
            .get_json("/api/v1/admin/products", "list products")
            .await
        {
            Ok(body) => {
                for p in body["products"].as_array().into_iter().flatten() {
                    let slug = p["slug"].as_str().unwrap_or_default().to_owned();
                    let required = p["requiredPlatforms"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect();
                    listed.insert(slug, required);
                }
                let names: Vec<&str> = listed.keys().map(String::as_str).collect();
                r.add(
                    Outcome::Pass,
                    "products",
                    "/api/v1/admin/products",
                    format!("{}: {}", names.len(), names.join(", ")),
                );
            }
            Err(e) => r.add(
                Outcome::Fail,
                "products",
                "/api/v1/admin/products",
                e.to_string().replace('\n', " "),
            ),
        }
    }
    if a.products.is_empty() {
        return Ok(listed
            .into_iter()
            .map(|(slug, required)| ProductToCheck { slug, required })
            .collect());
    }
    a.products
        .iter()
        .map(|p| {
            let slug = Slug::parse("product", p).map_err(|e| e.detail)?.to_string();
            let required = listed.get(&slug).cloned().unwrap_or_default();
            Ok(ProductToCheck { slug, required })
        })
        .collect()
}

/// Every check of one product.
async fn product(
    hub: &Hub,
    r: &mut Report,
    seen: &mut Seen,
    p: &ProductToCheck,
    filter: &[String],
) {
    let list = match channels(hub, &p.slug).await {
        Ok(list) => list,
        Err(e) => {
            r.add(
                Outcome::Fail,
                "channels",
                &p.slug,
                e.to_string().replace('\n', " "),
            );
            return;
        }
    };
    let mut releases: BTreeMap<String, ReleaseInfo> = BTreeMap::new();
    for c in list
        .iter()
        .filter(|c| filter.is_empty() || filter.contains(&c.name))
    {
        let subject = format!("{}/{}", p.slug, c.name);
        let Some(version) = c.version.clone() else {
            r.add(
                Outcome::Skip,
                "channel",
                &subject,
                "no release on this channel",
            );
            continue;
        };
        // What the channel must serve: the product's required platforms, and every platform
        // of its release and of the release before it (what clients had until the last move).
        let mut platforms: BTreeSet<String> = p.required.iter().cloned().collect();
        for v in [Some(&version), c.previous_version.as_ref()]
            .into_iter()
            .flatten()
        {
            if !releases.contains_key(v) {
                match release(hub, &p.slug, v).await {
                    Ok(info) => {
                        releases.insert(v.clone(), info);
                    }
                    Err(e) => {
                        r.add(
                            Outcome::Fail,
                            "release",
                            &format!("{} {v}", p.slug),
                            e.to_string().replace('\n', " "),
                        );
                        continue;
                    }
                }
            }
            platforms.extend(releases[v].artifacts.iter().map(|a| a.platform()));
        }
        r.add(
            Outcome::Pass,
            "channel",
            &subject,
            format!(
                "{version} ({}% of clients{}), {}",
                c.rollout_percent,
                c.previous_version
                    .as_deref()
                    .map(|v| format!("; previous {v}"))
                    .unwrap_or_default(),
                super::release::plural(platforms.len(), "platform")
            ),
        );
        let offered: Vec<&str> = [
            Some(version.as_str()),
            (c.rollout_percent < 100)
                .then_some(c.previous_version.as_deref())
                .flatten(),
        ]
        .into_iter()
        .flatten()
        .collect();
        for platform in &platforms {
            let Some((os, arch)) = platform.split_once('-') else {
                continue;
            };
            let t = Target {
                product: &p.slug,
                channel: &c.name,
                version: &version,
                offered: &offered,
                os,
                arch,
                subject: format!("{}/{} {platform}", p.slug, c.name),
            };
            let signed = latest_and_downloads(hub, r, seen, &t).await;
            updater(hub, r, &t, signed).await;
        }
        if let Some(current) = releases.get(&version) {
            manifest(hub, r, &p.slug, &c.name, current).await;
        }
    }
}

/// One platform of a product's channel.
struct Target<'a> {
    product: &'a str,
    channel: &'a str,
    /// The version the channel points at.
    version: &'a str,
    /// What an old client may be offered (during a rollout, the previous release too).
    offered: &'a [&'a str],
    os: &'a str,
    arch: &'a str,
    /// `product/channel os-arch`, as the table shows it.
    subject: String,
}

/// `latest` for the platform, then both download redirects of its primary artifact.
/// Returns whether the platform has a signed artifact (what the updater offers).
async fn latest_and_downloads(hub: &Hub, r: &mut Report, seen: &mut Seen, t: &Target<'_>) -> bool {
    let Target {
        product,
        channel,
        version,
        os,
        arch,
        ..
    } = *t;
    let subject = t.subject.as_str();
    let path = format!("/api/v1/releases/{product}/latest/{os}/{arch}?channel={channel}");
    let answer = match get(hub, &path).await {
        Ok(a) => a,
        Err(e) => {
            r.add(Outcome::Fail, "latest", subject, e.to_string());
            return false;
        }
    };
    let body = answer.json();
    if answer.status.as_u16() == 404 {
        r.add(
            Outcome::Fail,
            "latest",
            subject,
            format!(
                "404: {channel} points at {version}, which has no artifact for {os}-{arch} that the channel served before or must serve ({})",
                body["detail"].as_str().unwrap_or_default()
            ),
        );
        return false;
    }
    if !answer.status.is_success() {
        let p = Problem::from_answer("latest", &answer, "");
        r.add(
            Outcome::Fail,
            "latest",
            subject,
            format!("{} {}: {}", p.status, p.code, p.detail),
        );
        return false;
    }
    let art = &body["artifact"];
    let served = body["version"].as_str().unwrap_or_default();
    let size = art["size"].as_u64().unwrap_or_default();
    let filename = art["filename"].as_str().unwrap_or_default();
    if served != version {
        r.add(
            Outcome::Fail,
            "latest",
            subject,
            format!("serves {served}, but the channel points at {version}"),
        );
    } else {
        r.add(
            Outcome::Pass,
            "latest",
            subject,
            format!(
                "{served} {} {filename} ({})",
                art["kind"].as_str().unwrap_or_default(),
                human_bytes(size)
            ),
        );
    }
    if let Some(url) = art["downloadUrl"].as_str()
        && !url.starts_with(&format!("{}/", hub.base()))
        && seen.foreign_download_url.is_none()
    {
        seen.foreign_download_url = Some(url.to_owned());
        r.add(
            Outcome::Warn,
            "download url",
            subject,
            format!(
                "the Hub hands out {url}, not a URL under {}: is its ATLAS_HUB_URL right?",
                hub.base()
            ),
        );
    }
    let id = art["downloadId"].as_str().unwrap_or_default();
    let (o, detail) = redirect(hub, &format!("/api/v1/download/{id}"), size).await;
    r.add(o, "download", subject, detail);
    let (o, detail) = redirect(
        hub,
        &format!("/download/{product}/latest/{os}/{arch}?channel={channel}"),
        size,
    )
    .await;
    r.add(o, "download latest", subject, detail);
    body["artifacts"]
        .as_array()
        .is_some_and(|arts| arts.iter().any(|a| a["signature"].is_string()))
}

/// A Hub download: 302, no body bytes, `Cache-Control: no-store`, to a presigned URL that
/// storage honours for the expected size.
async fn redirect(hub: &Hub, path: &str, size: u64) -> (Outcome, String) {
    let answer = match get(hub, path).await {
        Ok(a) => a,
        Err(e) => return (Outcome::Fail, e.to_string()),
    };
    if answer.status.as_u16() != 302 {
        let p = Problem::from_answer("download", &answer, "");
        return (
            Outcome::Fail,
            format!(
                "{path} answered {} {}, not a 302 redirect: {}",
                p.status, p.code, p.detail
            ),
        );
    }
    if !answer.body.is_empty() {
        return (
            Outcome::Fail,
            format!(
                "{path}: the Hub sent {} body bytes with its redirect; it must never proxy artifacts",
                answer.body.len()
            ),
        );
    }
    let Some(location) = answer.header("location").map(str::to_owned) else {
        return (Outcome::Fail, format!("{path}: 302 without a Location"));
    };
    if location.starts_with(&format!("{}/", hub.base())) {
        return (
            Outcome::Fail,
            format!("{path} redirects to the Hub itself ({location}), not to storage"),
        );
    }
    if !answer
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store"))
    {
        return (
            Outcome::Fail,
            format!(
                "{path}: the redirect lacks Cache-Control: no-store, so a CDN could serve an expired URL"
            ),
        );
    }
    match storage_reachable(hub, &location).await {
        Ok(stored) if stored == size => (
            Outcome::Pass,
            format!("302 to storage, which serves {}", human_bytes(size)),
        ),
        Ok(stored) => (
            Outcome::Fail,
            format!("storage holds {stored} bytes, the release says {size}"),
        ),
        Err(why) => (Outcome::Fail, format!("302 to storage, but {why}")),
    }
}

/// Asks storage for the first byte of the presigned URL (a presigned URL is signed for GET,
/// and S3 refuses HEAD on it) and returns the object's size. Never reads more than that.
async fn storage_reachable(hub: &Hub, url: &str) -> Result<u64, String> {
    let resp = hub
        .http()
        .get(url)
        .header("range", "bytes=0-0")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("storage is unreachable: {}", chain(&e)))?;
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match status.as_u16() {
        206 => header("content-range")
            .and_then(|r| r.rsplit_once('/').and_then(|(_, total)| total.parse().ok()))
            .ok_or_else(|| "storage's 206 has no usable Content-Range".to_owned()),
        // Storage without range support: the length says it, the body stays unread.
        200 => header("content-length")
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| "storage's 200 has no Content-Length".to_owned()),
        _ => {
            let text = resp.text().await.unwrap_or_default();
            let code = text
                .split_once("<Code>")
                .and_then(|(_, rest)| rest.split_once("</Code>"))
                .map(|(c, _)| format!(" {c}"))
                .unwrap_or_default();
            Err(format!(
                "storage refused the presigned URL ({status}{code}): the Hub's storage credentials or bucket are wrong"
            ))
        }
    }
}

/// The Tauri dynamic updater for one platform: an old client is offered the channel's
/// release when it has a signed artifact (204 otherwise); a current client gets 204.
async fn updater(hub: &Hub, r: &mut Report, t: &Target<'_>, signed: bool) {
    let Target {
        product,
        channel,
        version,
        offered,
        os,
        arch,
        ..
    } = *t;
    let subject = t.subject.as_str();
    let base = format!("/api/v1/updater/{product}/{os}/{arch}");
    let old = match get(hub, &format!("{base}/0.0.0?channel={channel}")).await {
        Ok(a) => a,
        Err(e) => return r.add(Outcome::Fail, "updater", subject, e.to_string()),
    };
    let old_body = old.json();
    let first = match (signed, old.status.as_u16()) {
        (true, 200) => {
            let v = old_body["version"].as_str().unwrap_or_default();
            if !offered.contains(&v) {
                Err(format!("offers {v}, expected {}", offered.join(" or ")))
            } else if old_body["signature"].as_str().is_none_or(str::is_empty)
                || old_body["url"].as_str().is_none_or(str::is_empty)
            {
                Err(format!(
                    "offers {v} without a url and signature: {old_body}"
                ))
            } else {
                Ok(format!("0.0.0 is offered {v}"))
            }
        }
        (true, s) => Err(format!(
            "a 0.0.0 client got {s}, expected 200 with {version}"
        )),
        (false, 204) => Ok("no signed artifact, 204".to_owned()),
        (false, s) => Err(format!("no signed artifact, so expected 204, got {s}")),
    };
    let current = match get(hub, &format!("{base}/{version}?channel={channel}")).await {
        Ok(a) if a.status.as_u16() == 204 => Ok(format!("{version} is up to date (204)")),
        Ok(a) => Err(format!(
            "a {version} client got {}, expected 204",
            a.status.as_u16()
        )),
        Err(e) => Err(e.to_string()),
    };
    match (first, current) {
        (Ok(a), Ok(b)) => r.add(Outcome::Pass, "updater", subject, format!("{a}; {b}")),
        (Err(e), _) | (_, Err(e)) => r.add(Outcome::Fail, "updater", subject, e),
    }
}

/// The Tauri static manifest of a channel lists every signed platform of its release.
async fn manifest(hub: &Hub, r: &mut Report, product: &str, channel: &str, current: &ReleaseInfo) {
    let path = format!("/api/v1/updater/{product}/{channel}/latest.json");
    let subject = format!("{product}/{channel}");
    let signed: BTreeSet<String> = current
        .artifacts
        .iter()
        .filter(|a| a.signature.is_some())
        .map(|a| a.platform())
        .collect();
    let answer = match get(hub, &path).await {
        Ok(a) => a,
        Err(e) => return r.add(Outcome::Fail, "updater manifest", &subject, e.to_string()),
    };
    let body: Value = answer.json();
    match (signed.is_empty(), answer.status.as_u16()) {
        (true, 404) => r.add(
            Outcome::Pass,
            "updater manifest",
            &subject,
            "no signed artifacts, 404",
        ),
        (false, 200) => {
            let missing: Vec<&String> = signed
                .iter()
                .filter(|p| body["platforms"].get(p.as_str()).is_none())
                .collect();
            if body["version"] != current.version.as_str() {
                r.add(
                    Outcome::Fail,
                    "updater manifest",
                    &subject,
                    format!(
                        "lists {}, the channel points at {}",
                        body["version"], current.version
                    ),
                );
            } else if !missing.is_empty() {
                let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                r.add(
                    Outcome::Fail,
                    "updater manifest",
                    &subject,
                    format!("lacks {}", missing.join(", ")),
                );
            } else {
                let listed: Vec<&str> = signed.iter().map(String::as_str).collect();
                r.add(
                    Outcome::Pass,
                    "updater manifest",
                    &subject,
                    format!("{} for {}", current.version, listed.join(", ")),
                );
            }
        }
        (_, s) => r.add(
            Outcome::Fail,
            "updater manifest",
            &subject,
            format!(
                "answered {s} ({} signed platforms in {})",
                signed.len(),
                current.version
            ),
        ),
    }
}

/// The runner install script is served, and downloads from this Hub.
/// The operator sign-in (seed §6.1, "auth flows"): a cookieless request to the session
/// endpoint is answered "signed out", and each configured provider's sign-in redirects to its
/// authorization endpoint with this Hub's client id, a callback on this Hub, PKCE (S256), a
/// state (and a nonce for OpenID Connect), binding the flow to the browser with a `__Host-`
/// cookie. Nothing is signed in: the flows started expire unused.
async fn signin(hub: &Hub, r: &mut Report) {
    const CHECK: &str = "sign-in";
    let path = "/api/v1/auth/session";
    let answer = match get(hub, path).await {
        Ok(a) => a,
        Err(e) => return r.add(Outcome::Fail, CHECK, path, e.to_string()),
    };
    let body = answer.json();
    if !answer.status.is_success() || body["signedIn"] != false {
        return r.add(
            Outcome::Fail,
            CHECK,
            path,
            format!(
                "answered {} {body} to a request without a session cookie, not signedIn: false",
                answer.status.as_u16()
            ),
        );
    }
    let providers: Vec<(String, String)> = body["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["id"].as_str()?.to_owned(),
                p["signInUrl"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let names: Vec<&str> = providers.iter().map(|(id, _)| id.as_str()).collect();
    r.add(
        Outcome::Pass,
        CHECK,
        path,
        if names.is_empty() {
            "signed out; no sign-in provider is configured (tokens only)".to_owned()
        } else {
            format!("signed out; providers: {}", names.join(", "))
        },
    );
    for (id, url) in providers {
        // The developer sign-in of `atlas-hub serve` is not a provider: following it would sign
        // in, so it is only named.
        if id == "local" {
            r.add(
                Outcome::Skip,
                CHECK,
                &url,
                "the local developer sign-in of atlas-hub serve (no deployed function has it)",
            );
            continue;
        }
        let path = format!("{url}?returnTo=/");
        match get(hub, &path).await {
            Ok(answer) => {
                let (outcome, detail) = authorization_redirect(hub, &id, &answer);
                r.add(outcome, CHECK, &path, detail);
            }
            Err(e) => r.add(Outcome::Fail, CHECK, &path, e.to_string()),
        }
    }
}

/// Whether a sign-in's answer is a well-formed authorization redirect.
fn authorization_redirect(hub: &Hub, id: &str, answer: &Answer) -> (Outcome, String) {
    let location = answer.header("location").unwrap_or_default();
    if answer.status != reqwest::StatusCode::FOUND {
        let why = answer.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return (
            Outcome::Fail,
            format!(
                "answered {} instead of a redirect: {why}",
                answer.status.as_u16()
            ),
        );
    }
    let Ok(url) = reqwest::Url::parse(location) else {
        return (
            Outcome::Fail,
            format!("redirects to {location:?}, not a URL"),
        );
    };
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let callback = hub.url(&format!("/api/v1/auth/callback/{id}"));
    let mut missing = Vec::new();
    if param("response_type").as_deref() != Some("code") {
        missing.push("response_type=code".to_owned());
    }
    if param("client_id").is_none_or(|c| c.is_empty()) {
        missing.push("client_id".to_owned());
    }
    if param("redirect_uri").as_deref() != Some(callback.as_str()) {
        missing.push(format!(
            "redirect_uri {callback} (it is {:?}: is ATLAS_HUB_URL this Hub's URL?)",
            param("redirect_uri").unwrap_or_default()
        ));
    }
    if param("code_challenge_method").as_deref() != Some("S256")
        || param("code_challenge").is_none_or(|c| c.len() < 43)
    {
        missing.push("PKCE (code_challenge, S256)".to_owned());
    }
    if param("state").is_none_or(|s| s.len() < 32) {
        missing.push("state".to_owned());
    }
    if id != "github" && param("nonce").is_none_or(|s| s.len() < 32) {
        missing.push("nonce".to_owned());
    }
    let cookie = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-atlas-signin="));
    if !cookie.is_some_and(|c| c.contains("Secure") && c.contains("HttpOnly")) {
        missing.push("the __Host-atlas-signin flow cookie (Secure, HttpOnly)".to_owned());
    }
    let endpoint = format!("{}{}", url.origin().ascii_serialization(), url.path());
    if missing.is_empty() {
        (
            Outcome::Pass,
            format!("redirects to {endpoint} with client id, callback on this Hub, PKCE, state"),
        )
    } else {
        (
            Outcome::Fail,
            format!("the redirect to {endpoint} lacks {}", missing.join("; ")),
        )
    }
}

async fn installer(hub: &Hub, r: &mut Report) {
    let path = "/download/runner/install";
    let answer = match get(hub, path).await {
        Ok(a) => a,
        Err(e) => return r.add(Outcome::Fail, "runner install", path, e.to_string()),
    };
    let text = String::from_utf8_lossy(&answer.body);
    let shell = answer
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/x-shellscript"));
    if !answer.status.is_success() || !shell || !text.starts_with("#!/bin/sh") {
        return r.add(
            Outcome::Fail,
            "runner install",
            path,
            format!(
                "answered {} {} instead of a POSIX sh script",
                answer.status.as_u16(),
                answer.header("content-type").unwrap_or("(no content type)")
            ),
        );
    }
    // `default_hub='<url>'` (older Hubs: `"${ATLAS_HUB_URL:-<url>}"`).
    let embedded = text
        .split_once("default_hub='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .or_else(|| {
            text.split_once("ATLAS_HUB_URL:-")
                .and_then(|(_, rest)| rest.split_once('}'))
        })
        .map(|(url, _)| url.to_owned())
        .unwrap_or_default();
    if embedded == hub.base() {
        r.add(
            Outcome::Pass,
            "runner install",
            path,
            format!(
                "sh script, {} bytes, downloads from {embedded}",
                answer.body.len()
            ),
        );
    } else {
        r.add(
            Outcome::Warn,
            "runner install",
            path,
            format!(
                "the script downloads from {embedded:?}, not {}: is the Hub's ATLAS_HUB_URL right?",
                hub.base()
            ),
        );
    }
}
