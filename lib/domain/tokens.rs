//! Deploy tokens: prefixed, 256-bit random, stored only as HMAC-SHA256 digests keyed by
//! `ATLAS_TOKEN_PEPPER`, with scopes, expiry, revocation and `lastUsedAt`.

use std::net::IpAddr;

use hmac::{KeyInit, Mac};
use http::StatusCode;
use rand::Rng;
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::config::{Config, Secret};
use crate::db::Sql;
use crate::domain::limits::AuthGuard;
use crate::domain::sessions::Role;
use crate::error::{ApiError, Code};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// CI publishing of distribution products.
    App,
    /// Deploys of one pack.
    Pack,
    /// Operators: admin routes, and every app action.
    Admin,
}

impl TokenKind {
    /// Parses `app`, `pack` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(TokenKind::App),
            "pack" => Some(TokenKind::Pack),
            "admin" => Some(TokenKind::Admin),
            _ => None,
        }
    }
    /// Database and prefix name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::App => "app",
            TokenKind::Pack => "pack",
            TokenKind::Admin => "admin",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::App => "atlas_app_",
            TokenKind::Pack => "atlas_pack_",
            TokenKind::Admin => "atlas_admin_",
        }
    }
}

/// App token actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Presign uploads.
    Upload,
    /// Publish releases.
    Publish,
    /// Move channel pointers.
    Promote,
    /// Yank and unyank releases.
    Yank,
}

impl Scope {
    /// All scopes, in contract order.
    pub const ALL: [Scope; 4] = [Scope::Upload, Scope::Publish, Scope::Promote, Scope::Yank];

    /// Parses a scope name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Upload => "upload",
            Scope::Publish => "publish",
            Scope::Promote => "promote",
            Scope::Yank => "yank",
        }
    }
}

/// A freshly generated token: the plaintext exists only in this value and the one response.
pub struct NewToken {
    /// The plaintext, shown once.
    pub plaintext: Secret,
    /// Its digest, which is what gets stored.
    pub digest: Vec<u8>,
}

/// Generates a token of `kind`: prefix + 43 alphanumeric characters (≥ 256 bits).
pub fn generate(kind: TokenKind, pepper: &Secret) -> NewToken {
    let plaintext = format!("{}{}", kind.prefix(), random_secret());
    let digest = digest(pepper, &plaintext);
    NewToken {
        plaintext: Secret::new(plaintext),
        digest,
    }
}

/// 43 random alphanumeric characters (≥ 256 bits): the secret part of tokens and session
/// cookies.
pub fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..43)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// HMAC-SHA256(pepper, token).
pub fn digest(pepper: &Secret, token: &str) -> Vec<u8> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(pepper.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time equality of two digests.
fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What authenticated a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A deploy or admin token.
    Token(Uuid),
    /// An operator's session, with the role its access rules give it now.
    Session(Uuid, Role),
}

/// An authenticated caller: a token's holder, or a signed-in operator acting with what
/// their role allows (an admin as an admin token; a releaser as an app token that may
/// promote and yank on the rule's products; a viewer as one that may do nothing but read).
#[derive(Debug, Clone)]
pub struct Principal {
    pub credential: Credential,
    /// The token's name, or the person (`github:octocat`).
    pub name: String,
    pub kind: TokenKind,
    /// Product slugs, or `*`.
    pub products: Vec<String>,
    /// The pack a pack token belongs to.
    pub pack_id: Option<i64>,
    pub scopes: Vec<String>,
    /// Channels, or `*`.
    pub channels: Vec<String>,
}

impl Principal {
    /// How audit rows name this caller: the token, or the person.
    pub fn actor(&self) -> String {
        match self.credential {
            Credential::Token(id) => format!("token:{} ({id})", self.name),
            Credential::Session(..) => self.name.clone(),
        }
    }

    /// The token's id, when a token authenticated the request.
    pub fn token_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Token(id) => Some(id),
            Credential::Session(..) => None,
        }
    }

    /// What the request log and per-caller limits key on: the token id, or `session:<id>`.
    pub fn key(&self) -> String {
        match self.credential {
            Credential::Token(id) => id.to_string(),
            Credential::Session(id, _) => format!("session:{id}"),
        }
    }

    /// How refusals name this caller: `token "ci"`, or `github:octocat (viewer)`.
    fn who(&self) -> String {
        match self.credential {
            Credential::Token(_) => format!("token {:?}", self.name),
            Credential::Session(_, role) => format!("{} ({})", self.name, role.as_str()),
        }
    }

    /// 403 unless this is an admin token or an admin's session.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match (self.kind, self.credential) {
            (TokenKind::Admin, _) => Ok(()),
            (_, Credential::Session(..)) => Err(scope_denied(format!(
                "this needs the admin role; {} is not an admin",
                self.who()
            ))),
            _ => Err(scope_denied(format!(
                "this route needs an admin token; token {:?} is an {} token",
                self.name,
                self.kind.as_str()
            ))),
        }
    }

    /// 403 unless this caller may read what admins read: an admin token, or any signed-in
    /// operator (viewers included).
    pub fn require_reader(&self) -> Result<(), ApiError> {
        match self.credential {
            Credential::Session(..) => Ok(()),
            Credential::Token(_) => self.require_admin(),
        }
    }

    /// 403 unless this token may do `scope` on `product` (and `channel`, when given).
    /// Admin tokens may do every app action.
    pub fn require_app(
        &self,
        product: &str,
        scope: Scope,
        channel: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.kind == TokenKind::Admin {
            return Ok(());
        }
        if self.kind != TokenKind::App {
            return Err(scope_denied(format!(
                "token {:?} is a {} token; product routes need an app deploy token",
                self.name,
                self.kind.as_str()
            )));
        }
        let who = self.who();
        let allows = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        if !allows(&self.products, product) {
            return Err(scope_denied(format!(
                "{who} is not scoped to product {product:?}"
            )));
        }
        if !self.scopes.iter().any(|s| s == scope.as_str()) {
            return Err(scope_denied(format!(
                "{who} lacks the {:?} scope",
                scope.as_str()
            )));
        }
        if let Some(channel) = channel
            && !allows(&self.channels, channel)
        {
            return Err(scope_denied(format!(
                "{who} may not change channel {channel:?}"
            )));
        }
        Ok(())
    }
}

pub fn scope_denied(detail: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, Code::ScopeDenied, detail)
}

fn unauthorized(code: Code, detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
}

/// The bearer token of an `Authorization` header, or 401 `token_missing`.
pub fn bearer(authorization: Option<&str>) -> Result<&str, ApiError> {
    let header = authorization.ok_or_else(|| {
        unauthorized(
            Code::TokenMissing,
            "this route needs `Authorization: Bearer <token>` (CI: set ATLAS_APP_DEPLOY_TOKEN)",
        )
    })?;
    parse_bearer(header)
}

/// The token of an `Authorization` value: `Bearer <token>`, the scheme in any case
/// (RFC 9110 §11.1), or 401 `token_missing`.
pub fn parse_bearer(header: &str) -> Result<&str, ApiError> {
    header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthorized(
                Code::TokenMissing,
                "the Authorization header must be `Bearer <token>`",
            )
        })
}

/// Whether `token` looks like a token this Hub issues (a known prefix, at most 200
/// characters): anything else is refused without a database lookup.
pub fn plausible(token: &str) -> bool {
    token.len() <= 200
        && [TokenKind::App, TokenKind::Pack, TokenKind::Admin]
            .iter()
            .any(|k| token.starts_with(k.prefix()))
}

/// A valid token (not revoked, not expired) presented from an address that is not blocked
/// (`$2`, `$3`: [`AuthGuard`]). `lastUsedAt` is refreshed only when older than a minute: a
/// token in steady use costs no write, and so no WAL flush at commit (which would double the
/// statement's time: 0.21 against 0.10 ms measured with pgbench).
const LOOKUP_SQL: &str = "WITH t AS (
        SELECT id, name, kind, products, pack_id, scopes, channels, digest, last_used_at
        FROM deploy_tokens
        WHERE digest = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
          AND NOT EXISTS (SELECT 1 FROM rate_limits
                          WHERE key = $2 AND tat > now() + make_interval(secs => $3))
    ), touched AS (
        UPDATE deploy_tokens d SET last_used_at = now() FROM t
        WHERE d.id = t.id
          AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
    )
    SELECT id, name, kind, products, pack_id, scopes, channels, digest FROM t";

/// Authenticates a token: one round trip for a valid token (lookup + `lastUsedAt`, to the
/// minute), and a second only to count the failure against the client's address and say why
/// it failed.
/// While the address is over its failed-authentication limit, every token is refused 429.
pub async fn authenticate(
    db: &impl Sql,
    pepper: &Secret,
    guard: &AuthGuard,
    token: &str,
) -> Result<Principal, ApiError> {
    if !plausible(token) {
        if let Some(blocked) = guard.failed(db).await? {
            return Err(blocked);
        }
        return Err(unauthorized(
            Code::TokenInvalid,
            "the token is not an Atlas deploy token",
        ));
    }
    let d = digest(pepper, token);
    let row = db
        .query_opt(
            LOOKUP_SQL,
            &[
                (&d, Type::BYTEA),
                (&guard.key(), Type::TEXT),
                (&guard.block_threshold_secs(), Type::FLOAT8),
            ],
        )
        .await?;
    if let Some(row) = row {
        let stored: Vec<u8> = row.get("digest");
        if digests_equal(&stored, &d) {
            let kind: String = row.get("kind");
            return Ok(Principal {
                credential: Credential::Token(row.get("id")),
                name: row.get("name"),
                kind: TokenKind::parse(&kind).unwrap_or(TokenKind::App),
                products: row.get("products"),
                pack_id: row.get("pack_id"),
                scopes: row.get("scopes"),
                channels: row.get("channels"),
            });
        }
    }
    if let Some(blocked) = guard.failed(db).await? {
        return Err(blocked);
    }
    let why = db
        .query_opt(
            "SELECT revoked_at IS NOT NULL AS revoked, coalesce(expires_at <= now(), false) AS expired
             FROM deploy_tokens WHERE digest = $1",
            &[(&d, Type::BYTEA)],
        )
        .await?;
    Err(match why {
        None => unauthorized(Code::TokenInvalid, "the token is not known to this Hub"),
        Some(r) if r.get::<_, bool>("revoked") => unauthorized(
            Code::TokenRevoked,
            "the token was revoked; ask an admin for a new one and update the CI secret",
        ),
        Some(r) if r.get::<_, bool>("expired") => unauthorized(
            Code::TokenExpired,
            "the token has expired; ask an admin for a new one and update the CI secret",
        ),
        // A valid token refused while its address was blocked, the block ending since.
        Some(_) => guard.blocked_error(1.0),
    })
}

/// Authenticates a token presented from `client_ip` (failures count against the address).
pub async fn authenticate_token(
    db: &impl Sql,
    config: &Config,
    token: &str,
    client_ip: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let guard = AuthGuard::for_client(client_ip, config.limits.auth_failures);
    authenticate(db, &config.token_pepper, &guard, token.trim()).await
}

/// Authenticates the bearer token of an `Authorization` header (401 `token_missing`
/// without one).
pub async fn authenticate_bearer(
    db: &impl Sql,
    config: &Config,
    authorization: Option<&str>,
    client_ip: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    authenticate_token(db, config, bearer(authorization)?, client_ip).await
}

/// What to store for a new token.
pub struct TokenSpec {
    pub name: String,
    pub kind: TokenKind,
    /// Products or `*`.
    pub products: Vec<String>,
    /// Pack (pack tokens).
    pub pack_id: Option<i64>,
    pub scopes: Vec<String>,
    /// Channels or `*`.
    pub channels: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub created_by: String,
}

/// Stores a new token and returns its id and plaintext.
pub async fn create(
    db: &impl Sql,
    pepper: &Secret,
    spec: &TokenSpec,
) -> Result<(Uuid, Secret), ApiError> {
    let token = generate(spec.kind, pepper);
    let id = Uuid::new_v4();
    db.query(
        "INSERT INTO deploy_tokens (id, kind, name, digest, products, pack_id, scopes, channels, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            (&id, Type::UUID),
            (&spec.kind.as_str(), Type::TEXT),
            (&spec.name, Type::TEXT),
            (&token.digest, Type::BYTEA),
            (&spec.products, Type::TEXT_ARRAY),
            (&spec.pack_id, Type::INT8),
            (&spec.scopes, Type::TEXT_ARRAY),
            (&spec.channels, Type::TEXT_ARRAY),
            (&spec.expires_at, Type::TIMESTAMPTZ),
            (&spec.created_by, Type::TEXT),
        ],
    )
    .await?;
    Ok((id, token.plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_distinct() {
        let pepper = Secret::new("p".repeat(32));
        let a = generate(TokenKind::App, &pepper);
        let b = generate(TokenKind::App, &pepper);
        assert!(a.plaintext.expose().starts_with("atlas_app_"));
        assert_eq!(a.plaintext.expose().len(), "atlas_app_".len() + 43);
        assert_ne!(a.plaintext.expose(), b.plaintext.expose());
        assert_eq!(a.digest, digest(&pepper, a.plaintext.expose()));
        assert!(format!("{:?}", a.plaintext).contains("redacted"));
    }

    #[test]
    fn digests_depend_on_the_pepper() {
        let t = "atlas_app_x";
        assert_ne!(
            digest(&Secret::new("a".repeat(32)), t),
            digest(&Secret::new("b".repeat(32)), t)
        );
        assert!(digests_equal(&[1, 2], &[1, 2]));
        assert!(!digests_equal(&[1, 2], &[1, 3]));
        assert!(!digests_equal(&[1, 2], &[1]));
    }

    fn app(products: &[&str], scopes: &[&str], channels: &[&str]) -> Principal {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Principal {
            credential: Credential::Token(Uuid::nil()),
            name: "ci".into(),
            kind: TokenKind::App,
            products: v(products),
            pack_id: None,
            scopes: v(scopes),
            channels: v(channels),
        }
    }

    #[test]
    fn app_scopes_check_product_action_and_channel() {
        let p = app(&["launcher"], &["publish"], &["dev", "beta"]);
        assert!(
            p.require_app("launcher", Scope::Publish, Some("beta"))
                .is_ok()
        );
        assert!(p.require_app("launcher", Scope::Publish, None).is_ok());
        assert_eq!(
            p.require_app("runner", Scope::Publish, None)
                .unwrap_err()
                .code,
            "scope_denied"
        );
        assert_eq!(
            p.require_app("launcher", Scope::Promote, None)
                .unwrap_err()
                .code,
            "scope_denied"
        );
        assert_eq!(
            p.require_app("launcher", Scope::Publish, Some("stable"))
                .unwrap_err()
                .code,
            "scope_denied"
        );
        let all = app(&["*"], &["publish"], &["*"]);
        assert!(
            all.require_app("anything", Scope::Publish, Some("stable"))
                .is_ok()
        );
        assert!(all.require_admin().is_err());
    }
}

/// Properties of reading credentials from requests.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{hostile_string, refusal};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn bearer_values_give_their_token_whatever_the_scheme_case(
            scheme in "[bB][eE][aA][rR][eE][rR]", token in "[!-~]{1,80}", pad in " {0,3}"
        ) {
            let header = format!("{scheme} {pad}{token}{pad}");
            prop_assert_eq!(parse_bearer(&header).unwrap(), token.as_str());
        }

        #[test]
        fn any_authorization_value_gives_a_token_or_token_missing(s in hostile_string(80)) {
            match parse_bearer(&s) {
                Ok(t) => {
                    prop_assert!(!t.is_empty() && t.trim() == t);
                    prop_assert!(s[..6].eq_ignore_ascii_case("bearer"));
                }
                Err(e) => prop_assert_eq!(refusal(&e), (401, "token_missing")),
            }
        }

        #[test]
        fn issued_tokens_are_plausible_and_others_are_not(kind in 0usize..3, junk in hostile_string(60)) {
            let kind = [TokenKind::App, TokenKind::Pack, TokenKind::Admin][kind];
            let pepper = Secret::new("p".repeat(32));
            let token = generate(kind, &pepper);
            let plaintext = token.plaintext.expose();
            prop_assert!(plausible(plaintext));
            prop_assert_eq!(TokenKind::parse(kind.as_str()), Some(kind));
            prop_assert!(plaintext[kind.prefix().len()..].bytes().all(|b| b.is_ascii_alphanumeric()));
            prop_assert_eq!(token.digest, digest(&pepper, plaintext));
            // No known prefix, or longer than any token: refused before any lookup.
            prop_assert_eq!(plausible(&junk), junk.len() <= 200 && junk.starts_with("atlas_")
                && ["atlas_app_", "atlas_pack_", "atlas_admin_"].iter().any(|p| junk.starts_with(p)));
            let too_long = format!("{plaintext}{}", "x".repeat(200));
            prop_assert!(!plausible(&too_long));
        }

        #[test]
        fn scopes_and_kinds_parse_only_their_names(s in prop_oneof![hostile_string(10),
            prop::sample::select(vec!["upload", "publish", "promote", "yank", "app", "pack", "admin", "Admin", "*"]).prop_map(String::from)]) {
            if let Some(scope) = Scope::parse(&s) {
                prop_assert_eq!(scope.as_str(), s.as_str());
            }
            if let Some(kind) = TokenKind::parse(&s) {
                prop_assert_eq!(kind.as_str(), s.as_str());
            }
        }
    }
}

impl From<&Principal> for crate::domain::audit::Actor {
    fn from(p: &Principal) -> Self {
        crate::domain::audit::Actor {
            name: p.actor(),
            token_id: p.token_id(),
        }
    }
}

/// A token as listed: never its secret (nor its digest).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TokenInfo)]
pub struct Listed {
    pub id: Uuid,
    pub name: String,
    /// `app`, `pack` or `admin`.
    pub kind: String,
    /// Product slugs or `*`.
    pub products: Vec<String>,
    /// Pack slug (pack tokens).
    pub pack: Option<String>,
    pub scopes: Vec<String>,
    /// Channels or `*`.
    pub channels: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When the token last authenticated a request, to the minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// Every token, newest first.
pub async fn list(db: &impl Sql) -> Result<Vec<Listed>, ApiError> {
    let rows = db
        .query(
            "SELECT t.id, t.name, t.kind, t.products, p.slug AS pack, t.scopes, t.channels, t.created_at,
                    t.created_by, t.expires_at, t.revoked_at, t.last_used_at
             FROM deploy_tokens t LEFT JOIN packs p ON p.id = t.pack_id ORDER BY t.created_at DESC",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            id: r.get("id"),
            name: r.get("name"),
            kind: r.get("kind"),
            products: r.get("products"),
            pack: r.get("pack"),
            scopes: r.get("scopes"),
            channels: r.get("channels"),
            created_at: r.get("created_at"),
            created_by: r.get("created_by"),
            expires_at: r.get("expires_at"),
            revoked_at: r.get("revoked_at"),
            last_used_at: r.get("last_used_at"),
        })
        .collect())
}

/// Revokes token `id` (keeping the first revocation time); its name, or `None` when there
/// is no such token.
pub async fn revoke(db: &impl Sql, id: Uuid) -> Result<Option<String>, ApiError> {
    Ok(db
        .query_opt(
            "UPDATE deploy_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING name",
            &[(&id, Type::UUID)],
        )
        .await?
        .map(|r| r.get(0)))
}
