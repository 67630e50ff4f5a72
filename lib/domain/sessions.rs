//! Operators who sign in: the access rules that grant them a role, and their sessions.
//!
//! A session is a random 256-bit id in the operator's cookie; the database keeps only its
//! HMAC-SHA256 digest under `ATLAS_TOKEN_PEPPER`, like deploy tokens. A session carries the
//! claims its sign-in established (`github_user:octocat`, `github_org:acme`, …) and no role:
//! the role is read from the rules each time the session is used, so removing a rule ends
//! the access it gave at once. Nobody whose claims match no rule gets a session.

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::config::Secret;
use crate::db::Sql;
use crate::domain::tokens;
use crate::error::{ApiError, Code};

/// What an operator may do, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

impl RuleKind {
    pub const ALL: [RuleKind; 7] = [
        RuleKind::GithubUser,
        RuleKind::GithubOrg,
        RuleKind::GithubTeam,
        RuleKind::MicrosoftTenant,
        RuleKind::MicrosoftGroup,
        RuleKind::OidcSubject,
        RuleKind::OidcEmail,
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
            RuleKind::GithubUser | RuleKind::GithubOrg | RuleKind::MicrosoftTenant => {
                plain(v) && !v.contains('/')
            }
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
#[derive(Debug, Clone, Serialize)]
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
    db.query(
        "INSERT INTO operator_sessions (id, digest, person, claims, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            (&id, Type::UUID),
            (&tokens::digest(pepper, &cookie), Type::BYTEA),
            (&person, Type::TEXT),
            (&claims, Type::TEXT_ARRAY),
            (&expires_at, Type::TIMESTAMPTZ),
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
    if cookie.is_empty() || cookie.len() > 200 {
        return Ok(None);
    }
    let idle_secs = lifetimes.idle.as_secs_f64();
    let row = db
        .query_opt(
            concat!(
                "WITH s AS (
                    SELECT id, person, claims, expires_at, last_seen_at FROM operator_sessions
                    WHERE digest = $1 AND expires_at > now()
                      AND last_seen_at > now() - make_interval(secs => $2)
                ), touched AS (
                    UPDATE operator_sessions o SET last_seen_at = now() FROM s
                    WHERE o.id = s.id AND s.last_seen_at < now() - interval '1 minute'
                )
                SELECT s.id, s.person, s.expires_at, r.role, r.products
                FROM s, LATERAL (",
                role_of!("s.claims"),
                ") r"
            ),
            &[
                (&tokens::digest(pepper, cookie), Type::BYTEA),
                (&idle_secs, Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.map(|r| Operator {
        session_id: r.get("id"),
        person: r.get("person"),
        role: Role::parse(r.get("role")).unwrap_or(Role::Viewer),
        products: r.get("products"),
        expires_at: r.get("expires_at"),
    }))
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
