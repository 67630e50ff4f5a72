//! `atlas-hub admin product|pack|token|access|audit …`: operator commands over HTTP with an
//! admin token (`ATLAS_ADMIN_TOKEN`), no database access. (`admin bootstrap-token` and
//! `admin bootstrap-access`, which make the first admin token and the first sign-in rule with
//! database access, live in `cli/admin.rs`.)

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::HubArgs;
use super::hub::{ClientError, Credential, Hub};
use super::table::Table;

/// The variable operators keep their admin token in.
pub const ADMIN_TOKEN_VAR: &str = "ATLAS_ADMIN_TOKEN";

/// Where the Hub is and the admin token to use. (No `Debug`: it holds a secret.)
#[derive(clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    hub: HubArgs,
    /// Admin token (`atlas-hub admin bootstrap-token` makes the first one).
    #[arg(long, env = ADMIN_TOKEN_VAR, hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
}

impl AdminArgs {
    pub(crate) fn hub(self) -> Result<Hub, ClientError> {
        let credential = Credential::bearer(
            self.token,
            ADMIN_TOKEN_VAR,
            "an admin token (`atlas-hub admin bootstrap-token` makes the first one with database access)",
        )?;
        Hub::new(self.hub.hub, credential, self.hub.attempts)
    }
}

/// `--json`: the Hub's answer as JSON on stdout instead of a table.
#[derive(clap::Args)]
pub struct JsonArg {
    /// Print the Hub's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `admin product …`.
#[derive(clap::Subcommand)]
pub enum ProductCommand {
    /// Create a product (and its stable, beta and dev channels).
    Create(ProductCreateArgs),
    /// Change a product's name, required platforms, size limit or updater key.
    Update(ProductUpdateArgs),
    /// List every product.
    List(ListArgs),
}

/// `admin pack …`.
#[derive(clap::Subcommand)]
pub enum PackCommand {
    /// Create a pack, optionally with its trusted GitHub publisher.
    Create(PackCreateArgs),
    /// Change a pack's name, OIDC-only setting or trusted publisher.
    Update(PackUpdateArgs),
    /// List every pack.
    List(ListArgs),
}

/// `admin token …`.
#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a token: the plaintext alone on stdout (shown once), what it can do on stderr.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets): scopes, expiry, last use, revocation.
    List(ListArgs),
    /// Revoke a token by id (idempotent).
    Revoke(TokenRevokeArgs),
}

/// `admin access …`: who may sign in, and with which role.
#[derive(clap::Subcommand)]
pub enum AccessCommand {
    /// Grant a role to whoever a provider says matches (a GitHub user, org or team, a
    /// Microsoft tenant or group, an OIDC subject or verified e-mail).
    Grant(AccessGrantArgs),
    /// List the rules.
    List(ListArgs),
    /// Remove a rule: whoever only it let in loses access at their next request.
    Revoke(AccessRevokeArgs),
}

/// What a rule names and grants (both `admin access grant` and `admin bootstrap-access`).
#[derive(clap::Args)]
pub struct RuleArgs {
    /// github_user, github_org, github_team (org/team), microsoft_tenant, microsoft_group
    /// (tenant/group), oidc_subject ("issuer subject"), oidc_email.
    #[arg(long)]
    pub kind: String,
    /// The login, org, team, tenant id, group, subject or address.
    #[arg(long)]
    pub value: String,
    /// viewer, releaser or admin.
    #[arg(long)]
    pub role: String,
    /// A product a releaser may move (repeatable; default every product).
    #[arg(long = "product")]
    pub products: Vec<String>,
}

/// `admin access grant`.
#[derive(clap::Args)]
pub struct AccessGrantArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    rule: RuleArgs,
}

/// `admin access revoke`.
#[derive(clap::Args)]
pub struct AccessRevokeArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The rule's id (from `admin access list`).
    id: String,
}

/// A list command.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    out: JsonArg,
}

/// Product fields both create and update take.
#[derive(clap::Args)]
pub struct ProductFieldArgs {
    /// A platform every channel's release must cover, os-arch (repeatable), e.g. linux-x86_64.
    #[arg(long = "required-platform", value_name = "OS-ARCH")]
    required_platforms: Vec<String>,
    /// Largest artifact accepted, in bytes (`none`: the Hub's default).
    #[arg(long, value_name = "BYTES|none")]
    max_artifact_size: Option<String>,
    /// Tauri updater public key: what Tauri's `pubkey` setting holds, the `.pub` file's
    /// text, or `@path` to read it from a file (`none` removes it).
    #[arg(long, value_name = "KEY|@FILE|none")]
    updater_public_key: Option<String>,
}

/// `admin product create`.
#[derive(clap::Args)]
pub struct ProductCreateArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Product slug, e.g. launcher.
    slug: String,
    /// Display name (default: the slug).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    fields: ProductFieldArgs,
    #[command(flatten)]
    out: JsonArg,
}

/// `admin product update`.
#[derive(clap::Args)]
pub struct ProductUpdateArgs {
    #[command(flatten)]
    admin: AdminArgs,
    slug: String,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    fields: ProductFieldArgs,
    /// Require no platform (instead of --required-platform).
    #[arg(long, conflicts_with = "required_platforms")]
    no_required_platforms: bool,
    #[command(flatten)]
    out: JsonArg,
}

/// The trusted GitHub publisher of a pack.
#[derive(clap::Args)]
pub struct GithubArgs {
    /// GitHub repository allowed to deploy, owner/name (for people; matching uses the ids).
    #[arg(long, value_name = "OWNER/NAME")]
    github_repository: Option<String>,
    /// Its numeric repository id (`gh api repos/OWNER/NAME --jq .id`).
    #[arg(long, value_name = "ID")]
    github_repository_id: Option<i64>,
    /// Its owner's numeric id (`gh api repos/OWNER/NAME --jq .owner.id`).
    #[arg(long, value_name = "ID")]
    github_repository_owner_id: Option<i64>,
    /// Only this workflow file may deploy, e.g. deploy.yml.
    #[arg(long, value_name = "FILE")]
    github_workflow: Option<String>,
    /// Only jobs in this deployment environment may deploy.
    #[arg(long, value_name = "NAME")]
    github_environment: Option<String>,
    /// Only this git ref pattern may deploy, e.g. refs/tags/*.
    #[arg(long, value_name = "PATTERN")]
    github_ref_pattern: Option<String>,
}

impl GithubArgs {
    fn given(&self) -> bool {
        self.github_repository.is_some()
            || self.github_repository_id.is_some()
            || self.github_repository_owner_id.is_some()
            || self.github_workflow.is_some()
            || self.github_environment.is_some()
            || self.github_ref_pattern.is_some()
    }

    /// The publisher object: these flags over `current` (what the pack has today).
    fn merged(self, current: &Value) -> Result<Value, ClientError> {
        let mut g = current.as_object().cloned().unwrap_or_default();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                g.insert(k.to_owned(), v);
            }
        };
        set("repository", self.github_repository.map(Value::from));
        set("repositoryId", self.github_repository_id.map(Value::from));
        set(
            "repositoryOwnerId",
            self.github_repository_owner_id.map(Value::from),
        );
        set("workflow", self.github_workflow.map(Value::from));
        set("environment", self.github_environment.map(Value::from));
        set("refPattern", self.github_ref_pattern.map(Value::from));
        for (key, flag) in [
            ("repository", "--github-repository"),
            ("repositoryId", "--github-repository-id"),
            ("repositoryOwnerId", "--github-repository-owner-id"),
        ] {
            if !g.contains_key(key) {
                return Err(ClientError::Usage(format!(
                    "a trusted publisher needs {flag} (with --github-repository, \
                     --github-repository-id and --github-repository-owner-id together)"
                )));
            }
        }
        Ok(Value::Object(g))
    }
}

/// `admin pack create`.
#[derive(clap::Args)]
pub struct PackCreateArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Pack slug, e.g. maps.
    slug: String,
    /// Display name (default: the slug).
    #[arg(long)]
    name: Option<String>,
    /// Accept GitHub OIDC deploys only (no pack deploy tokens).
    #[arg(long)]
    oidc_only: bool,
    #[command(flatten)]
    github: GithubArgs,
    #[command(flatten)]
    out: JsonArg,
}

/// `admin pack update`.
#[derive(clap::Args)]
pub struct PackUpdateArgs {
    #[command(flatten)]
    admin: AdminArgs,
    slug: String,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    /// Accept GitHub OIDC deploys only (`true`) or pack deploy tokens too (`false`).
    #[arg(long, value_name = "true|false")]
    oidc_only: Option<bool>,
    /// Changes the trusted publisher: given flags replace its fields, the rest are kept.
    #[command(flatten)]
    github: GithubArgs,
    /// Remove the trusted publisher (no OIDC deploys).
    #[arg(long, conflicts_with_all = ["github_repository", "github_repository_id",
        "github_repository_owner_id", "github_workflow", "github_environment", "github_ref_pattern"])]
    no_github: bool,
    #[command(flatten)]
    out: JsonArg,
}

/// `admin token create`.
#[derive(clap::Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Who or what holds the token, e.g. "launcher CI".
    #[arg(long)]
    name: String,
    /// `app` (CI for products), `pack` (deploys of one pack) or `admin` (everything).
    #[arg(long, value_parser = ["app", "pack", "admin"])]
    kind: String,
    /// App tokens: a product it may act on (repeatable), or `*` for every product.
    #[arg(long = "product", value_name = "SLUG|*")]
    products: Vec<String>,
    /// Pack tokens: the pack it deploys.
    #[arg(long, value_name = "SLUG")]
    pack: Option<String>,
    /// App tokens: upload, publish, promote or yank (repeatable; the Hub's default:
    /// upload and publish).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// App tokens: a channel it may publish to or move (repeatable; default: every channel).
    #[arg(long = "channel", value_name = "CHANNEL|*")]
    channels: Vec<String>,
    /// Days until it expires (1–3650; default: never).
    #[arg(long, value_name = "DAYS")]
    expires_in_days: Option<i64>,
}

/// `admin token revoke`.
#[derive(clap::Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The token's id (`admin token list` shows it).
    id: String,
}

/// `admin audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Entries per page (1–100).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: u32,
    /// Start after this entry (the `next:` line of the page before).
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
    /// Every entry, following the pages to the end.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Only entries about this product (itself, its releases and channels).
    #[arg(long, value_name = "SLUG", conflicts_with = "pack")]
    product: Option<String>,
    /// Only entries about this pack (itself, its builds and channels).
    #[arg(long, value_name = "SLUG")]
    pack: Option<String>,
    /// Only entries whose actor contains this text (any case).
    #[arg(long, value_name = "TEXT")]
    actor: Option<String>,
    /// Only this action (`channel.move`), or the actions under a prefix ending with `.`
    /// (`release.`).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Only entries at or after this time (RFC 3339: 2026-11-27T16:00:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[command(flatten)]
    out: JsonArg,
}

impl AuditArgs {
    /// The filters given, as (query parameter, value) in a fixed order.
    fn filters(&self) -> Vec<(&'static str, &str)> {
        [
            ("product", &self.product),
            ("pack", &self.pack),
            ("actor", &self.actor),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// Runs `admin product …`.
pub async fn product(command: ProductCommand) -> Result<(), String> {
    match command {
        ProductCommand::Create(a) => product_create(a).await,
        ProductCommand::Update(a) => product_update(a).await,
        ProductCommand::List(a) => product_list(a).await,
    }
    .map_err(String::from)
}

/// Runs `admin pack …`.
pub async fn pack(command: PackCommand) -> Result<(), String> {
    match command {
        PackCommand::Create(a) => pack_create(a).await,
        PackCommand::Update(a) => pack_update(a).await,
        PackCommand::List(a) => pack_list(a).await,
    }
    .map_err(String::from)
}

/// Runs `admin token …`.
pub async fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Create(a) => token_create(a).await,
        TokenCommand::List(a) => token_list(a).await,
        TokenCommand::Revoke(a) => token_revoke(a).await,
    }
    .map_err(String::from)
}

/// Runs an `admin access` command.
pub async fn access(command: AccessCommand) -> Result<(), String> {
    match command {
        AccessCommand::Grant(a) => access_grant(a).await,
        AccessCommand::List(a) => access_list(a).await,
        AccessCommand::Revoke(a) => access_revoke(a).await,
    }
    .map_err(String::from)
}

async fn access_grant(a: AccessGrantArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let mut body = json!({"kind": a.rule.kind, "value": a.rule.value, "role": a.rule.role});
    if !a.rule.products.is_empty() {
        body["products"] = json!(a.rule.products);
    }
    let rule = hub
        .call(
            Method::POST,
            "/api/v1/admin/access",
            Some(&body),
            "grant access",
        )
        .await?
        .json();
    println!(
        "rule {}: {} {} -> {} ({})",
        text(&rule["id"]),
        text(&rule["kind"]),
        text(&rule["value"]),
        text(&rule["role"]),
        list(&rule["products"])
    );
    Ok(())
}

async fn access_list(a: ListArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let body = hub
        .get_json("/api/v1/admin/access", "list access rules")
        .await?;
    if a.out.json {
        println!("{body}");
        return Ok(());
    }
    if array(&body["rules"]).is_empty() {
        eprintln!("no access rules: nobody can sign in (grant one with `admin access grant`)");
    }
    let mut t = Table::new(&["ID", "KIND", "VALUE", "ROLE", "PRODUCTS", "BY", "CREATED"]);
    for r in array(&body["rules"]) {
        t.row(vec![
            text(&r["id"]),
            text(&r["kind"]),
            text(&r["value"]),
            text(&r["role"]),
            list(&r["products"]),
            text(&r["createdBy"]),
            text(&r["createdAt"]),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

async fn access_revoke(a: AccessRevokeArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    hub.call(
        Method::DELETE,
        &format!("/api/v1/admin/access/{}", segment(&a.id)),
        None,
        &format!("remove access rule {}", a.id),
    )
    .await?;
    println!("removed rule {}", a.id);
    Ok(())
}

/// Runs `admin audit`.
pub async fn audit(a: AuditArgs) -> Result<(), String> {
    audit_pages(a).await.map_err(String::from)
}

/// Fields both product commands send.
fn product_fields(f: ProductFieldArgs, body: &mut Map<String, Value>) -> Result<(), ClientError> {
    if !f.required_platforms.is_empty() {
        body.insert("requiredPlatforms".into(), json!(f.required_platforms));
    }
    if let Some(size) = f.max_artifact_size {
        let value = match size.as_str() {
            "none" => Value::Null,
            s => Value::from(s.parse::<i64>().map_err(|_| {
                ClientError::Usage(format!(
                    "--max-artifact-size {s:?}: give a number of bytes, or none"
                ))
            })?),
        };
        body.insert("maxArtifactSize".into(), value);
    }
    if let Some(key) = f.updater_public_key {
        let value = match key.strip_prefix('@') {
            _ if key == "none" => Value::Null,
            Some(path) => Value::from(std::fs::read_to_string(path).map_err(|e| {
                ClientError::Usage(format!("--updater-public-key @{path}: cannot read it: {e}"))
            })?),
            None => Value::from(key),
        };
        body.insert("updaterPublicKey".into(), value);
    }
    Ok(())
}

async fn product_create(a: ProductCreateArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let mut body = Map::new();
    body.insert("slug".into(), json!(a.slug));
    body.insert("name".into(), json!(a.name.as_deref().unwrap_or(&a.slug)));
    product_fields(a.fields, &mut body)?;
    let product = hub
        .call(
            Method::POST,
            "/api/v1/admin/products",
            Some(&Value::Object(body)),
            &format!("create product {}", a.slug),
        )
        .await?
        .json();
    print_product(&product, a.out.json, "created");
    Ok(())
}

async fn product_update(a: ProductUpdateArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let mut body = Map::new();
    if let Some(name) = a.name {
        body.insert("name".into(), json!(name));
    }
    if a.no_required_platforms {
        body.insert("requiredPlatforms".into(), json!([]));
    }
    product_fields(a.fields, &mut body)?;
    if body.is_empty() {
        return Err(ClientError::Usage(
            "nothing to change: give --name, --required-platform, --no-required-platforms, \
             --max-artifact-size or --updater-public-key"
                .into(),
        ));
    }
    let product = hub
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/products/{}", segment(&a.slug)),
            Some(&Value::Object(body)),
            &format!("update product {}", a.slug),
        )
        .await?
        .json();
    print_product(&product, a.out.json, "updated");
    Ok(())
}

fn print_product(product: &Value, as_json: bool, done: &str) {
    if as_json {
        println!("{product}");
        return;
    }
    println!("{done} product {}", text(&product["slug"]));
    print!("{}", product_table(std::slice::from_ref(product)).render());
}

fn product_table(products: &[Value]) -> Table {
    let mut t = Table::new(&[
        "PRODUCT",
        "NAME",
        "REQUIRED PLATFORMS",
        "MAX ARTIFACT SIZE",
        "UPDATER KEY",
    ]);
    for p in products {
        t.row(vec![
            text(&p["slug"]),
            text(&p["name"]),
            list(&p["requiredPlatforms"]),
            p["maxArtifactSize"]
                .as_u64()
                .map(super::files::human_bytes)
                .unwrap_or_else(|| "default".into()),
            if p["updaterPublicKey"].is_string() {
                "set".into()
            } else {
                "-".into()
            },
        ]);
    }
    t
}

async fn product_list(a: ListArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let body = hub
        .get_json("/api/v1/admin/products", "list products")
        .await?;
    if a.out.json {
        println!("{body}");
    } else {
        print!("{}", product_table(array(&body["products"])).render());
    }
    Ok(())
}

async fn pack_create(a: PackCreateArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let mut body = Map::new();
    body.insert("slug".into(), json!(a.slug));
    body.insert("name".into(), json!(a.name.as_deref().unwrap_or(&a.slug)));
    if a.oidc_only {
        body.insert("oidcOnly".into(), json!(true));
    }
    if a.github.given() {
        body.insert("github".into(), a.github.merged(&Value::Null)?);
    }
    let pack = hub
        .call(
            Method::POST,
            "/api/v1/admin/packs",
            Some(&Value::Object(body)),
            &format!("create pack {}", a.slug),
        )
        .await?
        .json();
    print_pack(&pack, a.out.json, "created");
    Ok(())
}

async fn pack_update(a: PackUpdateArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let mut body = Map::new();
    if let Some(name) = a.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(oidc_only) = a.oidc_only {
        body.insert("oidcOnly".into(), json!(oidc_only));
    }
    if a.no_github {
        body.insert("github".into(), Value::Null);
    } else if a.github.given() {
        // The API replaces the publisher whole: start from what the pack has today.
        let packs = hub.get_json("/api/v1/admin/packs", "list packs").await?;
        let current = array(&packs["packs"])
            .iter()
            .find(|p| p["slug"] == a.slug.as_str())
            .map(|p| p["github"].clone())
            .unwrap_or(Value::Null);
        body.insert("github".into(), a.github.merged(&current)?);
    }
    if body.is_empty() {
        return Err(ClientError::Usage(
            "nothing to change: give --name, --oidc-only, --github-… or --no-github".into(),
        ));
    }
    let pack = hub
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/packs/{}", segment(&a.slug)),
            Some(&Value::Object(body)),
            &format!("update pack {}", a.slug),
        )
        .await?
        .json();
    print_pack(&pack, a.out.json, "updated");
    Ok(())
}

fn print_pack(pack: &Value, as_json: bool, done: &str) {
    if as_json {
        println!("{pack}");
        return;
    }
    println!("{done} pack {}", text(&pack["slug"]));
    print!("{}", pack_table(std::slice::from_ref(pack)).render());
}

fn pack_table(packs: &[Value]) -> Table {
    let mut t = Table::new(&["PACK", "NAME", "OIDC ONLY", "TRUSTED PUBLISHER"]);
    for p in packs {
        let g = &p["github"];
        let publisher = if g.is_object() {
            let mut parts = vec![
                format!("repository {}", g["repositoryId"]),
                format!("owner {}", g["repositoryOwnerId"]),
            ];
            for (key, label) in [
                ("workflow", "workflow"),
                ("environment", "environment"),
                ("refPattern", "ref"),
            ] {
                if let Some(v) = g[key].as_str() {
                    parts.push(format!("{label} {v}"));
                }
            }
            format!("{} ({})", text(&g["repository"]), parts.join(", "))
        } else {
            "-".into()
        };
        t.row(vec![
            text(&p["slug"]),
            text(&p["name"]),
            if p["oidcOnly"] == true { "yes" } else { "no" }.into(),
            publisher,
        ]);
    }
    t
}

async fn pack_list(a: ListArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let body = hub.get_json("/api/v1/admin/packs", "list packs").await?;
    if a.out.json {
        println!("{body}");
    } else {
        print!("{}", pack_table(array(&body["packs"])).render());
    }
    Ok(())
}

async fn token_create(a: TokenCreateArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let mut body = Map::new();
    body.insert("name".into(), json!(a.name));
    body.insert("kind".into(), json!(a.kind));
    // Only what was given: the Hub refuses fields a kind does not take, and names them.
    if !a.products.is_empty() {
        body.insert("products".into(), json!(a.products));
    }
    if let Some(pack) = &a.pack {
        body.insert("pack".into(), json!(pack));
    }
    if !a.scopes.is_empty() {
        body.insert("scopes".into(), json!(a.scopes));
    }
    if !a.channels.is_empty() {
        body.insert("channels".into(), json!(a.channels));
    }
    if let Some(days) = a.expires_in_days {
        body.insert("expiresInDays".into(), json!(days));
    }
    let created = hub
        .call(
            Method::POST,
            "/api/v1/admin/tokens",
            Some(&Value::Object(body)),
            &format!("create {} token {:?}", a.kind, a.name),
        )
        .await?
        .json();
    let Some(secret) = created["token"].as_str() else {
        return Err(ClientError::Transport(
            "the Hub's answer holds no token".into(),
        ));
    };
    eprintln!(
        "created {} token {} ({}): {}; it is shown only once:",
        text(&created["kind"]),
        text(&created["id"]),
        text(&created["name"]),
        powers(&created, a.pack.as_deref()),
    );
    println!("{secret}");
    Ok(())
}

/// What a token may do, in a sentence.
fn powers(t: &Value, pack: Option<&str>) -> String {
    let expiry = match t["expiresAt"].as_str() {
        Some(at) => format!("expires {at}"),
        None => "never expires".into(),
    };
    match t["kind"].as_str() {
        Some("app") => format!(
            "{} on products {} (channels {}), {expiry}",
            list(&t["scopes"]),
            list(&t["products"]),
            list(&t["channels"])
        ),
        Some("pack") => format!(
            "deploys pack {}, {expiry}",
            t["pack"].as_str().or(pack).unwrap_or("?")
        ),
        _ => format!("every admin and CI action, {expiry}"),
    }
}

async fn token_list(a: ListArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    let body = hub.get_json("/api/v1/admin/tokens", "list tokens").await?;
    if a.out.json {
        println!("{body}");
        return Ok(());
    }
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "KIND",
        "CAN",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "REVOKED",
    ]);
    for tok in array(&body["tokens"]) {
        let can = match tok["kind"].as_str() {
            Some("app") => format!(
                "{} on {} ({})",
                list(&tok["scopes"]),
                list(&tok["products"]),
                list(&tok["channels"])
            ),
            Some("pack") => format!("deploy {}", text(&tok["pack"])),
            _ => "everything".into(),
        };
        let date = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        t.row(vec![
            text(&tok["id"]),
            text(&tok["name"]),
            text(&tok["kind"]),
            can,
            date(&tok["createdAt"]),
            date(&tok["lastUsedAt"]),
            date(&tok["expiresAt"]),
            date(&tok["revokedAt"]),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

async fn token_revoke(a: TokenRevokeArgs) -> Result<(), ClientError> {
    let hub = a.admin.hub()?;
    hub.call(
        Method::DELETE,
        &format!("/api/v1/admin/tokens/{}", segment(&a.id)),
        None,
        &format!("revoke token {}", a.id),
    )
    .await?;
    println!("revoked token {}", a.id);
    Ok(())
}

async fn audit_pages(a: AuditArgs) -> Result<(), ClientError> {
    if !(1..=100).contains(&a.limit) {
        return Err(ClientError::Usage(format!(
            "--limit {}: give a number from 1 to 100",
            a.limit
        )));
    }
    // The Hub checks the filters and names the one it refuses; the cursor it returns
    // continues the same filtered list, so every page is asked with the same filters.
    let filters: Vec<(&str, String)> = a
        .filters()
        .into_iter()
        .map(|(name, value)| (name, value.to_owned()))
        .collect();
    let hub = a.admin.hub()?;
    let mut cursor = a.cursor.clone();
    let mut entries = Vec::new();
    let next = loop {
        let mut path = format!("/api/v1/admin/audit?limit={}", a.limit);
        for (name, value) in &filters {
            path.push_str(&format!("&{name}={}", segment(value)));
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", segment(c)));
        }
        let page = hub.get_json(&path, "read the audit log").await?;
        entries.extend(array(&page["entries"]).iter().cloned());
        let next = page["nextCursor"].as_str().map(str::to_owned);
        match next {
            Some(n) if a.all => cursor = Some(n),
            other => break other,
        }
    };
    if a.out.json {
        println!("{}", json!({"entries": entries, "nextCursor": next}));
        return Ok(());
    }
    let mut t = Table::new(&["ID", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"]);
    for e in &entries {
        let mut detail = e["detail"].to_string();
        if detail.chars().count() > 80 {
            detail = detail.chars().take(79).collect::<String>() + "…";
        }
        t.row(vec![
            e["id"].to_string(),
            text(&e["at"]),
            text(&e["actor"]),
            text(&e["action"]),
            text(&e["subject"]),
            detail,
        ]);
    }
    print!("{}", t.render());
    if let Some(n) = next {
        let mut again = String::from("atlas-hub admin audit");
        for (name, value) in &filters {
            again.push_str(&format!(" --{name} {}", shell_word(value)));
        }
        println!("next: {again} --cursor {n}");
    }
    Ok(())
}

/// `s` as one word a POSIX shell reads back as `s`: as it is when it holds nothing the shell
/// treats specially, else single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'@' | b'/')
        });
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A JSON value as table text (strings without quotes; absent as `-`).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A JSON array of strings as `a, b` (`-` when empty).
fn list(v: &Value) -> String {
    let items: Vec<String> = array(v).iter().map(text).collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Characters a path segment or query value keeps as they are (RFC 3986 unreserved).
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A value as one percent-encoded path segment: a slug or id typed by hand never changes
/// which route is asked.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}
