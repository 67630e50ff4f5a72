//! One typed configuration, read from the environment once per instance.
//!
//! Reading it never touches the network: it only parses strings. Every problem is
//! collected so a bad deployment fails at start with one message naming each variable.

pub mod blob;
mod limits;
mod signin;

pub use limits::{Limits, Rate};
pub use signin::{GithubSignin, MicrosoftSignin, OidcSignin, SigninConfig};

use std::fmt;
use std::time::Duration;

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call sites that use it are the only places it appears.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The Hub's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL connection string (TLS when `sslmode=require`).
    pub database_url: Secret,
    /// `ATLAS_DB_POOL_SIZE`: connections per function instance (default 4).
    pub db_pool_size: usize,
    /// `ATLAS_DB_POOLER`: `none` (default) or `transaction` when `DATABASE_URL` goes through
    /// a transaction-mode pooler such as PgBouncer; then no named prepared statements are used.
    pub db_pooler: Pooler,
    /// `ATLAS_HUB_URL`: the public base URL, used in download URLs handed to clients.
    pub hub_url: String,
    /// `ATLAS_STORAGE` and the provider's variables.
    pub storage: StorageConfig,
    /// `ATLAS_TOKEN_PEPPER`: HMAC key for deploy-token digests (at least 32 characters).
    pub token_pepper: Secret,
    /// `ATLAS_OIDC_ISSUER`: GitHub Actions OIDC issuer (tests point it at loopback).
    pub oidc_issuer: String,
    /// `ATLAS_OIDC_AUDIENCE`: the audience pack deploy OIDC tokens must carry.
    pub oidc_audience: Option<String>,
    /// `ATLAS_UPLOAD_URL_TTL_SECS`: lifetime of presigned uploads (default 900 s).
    pub upload_url_ttl: Duration,
    /// `ATLAS_DOWNLOAD_URL_TTL_SECS`: lifetime of presigned downloads (default 300 s).
    pub download_url_ttl: Duration,
    /// `ATLAS_CACHE_S_MAXAGE`: CDN lifetime of public read responses (default 30 s).
    pub cache_s_maxage: u32,
    /// `ATLAS_LIMIT_PRESIGN`, `ATLAS_LIMIT_PUBLISH`, `ATLAS_LIMIT_AUTH_FAILURES`: abuse limits
    /// as `<count>/<period>` (defaults `600/min`, `60/min` per token, `30/min` per address).
    pub limits: Limits,
    /// `ATLAS_LOG`: `info` (default: one line per request) or `debug` (adds the query,
    /// header names with sensitive values redacted, and each problem's detail).
    pub log: LogLevel,
    /// Operator sign-in: the providers that are on and session lifetimes
    /// ([`SigninConfig`]).
    pub signin: SigninConfig,
    /// Usage statistics ([`StatsConfig`]).
    pub stats: StatsConfig,
}

/// Usage statistics.
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// `ATLAS_STATS`: `on` (default) or `off` (nothing recorded; for a benchmark's baseline,
    /// or a deployment that wants none).
    pub on: bool,
    /// `ATLAS_STATS_RETENTION_DAYS`: daily rows kept this long, then pruned (default 400).
    pub retention_days: u32,
    /// `ATLAS_STATS_WRITE_SECS`: a busy instance writes what it recorded at most this often
    /// (default 10; docs/statistics.md says what each write costs).
    pub write_every: std::time::Duration,
    /// `CRON_SECRET`: what Vercel's scheduler sends as its bearer token to the prune route
    /// (Vercel sets and sends it; unset elsewhere, where an admin token is used).
    pub cron_secret: Option<Secret>,
}

/// How much the request log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// One line per request: route, status, latency, code, ids.
    Info,
    /// Also the query and headers (sensitive values redacted) and problem details.
    Debug,
}

/// How statements reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// A direct connection: statements are prepared once per connection and cached.
    None,
    /// A transaction-mode pooler: unnamed statements only (`query_typed`).
    Transaction,
}

/// Object storage settings.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Any S3-compatible API (Cloudflare R2, AWS S3, s3s-fs locally).
    S3(S3Config),
    /// Vercel Blob (`ATLAS_STORAGE=vercel-blob`).
    VercelBlob(BlobConfig),
}

/// Vercel Blob settings.
#[derive(Debug, Clone)]
pub struct BlobConfig {
    /// `BLOB_READ_WRITE_TOKEN`: the store's read-write token. It signs per-artifact client
    /// tokens and authorises metadata lookups; it never leaves the Hub.
    pub read_write_token: Secret,
    /// The store id inside the token (checked against `BLOB_STORE_ID` when that is set).
    pub store_id: String,
    /// `VERCEL_BLOB_API_URL`: the Blob API, as the official SDK reads it (default
    /// `https://vercel.com/api/blob`; tests point it at a local Blob-compatible server).
    pub api_url: String,
    /// `ATLAS_BLOB_PUBLIC_URL`: base of the store's public blob URLs, where downloads are
    /// redirected (default `https://<storeid>.public.blob.vercel-storage.com`).
    pub public_url: String,
}

/// S3-compatible storage settings.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `ATLAS_S3_ENDPOINT`: e.g. `https://<account>.r2.cloudflarestorage.com`; unset for AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// `ATLAS_S3_REGION`: `auto` for R2.
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// `ATLAS_S3_FORCE_PATH_STYLE`: `true` (default when an endpoint is set) or `false`.
    pub force_path_style: bool,
}

/// Every configuration problem found, one per variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `(variable, what is wrong)` pairs.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str("); see .env.example:")?;
        for (var, why) in &self.problems {
            write!(f, "\n  - {var}: {why}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The default GitHub Actions OIDC issuer.
pub const GITHUB_OIDC_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Collects values and problems while reading variables.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<(String, String)>,
}

impl Reader<'_> {
    fn optional(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, var: &str, why: impl Into<String>) {
        self.problems.push((var.to_owned(), why.into()));
    }

    fn required(&mut self, var: &str) -> String {
        match self.optional(var) {
            Some(v) => v,
            None => {
                self.problem(var, "missing");
                String::new()
            }
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
        &mut self,
        var: &str,
        default: T,
        min: T,
        max: T,
    ) -> T {
        let Some(raw) = self.optional(var) else {
            return default;
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            _ => {
                self.problem(
                    var,
                    format!("expected a number from {min} to {max}, got {raw:?}"),
                );
                default
            }
        }
    }

    fn boolean(&mut self, var: &str, default: bool) -> bool {
        match self.optional(var).as_deref() {
            None => default,
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            Some(other) => {
                self.problem(var, format!("expected true or false, got {other:?}"));
                default
            }
        }
    }

    fn rate(&mut self, var: &str, default: Rate) -> Rate {
        let Some(raw) = self.optional(var) else {
            return default;
        };
        Rate::parse(&raw).unwrap_or_else(|| {
            self.problem(
                var,
                format!("expected <count>/<period> such as 600/min, 30/10min or 5/s, got {raw:?}"),
            );
            default
        })
    }

    /// A public base URL the Hub writes into its answers and into the installer script:
    /// `http(s)://host[:port][/path]` and nothing else (no user, query, fragment, space,
    /// quote, `$`, backtick or backslash), so it can never change the meaning of the shell
    /// code or the headers it is pasted into.
    fn base_url(&mut self, var: &str, value: &str) -> String {
        match check_base_url(value) {
            Ok(()) => value.trim_end_matches('/').to_owned(),
            Err(why) => {
                self.problem(
                    var,
                    format!(
                        "expected a plain absolute URL such as https://hub.example.com (scheme, \
                         host, optional port and path): {why}"
                    ),
                );
                String::new()
            }
        }
    }

    fn url(&mut self, var: &str, value: &str) -> String {
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            self.problem(var, format!("expected an http(s) URL, got {value:?}"));
        }
        value.trim_end_matches('/').to_owned()
    }
}

/// Why `value` is not a plain `http(s)://host[:port][/path]` URL.
fn check_base_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("it must start with https:// or http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, None),
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let dns = |h: &str| {
        !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    let ipv6 = |h: &str| {
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    };
    if !(dns(host) || ipv6(host)) {
        return Err(format!("the host {host:?} is not a host name or address"));
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("the port {port:?} is not a port number"));
    }
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'));
    if !path_ok {
        return Err(
            "the path may hold only letters, digits and / - . _ ~ (no query, fragment, space, \
             quote, $ or backtick)"
                .into(),
        );
    }
    Ok(())
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_environment() -> Result<Self, ConfigError> {
        Self::from_lookup(&|var| std::env::var(var).ok())
    }

    /// Reads the configuration through `get`, which returns a variable's value if set.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };

        let database_url = r.required("DATABASE_URL");
        if !database_url.is_empty()
            && let Err(e) = database_url.parse::<tokio_postgres::Config>()
        {
            r.problem(
                "DATABASE_URL",
                format!("not a PostgreSQL connection string ({e})"),
            );
        }
        let db_pool_size = r.number("ATLAS_DB_POOL_SIZE", 4usize, 1, 64);
        let db_pooler = match r.optional("ATLAS_DB_POOLER").as_deref() {
            None | Some("none") => Pooler::None,
            Some("transaction") => Pooler::Transaction,
            Some(other) => {
                r.problem(
                    "ATLAS_DB_POOLER",
                    format!("expected none or transaction, got {other:?}"),
                );
                Pooler::None
            }
        };

        let hub_url = r.required("ATLAS_HUB_URL");
        let hub_url = if hub_url.is_empty() {
            hub_url
        } else {
            r.base_url("ATLAS_HUB_URL", &hub_url)
        };

        let storage = match r.optional("ATLAS_STORAGE").as_deref() {
            None | Some("s3") => StorageConfig::S3(read_s3(&mut r)),
            Some("vercel-blob") => StorageConfig::VercelBlob(read_blob(&mut r)),
            Some(other) => {
                r.problem(
                    "ATLAS_STORAGE",
                    format!("expected s3 or vercel-blob, got {other:?}"),
                );
                StorageConfig::S3(read_s3(&mut r))
            }
        };

        let token_pepper = r.required("ATLAS_TOKEN_PEPPER");
        if !token_pepper.is_empty() && token_pepper.len() < 32 {
            r.problem(
                "ATLAS_TOKEN_PEPPER",
                "too short: use at least 32 random characters (e.g. `openssl rand -hex 32`)",
            );
        }

        let oidc_issuer = r
            .optional("ATLAS_OIDC_ISSUER")
            .unwrap_or_else(|| GITHUB_OIDC_ISSUER.to_owned());
        let oidc_issuer = r.url("ATLAS_OIDC_ISSUER", &oidc_issuer);
        let oidc_audience = r.optional("ATLAS_OIDC_AUDIENCE");

        let upload_url_ttl = r.number("ATLAS_UPLOAD_URL_TTL_SECS", 900u64, 60, 3600);
        let download_url_ttl = r.number("ATLAS_DOWNLOAD_URL_TTL_SECS", 300u64, 10, 3600);
        let cache_s_maxage = r.number("ATLAS_CACHE_S_MAXAGE", 30u32, 0, 86_400);
        let defaults = Limits::default();
        let limits = Limits {
            presign: r.rate("ATLAS_LIMIT_PRESIGN", defaults.presign),
            publish: r.rate("ATLAS_LIMIT_PUBLISH", defaults.publish),
            auth_failures: r.rate("ATLAS_LIMIT_AUTH_FAILURES", defaults.auth_failures),
        };
        let log = match r.optional("ATLAS_LOG").as_deref() {
            None | Some("info") => LogLevel::Info,
            Some("debug") => LogLevel::Debug,
            Some(other) => {
                r.problem(
                    "ATLAS_LOG",
                    format!("expected info or debug, got {other:?}"),
                );
                LogLevel::Info
            }
        };

        let signin = signin::read(&mut r);
        let stats = StatsConfig {
            on: match r.optional("ATLAS_STATS").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    r.problem("ATLAS_STATS", format!("expected on or off, got {other:?}"));
                    true
                }
            },
            retention_days: r.number("ATLAS_STATS_RETENTION_DAYS", 400u32, 7, 3650),
            write_every: std::time::Duration::from_secs(r.number(
                "ATLAS_STATS_WRITE_SECS",
                10u64,
                1,
                300,
            )),
            cron_secret: match r.optional("CRON_SECRET") {
                Some(s) if s.len() < 16 => {
                    r.problem(
                        "CRON_SECRET",
                        "too short: use at least 16 random characters",
                    );
                    None
                }
                other => other.map(Secret::new),
            },
        };

        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Config {
            database_url: Secret(database_url),
            db_pool_size,
            db_pooler,
            hub_url,
            storage,
            token_pepper: Secret(token_pepper),
            oidc_issuer,
            oidc_audience,
            upload_url_ttl: Duration::from_secs(upload_url_ttl),
            download_url_ttl: Duration::from_secs(download_url_ttl),
            cache_s_maxage,
            limits,
            log,
            signin,
            stats,
        })
    }
}

fn read_s3(r: &mut Reader<'_>) -> S3Config {
    let endpoint = r.optional("ATLAS_S3_ENDPOINT");
    let endpoint = endpoint.map(|e| r.url("ATLAS_S3_ENDPOINT", &e));
    let force_path_style = r.boolean("ATLAS_S3_FORCE_PATH_STYLE", endpoint.is_some());
    S3Config {
        bucket: r.required("ATLAS_S3_BUCKET"),
        region: r
            .optional("ATLAS_S3_REGION")
            .unwrap_or_else(|| "auto".to_owned()),
        access_key_id: r.required("ATLAS_S3_ACCESS_KEY_ID"),
        secret_access_key: Secret(r.required("ATLAS_S3_SECRET_ACCESS_KEY")),
        endpoint,
        force_path_style,
    }
}

fn read_blob(r: &mut Reader<'_>) -> BlobConfig {
    const TOKEN: &str = "BLOB_READ_WRITE_TOKEN";
    let read_write_token = r.optional(TOKEN).unwrap_or_default();
    let store_id = if read_write_token.is_empty() {
        r.problem(
            TOKEN,
            "missing: ATLAS_STORAGE=vercel-blob needs the store's read-write token",
        );
        String::new()
    } else {
        match blob::store_id_of_read_write_token(&read_write_token) {
            Ok(id) => id.to_owned(),
            Err(why) => {
                r.problem(TOKEN, why);
                String::new()
            }
        }
    };
    // The official SDK's variable; when set it must name the token's store.
    if let Some(named) = r.optional("BLOB_STORE_ID") {
        let named = named.strip_prefix("store_").unwrap_or(&named).to_owned();
        if !blob::is_store_id(&named) {
            r.problem("BLOB_STORE_ID", "not a store id (letters and digits)");
        } else if !store_id.is_empty() && named != store_id {
            r.problem(
                "BLOB_STORE_ID",
                format!(
                    "unknown store id {named:?}: BLOB_READ_WRITE_TOKEN belongs to store {store_id:?}"
                ),
            );
        }
    }
    let api_url = match r.optional("VERCEL_BLOB_API_URL") {
        Some(u) => r.url("VERCEL_BLOB_API_URL", &u),
        None => blob::DEFAULT_API_URL.to_owned(),
    };
    let public_url = match r.optional("ATLAS_BLOB_PUBLIC_URL") {
        Some(u) => {
            let u = r.url("ATLAS_BLOB_PUBLIC_URL", &u);
            let host = u.split("://").nth(1).unwrap_or("").split('/').next();
            if let Some(named) = host
                .and_then(|h| h.strip_suffix(".public.blob.vercel-storage.com"))
                .filter(|n| !store_id.is_empty() && !n.eq_ignore_ascii_case(&store_id))
            {
                r.problem(
                    "ATLAS_BLOB_PUBLIC_URL",
                    format!(
                        "unknown store id {named:?}: BLOB_READ_WRITE_TOKEN belongs to store {store_id:?}"
                    ),
                );
            }
            u
        }
        None => blob::default_public_url(&store_id),
    };
    BlobConfig {
        read_write_token: Secret(read_write_token),
        store_id,
        api_url,
        public_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&|k| map.get(k).cloned())
    }

    const GOOD: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://atlas@127.0.0.1:5432/atlas"),
        ("ATLAS_HUB_URL", "https://hub.example.com/"),
        ("ATLAS_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("ATLAS_S3_BUCKET", "artifacts"),
        ("ATLAS_S3_ACCESS_KEY_ID", "key"),
        ("ATLAS_S3_SECRET_ACCESS_KEY", "secret"),
        ("ATLAS_TOKEN_PEPPER", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn a_complete_environment_parses_with_defaults() {
        let c = config(GOOD).unwrap();
        assert_eq!(c.hub_url, "https://hub.example.com");
        assert_eq!(c.db_pool_size, 4);
        assert_eq!(c.db_pooler, Pooler::None);
        assert_eq!(c.oidc_issuer, GITHUB_OIDC_ISSUER);
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("s3 is the default storage")
        };
        assert!(s3.force_path_style);
        assert_eq!(s3.region, "auto");
    }

    #[test]
    fn every_bad_variable_is_named_in_one_error() {
        let err = config(&[
            ("DATABASE_URL", "not a url at all ::"),
            ("ATLAS_DB_POOLER", "session"),
            ("ATLAS_TOKEN_PEPPER", "short"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = err.problems.iter().map(|(v, _)| v.as_str()).collect();
        for expected in [
            "DATABASE_URL",
            "ATLAS_DB_POOLER",
            "ATLAS_HUB_URL",
            "ATLAS_S3_BUCKET",
            "ATLAS_S3_ACCESS_KEY_ID",
            "ATLAS_S3_SECRET_ACCESS_KEY",
            "ATLAS_TOKEN_PEPPER",
        ] {
            assert!(vars.contains(&expected), "{expected} not in {vars:?}");
        }
        let message = err.to_string();
        assert!(message.contains("ATLAS_HUB_URL: missing"), "{message}");
    }

    #[test]
    fn the_hub_url_is_a_plain_url_or_the_start_fails() {
        for good in [
            "https://hub.example.com",
            "https://hub.example.com/",
            "http://127.0.0.1:8080",
            "https://example.com/atlas/hub",
            "http://[::1]:8080",
        ] {
            check_base_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "https://hub.example.com/$(touch /tmp/pwned)",
            "https://hub.example.com/`id`",
            "https://hub.example.com/\"; rm -rf ~; \"",
            "https://hub.example.com/'x'",
            "https://hub example.com",
            "https://hub.example.com/a b",
            "https://hub.example.com/?q=1",
            "https://hub.example.com/#x",
            "https://user:pw@hub.example.com",
            "https://hub.example.com:99999",
            "https://hub.example.com\nexport X=1",
            "ftp://hub.example.com",
            "hub.example.com",
            "https://",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad:?} was accepted");
            let mut vars = GOOD.to_vec();
            vars.retain(|(k, _)| *k != "ATLAS_HUB_URL");
            vars.push(("ATLAS_HUB_URL", bad));
            let err = config(&vars).unwrap_err();
            assert!(err.to_string().contains("ATLAS_HUB_URL"), "{err}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = config(GOOD).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
        assert!(!printed.contains("\"secret\""), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    const BLOB_TOKEN: &str = "vercel_blob_rw_AbCd1234EfGh5678_s3cr3tS3cr3tS3cr3tS3cr3t";

    fn blob_env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars: Vec<(&str, &str)> = GOOD
            .iter()
            .filter(|(k, _)| !k.contains("_S3_"))
            .copied()
            .collect();
        vars.push(("ATLAS_STORAGE", "vercel-blob"));
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn vercel_blob_needs_only_its_token_and_defaults_like_the_sdk() {
        let c = config(&blob_env(&[("BLOB_READ_WRITE_TOKEN", BLOB_TOKEN)])).unwrap();
        let StorageConfig::VercelBlob(b) = &c.storage else {
            panic!("expected vercel-blob: {:?}", c.storage)
        };
        assert_eq!(b.store_id, "AbCd1234EfGh5678");
        assert_eq!(b.api_url, "https://vercel.com/api/blob");
        assert_eq!(
            b.public_url,
            "https://abcd1234efgh5678.public.blob.vercel-storage.com"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let c = config(&blob_env(&[
            ("BLOB_READ_WRITE_TOKEN", BLOB_TOKEN),
            ("VERCEL_BLOB_API_URL", "http://127.0.0.1:9/api/blob/"),
            ("ATLAS_BLOB_PUBLIC_URL", "http://127.0.0.1:9/public/"),
            ("BLOB_STORE_ID", "store_AbCd1234EfGh5678"),
        ]))
        .unwrap();
        let StorageConfig::VercelBlob(b) = &c.storage else {
            panic!("expected vercel-blob")
        };
        assert_eq!(b.api_url, "http://127.0.0.1:9/api/blob");
        assert_eq!(b.public_url, "http://127.0.0.1:9/public");
    }

    #[test]
    fn vercel_blob_token_problems_fail_at_start_without_echoing_the_token() {
        let problems = |extra: &[(&'static str, &'static str)]| {
            let err = config(&blob_env(extra)).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("s3cr3t"), "{message}");
            // No S3 variable is required with vercel-blob.
            assert!(!message.contains("_S3_"), "{message}");
            err.problems
        };
        let missing = problems(&[]);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].0, "BLOB_READ_WRITE_TOKEN");
        assert!(missing[0].1.starts_with("missing"), "{missing:?}");

        for bad in [
            "s3cr3t",
            "vercel_blob_rw_s3cr3t",
            "vercel_blob_rw_Ab-Cd_s3cr3t",
            "vercel_blob_client_AbCd_s3cr3t",
        ] {
            let p = problems(&[("BLOB_READ_WRITE_TOKEN", bad)]);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert_eq!(p[0].0, "BLOB_READ_WRITE_TOKEN", "{bad}");
        }

        let p = problems(&[
            ("BLOB_READ_WRITE_TOKEN", BLOB_TOKEN),
            ("BLOB_STORE_ID", "store_SomeOtherStore"),
            (
                "ATLAS_BLOB_PUBLIC_URL",
                "https://otherstore.public.blob.vercel-storage.com",
            ),
            ("VERCEL_BLOB_API_URL", "vercel.com/api/blob"),
        ]);
        let vars: Vec<&str> = p.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(
            vars,
            [
                "BLOB_STORE_ID",
                "VERCEL_BLOB_API_URL",
                "ATLAS_BLOB_PUBLIC_URL"
            ],
            "{p:?}"
        );
        assert!(p[0].1.contains("unknown store id"), "{p:?}");
    }
}
