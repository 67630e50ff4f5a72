//! Reading usage statistics: requests and downloads grouped by day, version, platform or
//! channel; distinct clients; the installed base by version over time; how far a staged
//! rollout has been adopted. And pruning rows past the retention period.
//!
//! Counts are what reached the Hub (origin hits): answers served from the CDN's cache are
//! not seen. Distinct clients are HyperLogLog estimates (±3.3% standard error; near exact
//! below a few hundred). Downloads come from the per-artifact daily counters.

use std::collections::BTreeMap;

use serde::Serialize;
use time::Date;
use tokio_postgres::types::Type;

use super::hll::{self, Hll};
use crate::db::Sql;
use crate::error::ApiError;

/// What the rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Day,
    Version,
    Platform,
    Channel,
}

/// What every report says it counts.
pub const COUNTED: &str = "Requests that reached the Hub (origin hits): answers the CDN served \
    from its cache are not counted. Update checks with a client id are never shared-cached \
    during a rollout; latest.json and latest lookups without one may be. Distinct clients are \
    HyperLogLog estimates (about ±3% standard error) of client ids, or addresses without one, \
    never stored.";

/// One group's figures.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The day (`YYYY-MM-DD`), version, platform (`os-arch`) or channel.
    pub key: String,
    pub downloads: i64,
    pub update_checks: i64,
    pub latest_lookups: i64,
    /// Distinct clients (by day and by version; absent for other groupings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_clients: Option<u64>,
}

/// The versions clients reported running on one day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstalledBase {
    pub day: String,
    /// Distinct clients that reported a version that day.
    pub clients: u64,
    pub versions: Vec<VersionShare>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionShare {
    pub version: String,
    pub clients: u64,
    /// Share of the day's clients (0–1).
    pub share: f64,
}

/// A channel's release and how far its clients took it up.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    pub channel: String,
    pub version: String,
    pub rollout_percent: i16,
    /// Distinct clients offered `version` on this channel in the period.
    pub offered: u64,
    /// Of those, the clients that then checked running it.
    pub adopted: u64,
    /// `adopted / offered` (0–1; absent when nobody was offered it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adoption: Option<f64>,
}

/// Downloads of one platform on one day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyDownloads {
    pub day: String,
    /// `os-arch`.
    pub platform: String,
    pub downloads: i64,
}

/// Everything the stats API answers for a product.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub product: String,
    pub since: String,
    pub until: String,
    pub by: By,
    /// What the figures count.
    pub counted: &'static str,
    pub totals: Row,
    pub rows: Vec<Row>,
    pub installed_base: Vec<InstalledBase>,
    /// Downloads per day and platform, whatever the grouping (the console's chart).
    pub daily_downloads: Vec<DailyDownloads>,
    pub rollouts: Vec<Adoption>,
}

/// The days of a report, inclusive.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub since: Date,
    pub until: Date,
}

fn group_expr(by: By, day: &str, version: &str, platform: &str, channel: &str) -> String {
    match by {
        By::Day => format!("to_char({day}, 'YYYY-MM-DD')"),
        By::Version => version.to_owned(),
        By::Platform => platform.to_owned(),
        By::Channel => channel.to_owned(),
    }
}

/// Merges stored sketches by key.
fn merged(rows: &[tokio_postgres::Row]) -> BTreeMap<String, Hll> {
    let mut out: BTreeMap<String, Hll> = BTreeMap::new();
    for r in rows {
        let key: String = r.get(0);
        let bytes: Vec<u8> = r.get(1);
        if let Some(h) = Hll::from_bytes(&bytes) {
            out.entry(key).or_default().merge(&h);
        }
    }
    out
}

/// The report of `product` (a product's slug) over `period`, grouped `by`.
pub async fn product(
    db: &impl Sql,
    product: &str,
    period: Period,
    by: By,
) -> Result<Report, ApiError> {
    let slug = product.to_owned();
    let (since, until) = (period.since, period.until);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();

    // Requests.
    let key = group_expr(by, "day", "version", "platform", "channel");
    let requests = db
        .query(
            &format!(
                "SELECT {key} AS k,
                        coalesce(sum(count) FILTER (WHERE event = 'check'), 0)::int8,
                        coalesce(sum(count) FILTER (WHERE event = 'latest'), 0)::int8
                 FROM usage_daily WHERE product = $1 AND day BETWEEN $2 AND $3
                 GROUP BY k"
            ),
            &[
                (&slug, Type::TEXT),
                (&since, Type::DATE),
                (&until, Type::DATE),
            ],
        )
        .await?;
    for r in &requests {
        let k: String = r.get(0);
        let row = rows.entry(k.clone()).or_insert_with(|| Row {
            key: k,
            ..Row::default()
        });
        row.update_checks += r.get::<_, i64>(1);
        row.latest_lookups += r.get::<_, i64>(2);
    }

    // Downloads (per artifact and day): no channel is known for a download by id.
    if by != By::Channel {
        let key = group_expr(by, "d.day", "r.version", "a.os || '-' || a.arch", "''");
        let downloads = db
            .query(
                &format!(
                    "SELECT {key} AS k, sum(d.count)::int8
                     FROM download_counts d
                     JOIN artifacts a ON a.id = d.artifact_id
                     JOIN releases r ON r.id = a.release_id
                     JOIN products p ON p.id = r.product_id
                     WHERE p.slug = $1 AND d.day BETWEEN $2 AND $3
                     GROUP BY k"
                ),
                &[
                    (&slug, Type::TEXT),
                    (&since, Type::DATE),
                    (&until, Type::DATE),
                ],
            )
            .await?;
        for r in &downloads {
            let k: String = r.get(0);
            rows.entry(k.clone())
                .or_insert_with(|| Row {
                    key: k,
                    ..Row::default()
                })
                .downloads += r.get::<_, i64>(1);
        }
    }

    // Distinct clients: per day (anyone), per version (clients that reported it), overall.
    let sketches = db
        .query(
            "SELECT dimension, to_char(day, 'YYYY-MM-DD'), value, registers FROM usage_clients
             WHERE product = $1 AND day BETWEEN $2 AND $3 AND dimension IN ('all', 'version')",
            &[
                (&slug, Type::TEXT),
                (&since, Type::DATE),
                (&until, Type::DATE),
            ],
        )
        .await?;
    let mut everyone = Hll::default();
    let mut per_day_all: BTreeMap<String, Hll> = BTreeMap::new();
    let mut per_version: BTreeMap<String, Hll> = BTreeMap::new();
    let mut per_day_version: BTreeMap<String, BTreeMap<String, Hll>> = BTreeMap::new();
    for r in &sketches {
        let dimension: String = r.get(0);
        let day: String = r.get(1);
        let value: String = r.get(2);
        let Some(h) = Hll::from_bytes(&r.get::<_, Vec<u8>>(3)) else {
            continue;
        };
        if dimension == "all" {
            everyone.merge(&h);
            per_day_all.entry(day).or_default().merge(&h);
        } else {
            per_version.entry(value.clone()).or_default().merge(&h);
            per_day_version
                .entry(day)
                .or_default()
                .entry(value)
                .or_default()
                .merge(&h);
        }
    }
    match by {
        By::Day => {
            for (day, h) in &per_day_all {
                rows.entry(day.clone())
                    .or_insert_with(|| Row {
                        key: day.clone(),
                        ..Row::default()
                    })
                    .distinct_clients = Some(h.count());
            }
        }
        By::Version => {
            for (version, h) in &per_version {
                rows.entry(version.clone())
                    .or_insert_with(|| Row {
                        key: version.clone(),
                        ..Row::default()
                    })
                    .distinct_clients = Some(h.count());
            }
        }
        _ => {}
    }
    // Rows of "not given" (the static manifest's empty version or platform) are named so.
    let rows: Vec<Row> = rows
        .into_values()
        .map(|mut r| {
            if r.key.is_empty() {
                r.key = "(not given)".to_owned();
            }
            r
        })
        .collect();
    let totals = Row {
        key: "total".to_owned(),
        downloads: rows.iter().map(|r| r.downloads).sum(),
        update_checks: rows.iter().map(|r| r.update_checks).sum(),
        latest_lookups: rows.iter().map(|r| r.latest_lookups).sum(),
        distinct_clients: Some(everyone.count()),
    };

    let installed_base = per_day_version
        .into_iter()
        .map(|(day, versions)| {
            let mut all = Hll::default();
            for h in versions.values() {
                all.merge(h);
            }
            let counts: Vec<(String, u64)> =
                versions.into_iter().map(|(v, h)| (v, h.count())).collect();
            let sum: u64 = counts.iter().map(|(_, n)| n).sum();
            InstalledBase {
                day,
                clients: all.count(),
                versions: counts
                    .into_iter()
                    .map(|(version, clients)| VersionShare {
                        version,
                        clients,
                        share: if sum == 0 {
                            0.0
                        } else {
                            clients as f64 / sum as f64
                        },
                    })
                    .collect(),
            }
        })
        .collect();

    let daily_downloads = db
        .query(
            "SELECT to_char(d.day, 'YYYY-MM-DD'), a.os || '-' || a.arch, sum(d.count)::int8
             FROM download_counts d
             JOIN artifacts a ON a.id = d.artifact_id
             JOIN releases r ON r.id = a.release_id
             JOIN products p ON p.id = r.product_id
             WHERE p.slug = $1 AND d.day BETWEEN $2 AND $3
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[
                (&slug, Type::TEXT),
                (&since, Type::DATE),
                (&until, Type::DATE),
            ],
        )
        .await?
        .iter()
        .map(|r| DailyDownloads {
            day: r.get(0),
            platform: r.get(1),
            downloads: r.get(2),
        })
        .collect();
    let rollouts = adoption(db, &slug, period).await?;
    Ok(Report {
        product: slug,
        since: since.to_string(),
        until: until.to_string(),
        by,
        counted: COUNTED,
        totals,
        rows,
        installed_base,
        daily_downloads,
        rollouts,
    })
}

/// Each channel's release: clients offered it in the period, and of them those that then
/// reported running it (the intersection of the two sketches).
async fn adoption(db: &impl Sql, product: &str, period: Period) -> Result<Vec<Adoption>, ApiError> {
    let channels = db
        .query(
            "SELECT c.name, r.version, c.rollout_percent FROM channels c
             JOIN products p ON p.id = c.product_id JOIN releases r ON r.id = c.release_id
             WHERE p.slug = $1 ORDER BY c.name",
            &[(&product, Type::TEXT)],
        )
        .await?;
    let mut out = Vec::new();
    for c in &channels {
        let (channel, version): (String, String) = (c.get(0), c.get(1));
        let sketches = db
            .query(
                "SELECT dimension, registers FROM usage_clients
                 WHERE product = $1 AND day BETWEEN $2 AND $3
                   AND ((dimension = 'offered' AND value = $4) OR (dimension = 'version' AND value = $5))",
                &[
                    (&product, Type::TEXT),
                    (&period.since, Type::DATE),
                    (&period.until, Type::DATE),
                    (&format!("{channel} {version}"), Type::TEXT),
                    (&version, Type::TEXT),
                ],
            )
            .await?;
        let by_dimension = merged(&sketches);
        let offered = by_dimension.get("offered").cloned().unwrap_or_default();
        let running = by_dimension.get("version").cloned().unwrap_or_default();
        let offered_count = offered.count();
        let adopted = hll::intersection(&offered, &running).min(offered_count);
        out.push(Adoption {
            channel,
            version,
            rollout_percent: c.get(2),
            offered: offered_count,
            adopted,
            adoption: (offered_count > 0).then(|| adopted as f64 / offered_count as f64),
        });
    }
    Ok(out)
}

/// A pack's downloads over a period, by day or by build.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackReport {
    pub pack: String,
    pub since: String,
    pub until: String,
    pub by: By,
    pub counted: &'static str,
    pub downloads: i64,
    /// Keyed by day, or by build (`by=version`).
    pub rows: Vec<Row>,
}

/// The downloads of `pack` (a slug), by day or by build.
pub async fn pack(
    db: &impl Sql,
    pack: &str,
    period: Period,
    by: By,
) -> Result<PackReport, ApiError> {
    let key = match by {
        By::Version => "b.build",
        _ => "to_char(d.day, 'YYYY-MM-DD')",
    };
    let rows = db
        .query(
            &format!(
                "SELECT {key} AS k, sum(d.count)::int8 FROM download_counts d
                 JOIN artifacts a ON a.id = d.artifact_id
                 JOIN pack_builds b ON b.id = a.pack_build_id
                 JOIN packs p ON p.id = b.pack_id
                 WHERE p.slug = $1 AND d.day BETWEEN $2 AND $3 GROUP BY k ORDER BY k"
            ),
            &[
                (&pack, Type::TEXT),
                (&period.since, Type::DATE),
                (&period.until, Type::DATE),
            ],
        )
        .await?;
    let rows: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            key: r.get(0),
            downloads: r.get(1),
            ..Row::default()
        })
        .collect();
    Ok(PackReport {
        pack: pack.to_owned(),
        since: period.since.to_string(),
        until: period.until.to_string(),
        by: if by == By::Version {
            By::Version
        } else {
            By::Day
        },
        counted: "Downloads that reached the Hub (each redirect is counted once).",
        downloads: rows.iter().map(|r| r.downloads).sum(),
        rows,
    })
}

/// What a prune removed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    /// Rows of days before this one were removed (`YYYY-MM-DD`).
    pub before: String,
    pub request_rows: u64,
    pub client_rows: u64,
    pub download_rows: u64,
}

/// Removes daily rows older than `retention_days` (the day `retention_days` ago is kept).
pub async fn prune(db: &impl Sql, retention_days: u32) -> Result<Pruned, ApiError> {
    let days = retention_days as i32;
    let row = db
        .query_one(
            "WITH cutoff AS (SELECT current_date - $1::int4 AS before),
                  a AS (DELETE FROM usage_daily WHERE day < (SELECT before FROM cutoff) RETURNING 1),
                  b AS (DELETE FROM usage_clients WHERE day < (SELECT before FROM cutoff) RETURNING 1),
                  c AS (DELETE FROM download_counts WHERE day < (SELECT before FROM cutoff) RETURNING 1)
             SELECT to_char((SELECT before FROM cutoff), 'YYYY-MM-DD'),
                    (SELECT count(*) FROM a), (SELECT count(*) FROM b), (SELECT count(*) FROM c)",
            &[(&days, Type::INT4)],
        )
        .await?;
    Ok(Pruned {
        before: row.get(0),
        request_rows: row.get::<_, i64>(1) as u64,
        client_rows: row.get::<_, i64>(2) as u64,
        download_rows: row.get::<_, i64>(3) as u64,
    })
}
