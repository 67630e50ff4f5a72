//! The audit log: every publish, deploy, channel move, yank and token change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::ids::{Slug, is_hidden_control};
use super::page::parse_pagination;
use crate::db::{Sql, Tx};
use crate::error::ApiError;

/// Who did something.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Display form (`token:ci (uuid)`, `cli:root`).
    pub name: String,
    /// The token, when a token acted.
    pub token_id: Option<Uuid>,
}

/// Appends one audit row (inside the caller's transaction).
pub async fn record(
    db: &impl Sql,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    db.query(
        "INSERT INTO audit_log (actor, token_id, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        &[
            (&actor.name, Type::TEXT),
            (&actor.token_id, Type::UUID),
            (&action, Type::TEXT),
            (&subject, Type::TEXT),
            (&detail, Type::JSONB),
        ],
    )
    .await?;
    Ok(())
}

/// Appends the audit row and commits: a write and its entry land together or not at all.
pub async fn commit(
    tx: Tx<'_>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    record(&tx, actor, action, subject, detail).await?;
    tx.commit().await
}

/// One audit entry as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Sequence number (also the pagination cursor).
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub token_id: Option<Uuid>,
    /// What (`release.publish`, `channel.move`, …).
    pub action: String,
    /// On what (`launcher@1.2.0`, `launcher/stable`, …).
    pub subject: String,
    pub detail: serde_json::Value,
}

/// The audit log's query parameters: a page (`limit`, `cursor`) and filters, each optional,
/// all combined (an entry is listed when it passes every filter given). The cursor of a
/// filtered page continues the same filtered list: pass the same filters with it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size (1–100, default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page (with the same filters).
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
    /// Entries about this product: the product itself, its releases (`P@version`) and its
    /// channels (`P/channel`). Pack actions (`pack.…`) on a pack of the same slug are not.
    #[param(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub product: Option<Slug>,
    /// Entries about this pack: the pack itself, its builds (`P@build`) and its channels
    /// (`P/channel`); pack actions (`pack.…`) only. Not with `product`.
    #[param(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub pack: Option<Slug>,
    /// Entries whose actor contains this text, in any case (`ci`, `octocat`, a token id).
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub actor: Option<String>,
    /// One action (`channel.move`), or every action under a prefix that ends with `.`
    /// (`channel.`, `release.`, `pack.`).
    #[param(
        max_length = 100,
        pattern = r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*\.?$"
    )]
    pub action: Option<String>,
    /// Entries at or after this time (RFC 3339, e.g. `2026-11-27T16:00:00Z`).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339): with `since`, a half-open window.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
}

/// Which entries a page lists, parsed from an [`AuditQuery`].
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    /// A product or pack slug the subject is about, and whether the actions are pack ones.
    pub subject: Option<(String, bool)>,
    /// Text the actor contains (compared in lower case).
    pub actor: Option<String>,
    /// An exact action, or a prefix when it ends with `.`.
    pub action: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl AuditQuery {
    /// (cursor, limit) and the filter, or 400 `invalid_input` naming the parameter.
    pub fn parse(self) -> Result<(Option<i64>, i64, Filter), ApiError> {
        let (cursor, limit) = parse_pagination(self.limit.as_deref(), self.cursor.as_deref())?;
        let subject = match (self.product, self.pack) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "product and pack cannot be combined: an entry is about one or the other",
                ));
            }
            (Some(product), None) => Some((product.as_str().to_owned(), false)),
            (None, Some(pack)) => Some((pack.as_str().to_owned(), true)),
            (None, None) => None,
        };
        if let Some(actor) = &self.actor {
            let count = actor.chars().count();
            if count == 0 || count > 200 {
                return Err(ApiError::invalid("actor must be 1 to 200 characters"));
            }
            if let Some(c) = actor.chars().find(|c| is_hidden_control(*c)) {
                return Err(ApiError::invalid(format!(
                    "actor contains the control character U+{:04X}; actors are plain text",
                    c as u32
                )));
            }
        }
        if let Some(action) = &self.action
            && !is_action_filter(action)
        {
            return Err(ApiError::invalid(format!(
                "action {} is not valid: expected an action such as channel.move, or a prefix \
                 ending with '.' such as channel.",
                crate::error::quoted(action)
            )));
        }
        let since = self
            .since
            .as_deref()
            .map(|s| timestamp("since", s))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|s| timestamp("until", s))
            .transpose()?;
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(ApiError::invalid("since must not be after until"));
        }
        let filter = Filter {
            subject,
            actor: self.actor,
            action: self.action,
            since,
            until,
        };
        Ok((cursor, limit, filter))
    }
}

/// `[a-z][a-z0-9_-]*` words joined by `.`, at most 100 characters, optionally ending with `.`
/// (a prefix): the shape of every action the Hub writes.
fn is_action_filter(s: &str) -> bool {
    let words = s.strip_suffix('.').unwrap_or(s);
    s.len() <= 100
        && words.split('.').all(|w| {
            let b = w.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_lowercase()
                && b.iter().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-')
                })
        })
}

/// An RFC 3339 timestamp, or 400 naming `field`.
fn timestamp(field: &str, s: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        ApiError::invalid(format!(
            "{field} {} is not valid: expected an RFC 3339 timestamp such as \
             2026-11-27T16:00:00Z",
            crate::error::quoted(s)
        ))
    })
}

/// A page of entries passing `filter`, newest first, with ids below `before` when given.
///
/// Subjects are written as `P`, `P@version|build` and `P/channel`, and slugs hold neither `@`
/// nor `/`, so a slug's entries are exactly the subjects it is or that start with it and one
/// of those; product and pack share those shapes, so the action tells them apart.
pub async fn page(
    db: &impl Sql,
    before: Option<i64>,
    limit: i64,
    filter: &Filter,
) -> Result<Vec<Entry>, ApiError> {
    let (slug, pack_actions) = match &filter.subject {
        Some((slug, pack)) => (Some(slug.as_str()), *pack),
        None => (None, false),
    };
    let rows = db
        .query(
            "SELECT id, at, actor, token_id, action, subject, detail FROM audit_log
             WHERE ($1::int8 IS NULL OR id < $1)
               AND ($3::text IS NULL OR (
                    (subject = $3 OR starts_with(subject, $3 || '@') OR starts_with(subject, $3 || '/'))
                    AND starts_with(action, 'pack.') = $4))
               AND ($5::text IS NULL OR strpos(lower(actor), lower($5)) > 0)
               AND ($6::text IS NULL OR action = $6 OR (right($6, 1) = '.' AND starts_with(action, $6)))
               AND ($7::timestamptz IS NULL OR at >= $7)
               AND ($8::timestamptz IS NULL OR at < $8)
             ORDER BY id DESC LIMIT $2",
            &[
                (&before, Type::INT8),
                (&limit, Type::INT8),
                (&slug, Type::TEXT),
                (&pack_actions, Type::BOOL),
                (&filter.actor, Type::TEXT),
                (&filter.action, Type::TEXT),
                (&filter.since, Type::TIMESTAMPTZ),
                (&filter.until, Type::TIMESTAMPTZ),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            id: r.get("id"),
            at: r.get("at"),
            actor: r.get("actor"),
            token_id: r.get("token_id"),
            action: r.get("action"),
            subject: r.get("subject"),
            detail: r.get("detail"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> AuditQuery {
        let encoded = serde_urlencoded::to_string(pairs).unwrap();
        serde_urlencoded::from_str(&encoded).unwrap()
    }

    #[test]
    fn filters_parse_or_name_the_parameter() {
        let (cursor, limit, f) = query(&[
            ("product", "launcher"),
            ("actor", "CI"),
            ("action", "channel."),
            ("since", "2026-11-27T16:00:00Z"),
            ("until", "2026-11-27T18:00:00+01:00"),
            ("limit", "5"),
        ])
        .parse()
        .unwrap();
        assert_eq!((cursor, limit), (None, 5));
        assert_eq!(f.subject, Some(("launcher".to_owned(), false)));
        assert_eq!(f.action.as_deref(), Some("channel."));
        assert_eq!(f.until.unwrap().unix_timestamp(), 1_795_798_800);
        let (_, _, f) = query(&[("pack", "maps")]).parse().unwrap();
        assert_eq!(f.subject, Some(("maps".to_owned(), true)));
        assert_eq!(query(&[]).parse().unwrap().2, Filter::default());
        for ok in ["channel.move", "pack.channel.move", "release.", "token"] {
            assert!(query(&[("action", ok)]).parse().is_ok(), "{ok}");
        }

        for (pairs, field) in [
            (vec![("since", "yesterday")], "since"),
            (vec![("until", "2026-11-27")], "until"),
            (vec![("since", "2026-11-27T16:00:00")], "since"),
            (
                vec![
                    ("since", "2026-11-28T00:00:00Z"),
                    ("until", "2026-11-27T00:00:00Z"),
                ],
                "since",
            ),
            (vec![("action", "channel..move")], "action"),
            (vec![("action", ".channel")], "action"),
            (vec![("action", "Channel.move")], "action"),
            (vec![("action", "channel.move'--")], "action"),
            (vec![("actor", "a\u{7}b")], "actor"),
            (vec![("product", "launcher"), ("pack", "maps")], "product"),
        ] {
            let e = query(&pairs).parse().unwrap_err();
            assert_eq!(e.code, "invalid_input", "{pairs:?}");
            assert!(e.detail.contains(field), "{pairs:?}: {}", e.detail);
        }
        let long = "a".repeat(201);
        let e = query(&[("actor", &long)]).parse().unwrap_err();
        assert!(e.detail.starts_with("actor"), "{}", e.detail);
    }
}
