//! Operators who sign in: the access rules that grant them a role, and their sessions.
//!
//! A session is a random 256-bit id in the operator's cookie; the database keeps only its
//! HMAC-SHA256 digest under `ATLAS_TOKEN_PEPPER`, like deploy tokens. A session carries the
//! claims its sign-in established (`github_user:octocat`, `github_org:acme`, …) and no role:
//! the role is read from the rules each time the session is used, so removing a rule ends
//! the access it gave at once. Nobody whose claims match no rule gets a session.

use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::config::{Secret, SigninConfig};
use crate::db::Sql;
use crate::domain::tokens::{self, Credential, Principal, Scope, TokenKind};
use crate::error::{ApiError, Code};

/// What an operator may do, weakest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything an admin reads.
    Viewer,
    /// Also promotes, rolls back, changes rollouts and yanks (on the rule's products).
    Releaser,
    /// Everything, tokens and rules included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Releaser, Role::Admin];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Releaser => "releaser",
            Role::Admin => "admin",
        }
    }
}

/// What a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A GitHub login.
    GithubUser,
    /// Members of a GitHub organization.
    GithubOrg,
    /// Members of a GitHub team, `org/team-slug`.
    GithubTeam,
    /// Anyone of a Microsoft Entra tenant (its id).
    MicrosoftTenant,
    /// Members of an Entra group, `tenant-id/group-id`.
    MicrosoftGroup,
    /// One OpenID Connect subject, `issuer subject`.
    OidcSubject,
    /// A verified e-mail address from an OpenID provider.
    OidcEmail,
    /// The developer sign-in of `atlas-hub serve` (no deployed function offers it).
    LocalUser,
}

impl RuleKind {
    pub const ALL: [RuleKind; 8] = [
        RuleKind::GithubUser,
        RuleKind::GithubOrg,
        RuleKind::GithubTeam,
        RuleKind::MicrosoftTenant,
        RuleKind::MicrosoftGroup,
        RuleKind::OidcSubject,
        RuleKind::OidcEmail,
        RuleKind::LocalUser,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::GithubUser => "github_user",
            RuleKind::GithubOrg => "github_org",
            RuleKind::GithubTeam => "github_team",
            RuleKind::MicrosoftTenant => "microsoft_tenant",
            RuleKind::MicrosoftGroup => "microsoft_group",
            RuleKind::OidcSubject => "oidc_subject",
            RuleKind::OidcEmail => "oidc_email",
            RuleKind::LocalUser => "local_user",
        }
    }

    /// `value` as rules store it and claims spell it, or why it cannot name anything of
    /// this kind. GitHub names, Entra ids and e-mail addresses compare without case; an
    /// OIDC subject is exact (RFC: `sub` is case-sensitive).
    pub fn normalize(self, value: &str) -> Result<String, String> {
        let v = value.trim();
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 300
                && s.chars().all(|c| !c.is_control() && !c.is_whitespace())
        };
        let ok = match self {
            RuleKind::GithubUser
            | RuleKind::GithubOrg
            | RuleKind::MicrosoftTenant
            | RuleKind::LocalUser => plain(v) && !v.contains('/'),
            RuleKind::GithubTeam | RuleKind::MicrosoftGroup => v
                .split_once('/')
                .is_some_and(|(a, b)| plain(a) && plain(b) && !b.contains('/')),
            RuleKind::OidcEmail => v
                .split_once('@')
                .is_some_and(|(a, b)| plain(a) && plain(b) && !b.contains('@')),
            RuleKind::OidcSubject => v.split_once(' ').is_some_and(|(a, b)| plain(a) && plain(b)),
        };
        if !ok {
            return Err(format!("{v:?} is not a valid {} value", self.as_str()));
        }
        Ok(match self {
            RuleKind::OidcSubject => v.to_owned(),
            _ => v.to_lowercase(),
        })
    }

    /// The claim a person with `value` holds (`github_user:octocat`).
    pub fn claim(self, value: &str) -> Result<String, String> {
        Ok(format!("{}:{}", self.as_str(), self.normalize(value)?))
    }
}

/// One access rule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AccessRule)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: i64,
    pub kind: RuleKind,
    pub value: String,
    pub role: Role,
    /// Products a releaser may move, or `*`.
    pub products: Vec<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Adds a rule (or returns the id of the same rule already there).
pub async fn grant(
    db: &impl Sql,
    kind: RuleKind,
    value: &str,
    role: Role,
    products: &[String],
    created_by: &str,
) -> Result<i64, ApiError> {
    let value = kind.normalize(value).map_err(ApiError::invalid)?;
    let products: Vec<String> = if products.is_empty() {
        vec!["*".to_owned()]
    } else {
        products.to_vec()
    };
    let row = db
        .query_one(
            "INSERT INTO access_rules (kind, value, role, products, created_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, value, role) DO UPDATE SET products = EXCLUDED.products
             RETURNING id",
            &[
                (&kind.as_str(), Type::TEXT),
                (&value, Type::TEXT),
                (&role.as_str(), Type::TEXT),
                (&products, Type::TEXT_ARRAY),
                (&created_by, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.get("id"))
}

/// Every rule, oldest first.
pub async fn rules(db: &impl Sql) -> Result<Vec<Rule>, ApiError> {
    let rows = db
        .query(
            "SELECT id, kind, value, role, products, created_by, created_at
             FROM access_rules ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Rule {
                id: r.get("id"),
                kind: RuleKind::parse(r.get("kind"))?,
                value: r.get("value"),
                role: Role::parse(r.get("role"))?,
                products: r.get("products"),
                created_by: r.get("created_by"),
                created_at: r.get("created_at"),
            })
        })
        .collect())
}

/// Removes a rule; whether it existed.
pub async fn revoke_rule(db: &impl Sql, id: i64) -> Result<bool, ApiError> {
    Ok(db
        .query_opt(
            "DELETE FROM access_rules WHERE id = $1 RETURNING id",
            &[(&id, Type::INT8)],
        )
        .await?
        .is_some())
}

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Unused for this long, a session ends.
    pub idle: Duration,
    /// However used, a session ends this long after sign-in.
    pub absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            idle: Duration::from_secs(8 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl From<&SigninConfig> for Lifetimes {
    fn from(c: &SigninConfig) -> Self {
        Lifetimes {
            idle: c.idle,
            absolute: c.absolute,
        }
    }
}

/// How often a session's provider claims (GitHub organization and team memberships) are
/// read again from the provider.
pub const RECHECK: Duration = Duration::from_secs(15 * 60);

/// A signed-in operator, as a request sees them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operator {
    pub session_id: Uuid,
    /// Who, as the audit log names them (`github:octocat`).
    pub person: String,
    pub role: Role,
    /// Products a releaser may move, or `*`.
    pub products: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Operator {
    /// What this operator may do, as the routes check it: an admin as an admin token, a
    /// releaser as an app token that may promote and yank on the rules' products (any
    /// channel), a viewer as one that may do nothing but read.
    pub fn principal(&self) -> Principal {
        let (kind, scopes) = match self.role {
            Role::Admin => (TokenKind::Admin, Vec::new()),
            Role::Releaser => (
                TokenKind::App,
                [Scope::Promote, Scope::Yank]
                    .map(|s| s.as_str().to_owned())
                    .to_vec(),
            ),
            Role::Viewer => (TokenKind::App, Vec::new()),
        };
        Principal {
            credential: Credential::Session(self.session_id, self.role),
            name: self.person.clone(),
            kind,
            products: self.products.clone(),
            pack_id: None,
            scopes,
            channels: vec!["*".to_owned()],
        }
    }
}

/// Where a session came from, and what its re-check needs.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The provider's id (`github`, `microsoft`, `oidc`, `local`).
    pub provider: String,
    /// The provider's access token, sealed, for re-checks.
    pub sealed_token: Option<Vec<u8>>,
    /// The browser's `User-Agent`, shown in session lists (cut to 300 characters).
    pub user_agent: Option<String>,
}

/// The strongest role the rules give someone holding the claims `$claims` (an SQL
/// expression), with the products of the rules giving it: one statement text for sign-in
/// and for every use of a session.
macro_rules! role_of {
    ($claims:literal) => {
        concat!(
            "SELECT role, array_agg(DISTINCT p) AS products
             FROM access_rules, unnest(products) AS p
             WHERE kind || ':' || value = ANY(",
            $claims,
            ")
             GROUP BY role
             ORDER BY CASE role WHEN 'admin' THEN 3 WHEN 'releaser' THEN 2 ELSE 1 END DESC
             LIMIT 1"
        )
    };
}

/// A new session for `person` holding `claims`, or 403 when no rule grants them a role.
/// Returns the session and the cookie value, which exists only here and in the response
/// that sets it (a new one at every sign-in: a session id is never chosen by the client).
pub async fn start(
    db: &impl Sql,
    pepper: &Secret,
    person: &str,
    claims: &[String],
    origin: &Origin,
    lifetimes: Lifetimes,
) -> Result<(Operator, Secret), ApiError> {
    let Some(role) = db
        .query_opt(role_of!("$1"), &[(&claims, Type::TEXT_ARRAY)])
        .await?
    else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::ScopeDenied,
            format!("no access rule grants {person} a role on this Hub; ask an admin for one"),
        ));
    };
    let cookie = tokens::random_secret();
    let id = Uuid::new_v4();
    let expires_at = OffsetDateTime::now_utc() + lifetimes.absolute;
    let user_agent: Option<String> = origin
        .user_agent
        .as_deref()
        .map(|ua| ua.chars().filter(|c| !c.is_control()).take(300).collect());
    db.query(
        "INSERT INTO operator_sessions
            (id, digest, person, claims, expires_at, provider, provider_token, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            (&id, Type::UUID),
            (&tokens::digest(pepper, &cookie), Type::BYTEA),
            (&person, Type::TEXT),
            (&claims, Type::TEXT_ARRAY),
            (&expires_at, Type::TIMESTAMPTZ),
            (&origin.provider, Type::TEXT),
            (&origin.sealed_token, Type::BYTEA),
            (&user_agent, Type::TEXT),
        ],
    )
    .await?;
    let operator = Operator {
        session_id: id,
        person: person.to_owned(),
        role: Role::parse(role.get("role")).unwrap_or(Role::Viewer),
        products: role.get("products"),
        expires_at,
    };
    Ok((operator, Secret::new(cookie)))
}

/// The session of a cookie value, if it is live (not past its absolute expiry, used within
/// the idle time) and its claims still match a rule. `lastSeenAt` is refreshed only when
/// older than a minute, so a session in steady use costs no write.
pub async fn authenticate(
    db: &impl Sql,
    pepper: &Secret,
    cookie: &str,
    lifetimes: Lifetimes,
) -> Result<Option<Operator>, ApiError> {
    Ok(lookup(db, pepper, cookie, lifetimes)
        .await?
        .map(|live| live.operator))
}

/// A live session and what its re-check needs.
#[derive(Debug)]
pub struct Live {
    pub operator: Operator,
    pub provider: String,
    /// The sealed provider token, when the provider's claims must be read again now
    /// (last read more than [`RECHECK`] ago, and the provider keeps a token).
    pub recheck: Option<Vec<u8>>,
}

/// [`authenticate`], with what the caller needs to re-check the session's claims.
pub async fn lookup(
    db: &impl Sql,
    pepper: &Secret,
    cookie: &str,
    lifetimes: Lifetimes,
) -> Result<Option<Live>, ApiError> {
    if cookie.is_empty() || cookie.len() > 200 {
        return Ok(None);
    }
    let idle_secs = lifetimes.idle.as_secs_f64();
    let row = db
        .query_opt(
            concat!(
                "WITH s AS (
                    SELECT id, person, claims, expires_at, last_seen_at, provider,
                           CASE WHEN checked_at < now() - make_interval(secs => $3)
                                THEN provider_token END AS recheck
                    FROM operator_sessions
                    WHERE digest = $1 AND expires_at > now()
                      AND last_seen_at > now() - make_interval(secs => $2)
                ), touched AS (
                    UPDATE operator_sessions o SET last_seen_at = now() FROM s
                    WHERE o.id = s.id AND s.last_seen_at < now() - interval '1 minute'
                )
                SELECT s.id, s.person, s.expires_at, s.provider, s.recheck, r.role, r.products
                FROM s, LATERAL (",
                role_of!("s.claims"),
                ") r"
            ),
            &[
                (&tokens::digest(pepper, cookie), Type::BYTEA),
                (&idle_secs, Type::FLOAT8),
                (&RECHECK.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.map(|r| Live {
        operator: Operator {
            session_id: r.get("id"),
            person: r.get("person"),
            role: Role::parse(r.get("role")).unwrap_or(Role::Viewer),
            products: r.get("products"),
            expires_at: r.get("expires_at"),
        },
        provider: r.get("provider"),
        recheck: r.get("recheck"),
    }))
}

/// Replaces a session's claims with what its provider says now, and marks it checked.
pub async fn set_claims(db: &impl Sql, id: Uuid, claims: &[String]) -> Result<(), ApiError> {
    db.query(
        "UPDATE operator_sessions SET claims = $2, checked_at = now() WHERE id = $1",
        &[(&id, Type::UUID), (&claims, Type::TEXT_ARRAY)],
    )
    .await?;
    Ok(())
}

/// One session as its owner (or an admin) sees it: never the cookie value or its digest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OperatorSession)]
pub struct Listed {
    pub id: Uuid,
    /// Who (`github:octocat`).
    pub person: String,
    /// `github`, `microsoft`, `oidc` or `local`.
    pub provider: String,
    /// The browser it was started from, as it said.
    pub user_agent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// Live sessions, newest first: `person`'s, or everyone's when `None`.
pub async fn list(
    db: &impl Sql,
    person: Option<&str>,
    current: Option<Uuid>,
    lifetimes: Lifetimes,
) -> Result<Vec<Listed>, ApiError> {
    let rows = db
        .query(
            "SELECT id, person, provider, user_agent, created_at, last_seen_at, expires_at
             FROM operator_sessions
             WHERE ($1::text IS NULL OR person = $1) AND expires_at > now()
               AND last_seen_at > now() - make_interval(secs => $2)
             ORDER BY created_at DESC LIMIT 500",
            &[
                (&person, Type::TEXT),
                (&lifetimes.idle.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            id: r.get("id"),
            person: r.get("person"),
            provider: r.get("provider"),
            user_agent: r.get("user_agent"),
            created_at: r.get("created_at"),
            last_seen_at: r.get("last_seen_at"),
            expires_at: r.get("expires_at"),
            current: Some(r.get::<_, Uuid>("id")) == current,
        })
        .collect())
}

/// Ends session `id` (only if it is `person`'s, unless `None`: an admin's revocation);
/// the person whose session ended, if one did.
pub async fn revoke(
    db: &impl Sql,
    id: Uuid,
    person: Option<&str>,
) -> Result<Option<String>, ApiError> {
    Ok(db
        .query_opt(
            "DELETE FROM operator_sessions WHERE id = $1 AND ($2::text IS NULL OR person = $2)
             RETURNING person",
            &[(&id, Type::UUID), (&person, Type::TEXT)],
        )
        .await?
        .map(|r| r.get("person")))
}

/// Ends the session of a cookie value (sign-out); whether there was one.
pub async fn end(db: &impl Sql, pepper: &Secret, cookie: &str) -> Result<bool, ApiError> {
    Ok(db
        .query_opt(
            "DELETE FROM operator_sessions WHERE digest = $1 RETURNING id",
            &[(&tokens::digest(pepper, cookie), Type::BYTEA)],
        )
        .await?
        .is_some())
}

/// The CSRF token of a session: derived from its cookie value (HMAC under the pepper), so
/// it needs no storage and a page of another site, which cannot read the cookie, cannot
/// compute it.
pub fn csrf_token(pepper: &Secret, cookie: &str) -> String {
    hex::encode(tokens::digest(pepper, &format!("csrf\0{cookie}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_values_normalize_as_claims_spell_them() {
        assert_eq!(
            RuleKind::GithubUser.claim(" OctoCat ").unwrap(),
            "github_user:octocat"
        );
        assert_eq!(
            RuleKind::GithubTeam.claim("Acme/Release-Ops").unwrap(),
            "github_team:acme/release-ops"
        );
        assert_eq!(
            RuleKind::OidcSubject
                .claim("https://idp.example Abc")
                .unwrap(),
            "oidc_subject:https://idp.example Abc"
        );
        for (kind, bad) in [
            (RuleKind::GithubUser, ""),
            (RuleKind::GithubUser, "a/b"),
            (RuleKind::GithubTeam, "acme"),
            (RuleKind::GithubTeam, "acme/a/b"),
            (RuleKind::OidcEmail, "no-at-sign"),
            (RuleKind::OidcSubject, "no-subject"),
            (RuleKind::MicrosoftGroup, "tenant/\u{7}"),
        ] {
            assert!(kind.normalize(bad).is_err(), "{kind:?} {bad:?}");
        }
    }

    #[test]
    fn roles_order_from_weakest_and_parse_back() {
        assert!(Role::Viewer < Role::Releaser && Role::Releaser < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for k in RuleKind::ALL {
            assert_eq!(RuleKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_pepper() {
        let p = Secret::new("p".repeat(32));
        let q = Secret::new("q".repeat(32));
        assert_eq!(csrf_token(&p, "a"), csrf_token(&p, "a"));
        assert_ne!(csrf_token(&p, "a"), csrf_token(&p, "b"));
        assert_ne!(csrf_token(&p, "a"), csrf_token(&q, "a"));
    }
}
