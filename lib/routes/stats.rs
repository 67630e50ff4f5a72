//! Usage statistics: what clients asked for and how many there are, per product and pack
//! (any signed-in operator, or an admin token), and pruning rows past the retention period
//! (Vercel's scheduler with `CRON_SECRET`, or an admin token).

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;
use serde_json::json;
use time::{Date, Duration, OffsetDateTime};

use crate::domain::audit::{self, Actor};
use crate::domain::ids::Slug;
use crate::domain::stats::{self, By, Period};
use crate::domain::{packs, products};
use crate::http::extract::{Admin, NoQuery, Path, Query, Reader};
use crate::http::{ApiError, ApiResult, quoted, respond};
use crate::state::AppState;

/// The longest period one report covers.
const MAX_DAYS: i64 = 3660;

/// `?since=&until=&by=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD` (default: 29 days before `until`).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    since: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today, UTC).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    until: Option<String>,
    /// Rows by `day` (default), `version`, `platform` or `channel`.
    by: Option<By>,
}

fn day(name: &str, value: &str) -> Result<Date, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, &format).map_err(|_| {
        ApiError::invalid(format!(
            "{name} must be a day as YYYY-MM-DD, not {}",
            quoted(value)
        ))
    })
}

impl StatsQuery {
    fn period(&self) -> Result<Period, ApiError> {
        let until = match &self.until {
            Some(u) => day("until", u)?,
            None => OffsetDateTime::now_utc().date(),
        };
        let since = match &self.since {
            Some(s) => day("since", s)?,
            None => until - Duration::days(29),
        };
        if since > until {
            return Err(ApiError::invalid("since is after until"));
        }
        if (until - since).whole_days() >= MAX_DAYS {
            return Err(ApiError::invalid(format!(
                "a report covers at most {MAX_DAYS} days"
            )));
        }
        Ok(Period { since, until })
    }
}

/// `{product}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StatsPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    product: Slug,
}

/// A product's usage: downloads, update checks, latest lookups and distinct clients, grouped
/// by day, version, platform or channel; the installed base by version per day; each
/// channel's rollout adoption.
#[utoipa::path(
    get,
    path = "/api/v1/admin/stats/{product}",
    operation_id = "productStats",
    tag = "admin",
    summary = "A product's usage: downloads, update checks, distinct clients, versions in use, rollout adoption.",
    params(StatsPath, StatsQuery),
    responses((status = 200, description = "The report.", body = stats::Report)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn product(
    _: Reader,
    State(state): State<Arc<AppState>>,
    Path(path): Path<StatsPath>,
    Query(query): Query<StatsQuery>,
) -> ApiResult {
    let period = query.period()?;
    let conn = state.db.conn().await?;
    let product = products::get(&conn, path.product.as_str()).await?;
    let report = stats::product(&conn, &product.slug, period, query.by.unwrap_or(By::Day)).await?;
    respond::json(StatusCode::OK, &report)
}

/// `{pack}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PackStatsPath {
    #[param(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pack: Slug,
}

/// A pack's downloads, by day or by build (`by=version`).
#[utoipa::path(
    get,
    path = "/api/v1/admin/stats/packs/{pack}",
    operation_id = "packStats",
    tag = "admin",
    summary = "A pack's downloads, by day or by build.",
    params(PackStatsPath, StatsQuery),
    responses((status = 200, description = "The report.", body = stats::PackReport)),
    security(("adminToken" = []), ("sessionCookie" = [])),
)]
pub async fn pack(
    _: Reader,
    State(state): State<Arc<AppState>>,
    Path(path): Path<PackStatsPath>,
    Query(query): Query<StatsQuery>,
) -> ApiResult {
    let period = query.period()?;
    let by = match query.by {
        None | Some(By::Day) => By::Day,
        Some(By::Version) => By::Version,
        Some(_) => {
            return Err(ApiError::invalid(
                "pack downloads are grouped by day or by version (build)",
            ));
        }
    };
    let conn = state.db.conn().await?;
    let pack = packs::get(&conn, path.pack.as_str()).await?;
    let report = stats::pack(&conn, &pack.slug, period, by).await?;
    respond::json(StatusCode::OK, &report)
}

/// Who prunes: Vercel's scheduler (its `Authorization: Bearer <CRON_SECRET>`), or an admin.
pub enum Pruner {
    Scheduler,
    Admin(Actor),
}

impl FromRequestParts<Arc<AppState>> for Pruner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if let Some(secret) = &state.config.stats.cron_secret {
            let sent = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let expected = secret.expose();
            if sent.is_some_and(|s| {
                s.len() == expected.len()
                    && s.bytes()
                        .zip(expected.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }) {
                return Ok(Pruner::Scheduler);
            }
        }
        let Admin(principal) = Admin::from_request_parts(parts, state).await?;
        Ok(Pruner::Admin(Actor::from(&principal)))
    }
}

/// Removes daily statistics rows older than `ATLAS_STATS_RETENTION_DAYS` (default 400):
/// Vercel's scheduler calls it daily (`vercel.json` `crons`); `atlas-hub admin prune` does
/// the same anywhere else.
#[utoipa::path(
    get,
    path = "/api/v1/admin/prune",
    operation_id = "pruneStats",
    tag = "admin",
    summary = "Remove statistics rows past the retention period (Vercel cron, or an admin).",
    responses((status = 200, description = "What was removed.", body = stats::Pruned)),
    security(("adminToken" = []), ("cronSecret" = [])),
)]
pub async fn prune(
    pruner: Pruner,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
) -> ApiResult {
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    let pruned = stats::prune(&tx, state.config.stats.retention_days).await?;
    let actor = match pruner {
        Pruner::Scheduler => Actor {
            name: "vercel-cron".to_owned(),
            token_id: None,
        },
        Pruner::Admin(actor) => actor,
    };
    let detail = json!({"before": pruned.before, "requestRows": pruned.request_rows,
        "clientRows": pruned.client_rows, "downloadRows": pruned.download_rows});
    audit::commit(tx, &actor, "stats.prune", "stats", detail).await?;
    respond::json(StatusCode::OK, &pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(since: Option<&str>, until: Option<&str>) -> StatsQuery {
        StatsQuery {
            since: since.map(str::to_owned),
            until: until.map(str::to_owned),
            by: None,
        }
    }

    #[test]
    fn periods_default_to_thirty_days_and_refuse_nonsense() {
        let p = q(None, Some("2026-12-04")).period().unwrap();
        assert_eq!(
            (p.since.to_string(), p.until.to_string()),
            ("2026-11-05".into(), "2026-12-04".into())
        );
        for (since, until) in [
            (Some("2026-12-05"), Some("2026-12-04")),
            (Some("yesterday"), None),
            (None, Some("2026-13-01")),
            (Some("2000-01-01"), Some("2026-12-04")),
        ] {
            let e = q(since, until).period().unwrap_err();
            assert_eq!(e.code, "invalid_input", "{since:?} {until:?}");
        }
    }
}
