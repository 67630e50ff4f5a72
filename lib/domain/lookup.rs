//! The hot lookup: what a channel serves for one platform, as one statement, batched per
//! instance. The latest lookup, the updater and the latest-download redirect all ask it.

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::Type;

use super::ids::{Arch, Os};
use super::rollout;
use crate::config::Pooler;
use crate::db::{Db, Sql};
use crate::error::ApiError;

/// One artifact of the latest lookup.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestArtifact {
    /// Internal id (download counting).
    #[serde(skip)]
    pub artifact_id: i64,
    /// Storage key (download redirect).
    #[serde(skip)]
    pub storage_key: String,
    pub download_id: String,
    /// Hub download URL.
    pub download_url: String,
    pub os: &'static str,
    pub arch: &'static str,
    pub kind: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub signature: Option<String>,
    /// Primary for the platform.
    pub primary: bool,
}

/// What a channel serves for one platform.
#[derive(Debug, Clone)]
pub struct Latest {
    pub version: String,
    pub notes: String,
    pub published_at: OffsetDateTime,
    /// Artifacts for the platform, primary first.
    pub artifacts: Vec<LatestArtifact>,
}

/// What a channel serves for one platform: its release and, during a staged rollout, the
/// previous release the clients outside the rollout keep.
#[derive(Debug, Clone, Default)]
pub struct ChannelPlatform {
    /// Share of clients offered `current`.
    pub rollout_percent: i16,
    /// The channel's release (not yanked, with artifacts for the platform).
    pub current: Option<Latest>,
    /// The previous release, only while `rollout_percent < 100`.
    pub previous: Option<Latest>,
}

impl ChannelPlatform {
    /// Whether the answer depends on who asks: a staged rollout of a release.
    pub fn staged(&self) -> bool {
        self.current.is_some() && self.rollout_percent < 100
    }

    /// The release the client bucketed by `client` gets ([`rollout::choose`]; `None`: a
    /// client that cannot be bucketed).
    pub fn for_client(&self, product: &str, client: Option<&str>) -> Option<&Latest> {
        rollout::choose(
            product,
            self.rollout_percent,
            self.current.as_ref().map(|c| (c.version.as_str(), c)),
            self.previous.as_ref(),
            client,
        )
    }
}

/// The hot lookup as one statement: what channel `$2` of product `$1` serves for os `$3` and
/// arch `$4`, one row per artifact, its release (`slot` `current`) and, during a staged
/// rollout, the previous one (`previous`).
///
/// On a direct connection it is prepared once per connection, so PostgreSQL plans it once.
/// Behind a transaction-mode pooler statements are unnamed and would be planned on every
/// call, so there the same query runs inside the SQL function `atlas_channel_platform`
/// (`migrations/0001_schema.sql`), whose plan PostgreSQL caches ([`CHANNEL_PLATFORM_POOLED`]).
/// The prepared statement costs PostgreSQL less per call than the function (pgbench, 64
/// clients: ~31k/s against ~26k/s). A test (`tests/it/releases.rs`) holds the two to the same
/// rows.
pub const CHANNEL_PLATFORM_SQL: &str = "SELECT s.slot, c.rollout_percent, r.version, r.notes, \
    r.published_at, a.id AS artifact_id, a.download_id, a.kind, a.filename, a.size, a.sha256, \
    a.signature, a.is_primary, a.storage_key \
    FROM products p \
    JOIN channels c ON c.product_id = p.id AND c.name = $2 \
    CROSS JOIN LATERAL (VALUES ('current', c.release_id), \
        ('previous', CASE WHEN c.rollout_percent < 100 THEN c.previous_release_id END)) \
        AS s(slot, release_id) \
    JOIN releases r ON r.id = s.release_id AND r.yanked_at IS NULL \
    JOIN artifacts a ON a.release_id = r.id AND a.os = $3 AND a.arch = $4 \
    WHERE p.slug = $1 \
    ORDER BY s.slot, a.is_primary DESC, a.kind";

/// [`CHANNEL_PLATFORM_SQL`] behind a transaction-mode pooler.
pub const CHANNEL_PLATFORM_POOLED: &str = "SELECT * FROM atlas_channel_platform($1, $2, $3, $4)";

/// [`CHANNEL_PLATFORM_SQL`] for a batch of lookups: arrays of products (`$1`), channels
/// (`$2`), oses (`$3`) and arches (`$4`), each row tagged with its lookup's position `i`
/// (from 1). The per-lookup query sits in a `LATERAL` subquery, so each lookup is planned
/// exactly as alone (index lookups, never a scan of `artifacts`).
pub fn batch_sql(pooler: Pooler) -> &'static str {
    static DIRECT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static POOLED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let (cell, one) = match pooler {
        Pooler::None => (&DIRECT, CHANNEL_PLATFORM_SQL),
        Pooler::Transaction => (&POOLED, CHANNEL_PLATFORM_POOLED),
    };
    cell.get_or_init(|| {
        let one = one
            .replace("$1", "q.product")
            .replace("$2", "q.channel")
            .replace("$3", "q.os")
            .replace("$4", "q.arch");
        format!(
            "SELECT q.i, l.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
             WITH ORDINALITY AS q(product, channel, os, arch, i) \
             CROSS JOIN LATERAL ({one}) AS l \
             ORDER BY q.i, l.slot, l.is_primary DESC, l.kind"
        )
    })
}

/// One lookup: what a channel serves for a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LookupKey {
    product: String,
    channel: &'static str,
    os: Os,
    arch: Arch,
}

/// A request waiting for its lookup.
struct Waiting {
    key: LookupKey,
    answer: tokio::sync::oneshot::Sender<Result<Arc<ChannelPlatform>, ApiError>>,
}

/// Lookups batched per instance: while one batch is at the database, the lookups that arrive
/// wait, and go together as the next batch (one statement, one round trip, each distinct
/// lookup once). An idle instance sends a lookup at once. Every lookup is answered by a
/// statement sent after it arrived, so a lookup never reads older data than it would alone.
pub struct LookupBatcher {
    db: Arc<Db>,
    pooler: Pooler,
    hub_url: String,
    queue: std::sync::Mutex<BatchQueue>,
}

#[derive(Default)]
struct BatchQueue {
    running: bool,
    waiting: Vec<Waiting>,
}

impl LookupBatcher {
    /// A batcher sending its statements on `db`; download URLs start with `hub_url`.
    pub fn new(db: Arc<Db>, pooler: Pooler, hub_url: &str) -> Arc<Self> {
        Arc::new(LookupBatcher {
            db,
            pooler,
            hub_url: hub_url.to_owned(),
            queue: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hot lookup ([`CHANNEL_PLATFORM_SQL`]): what `channel` of `product` serves for
    /// `os`/`arch`, batched with concurrent lookups.
    pub async fn lookup(
        self: &Arc<Self>,
        product: &str,
        channel: &'static str,
        os: Os,
        arch: Arch,
    ) -> Result<Arc<ChannelPlatform>, ApiError> {
        lookup_channel(self, product, channel, os, arch).await
    }
}

async fn lookup_channel(
    state: &Arc<LookupBatcher>,
    product: &str,
    channel: &'static str,
    os: Os,
    arch: Arch,
) -> Result<Arc<ChannelPlatform>, ApiError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let key = LookupKey {
        product: product.to_owned(),
        channel,
        os,
        arch,
    };
    let lead = {
        let mut queue = state.lock();
        queue.waiting.push(Waiting { key, answer });
        !std::mem::replace(&mut queue.running, true)
    };
    if lead {
        // A task of its own: this request gets its answer with the first batch, while the
        // task goes on with the batches that queued behind it.
        tokio::spawn(run_batches(state.clone()));
    }
    answered
        .await
        .map_err(|_| ApiError::internal("the lookup batch ended without an answer"))?
}

/// Sends batches until no lookup waits.
async fn run_batches(state: Arc<LookupBatcher>) {
    loop {
        let batch = {
            let mut queue = state.lock();
            if queue.waiting.is_empty() {
                queue.running = false;
                return;
            }
            std::mem::take(&mut queue.waiting)
        };
        // Each distinct lookup once; `slot[n]` is where waiter n's answer is.
        let mut keys: Vec<LookupKey> = Vec::with_capacity(batch.len());
        let mut slot = Vec::with_capacity(batch.len());
        for w in &batch {
            match keys.iter().position(|k| *k == w.key) {
                Some(at) => slot.push(at),
                None => {
                    slot.push(keys.len());
                    keys.push(w.key.clone());
                }
            }
        }
        match query_batch(&state, &keys).await {
            Ok(answers) => {
                // Shared, not copied: waiters on the same lookup read one answer.
                let answers: Vec<Arc<ChannelPlatform>> =
                    answers.into_iter().map(Arc::new).collect();
                for (w, at) in batch.into_iter().zip(slot) {
                    let _ = w.answer.send(Ok(answers[at].clone()));
                }
            }
            Err(e) => {
                for w in batch {
                    let _ = w.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One statement for `keys`; the answers in the same order.
async fn query_batch(
    state: &LookupBatcher,
    keys: &[LookupKey],
) -> Result<Vec<ChannelPlatform>, ApiError> {
    let products: Vec<&str> = keys.iter().map(|k| k.product.as_str()).collect();
    let channels: Vec<&str> = keys.iter().map(|k| k.channel).collect();
    let oses: Vec<&str> = keys.iter().map(|k| k.os.as_str()).collect();
    let arches: Vec<&str> = keys.iter().map(|k| k.arch.as_str()).collect();
    let rows = state
        .db
        .pipelined(|conn| async move {
            Ok(conn
                .query(
                    batch_sql(state.pooler),
                    &[
                        (&products, Type::TEXT_ARRAY),
                        (&channels, Type::TEXT_ARRAY),
                        (&oses, Type::TEXT_ARRAY),
                        (&arches, Type::TEXT_ARRAY),
                    ],
                )
                .await?)
        })
        .await?;
    let mut answers: Vec<ChannelPlatform> = Vec::with_capacity(keys.len());
    let mut rest = rows.as_slice();
    for (n, key) in keys.iter().enumerate() {
        let i = n as i64 + 1;
        let len = rest.iter().take_while(|r| r.get::<_, i64>(0) == i).count();
        let (mine, after) = rest.split_at(len);
        answers.push(platform_from_rows(state, key.os, key.arch, mine)?);
        rest = after;
    }
    Ok(answers)
}

/// What one lookup's rows say.
fn platform_from_rows(
    state: &LookupBatcher,
    os: Os,
    arch: Arch,
    rows: &[tokio_postgres::Row],
) -> Result<ChannelPlatform, ApiError> {
    let hub = &state.hub_url;
    let mut out = ChannelPlatform {
        rollout_percent: 100,
        ..Default::default()
    };
    let Some(first) = rows.first() else {
        return Ok(out);
    };
    // Column positions, looked up by name once per lookup rather than once per value.
    const COLUMNS: [&str; 14] = [
        "rollout_percent",
        "slot",
        "version",
        "notes",
        "published_at",
        "artifact_id",
        "storage_key",
        "download_id",
        "kind",
        "filename",
        "size",
        "sha256",
        "signature",
        "is_primary",
    ];
    let mut idx = [0usize; 14];
    for (i, name) in COLUMNS.iter().enumerate() {
        idx[i] = first
            .columns()
            .iter()
            .position(|c| c.name() == *name)
            .ok_or_else(|| ApiError::internal(format!("atlas_channel_platform has no {name}")))?;
    }
    let [
        rollout_percent,
        slot,
        version,
        notes,
        published_at,
        artifact_id,
        storage_key,
        download_id,
        kind,
        filename,
        size,
        sha256,
        signature,
        is_primary,
    ] = idx;
    for r in rows {
        out.rollout_percent = r.get(rollout_percent);
        let slot: &str = r.get(slot);
        let target = if slot == "current" {
            &mut out.current
        } else {
            &mut out.previous
        };
        let latest = target.get_or_insert_with(|| Latest {
            version: r.get(version),
            notes: r.get(notes),
            published_at: r.get(published_at),
            artifacts: Vec::new(),
        });
        let download_id: String = r.get(download_id);
        latest.artifacts.push(LatestArtifact {
            artifact_id: r.get(artifact_id),
            storage_key: r.get(storage_key),
            download_url: format!("{hub}/api/v1/download/{download_id}"),
            download_id,
            os: os.as_str(),
            arch: arch.as_str(),
            kind: r.get(kind),
            filename: r.get(filename),
            size: r.get(size),
            sha256: r.get(sha256),
            signature: r.get(signature),
            primary: r.get(is_primary),
        });
    }
    Ok(out)
}

/// One release's signed artifacts, as the updater's static manifest lists them.
pub struct ManifestRelease {
    pub version: String,
    pub notes: String,
    /// When it was published.
    pub published_at: OffsetDateTime,
    /// (os, arch, kind, download id, signature, primary), primary first per platform.
    pub artifacts: Vec<(String, String, String, String, String, bool)>,
}

/// What a channel offers the updater's static manifest: its release's signed artifacts
/// and, during a staged rollout, the previous release's.
pub struct Manifest {
    /// Share of clients offered `current`.
    pub rollout_percent: i16,
    /// The channel's release, when it has signed artifacts.
    pub current: Option<ManifestRelease>,
    /// The previous release, only while `rollout_percent < 100`.
    pub previous: Option<ManifestRelease>,
}

/// The signed artifacts of every platform of `channel`'s release (and, during a staged
/// rollout, of the previous one), one statement.
pub async fn manifest(db: &impl Sql, product: &str, channel: &str) -> Result<Manifest, ApiError> {
    let rows = db
        .query(
            "SELECT s.slot, c.rollout_percent, r.version, r.notes, r.published_at, a.os, a.arch,
                    a.kind, a.download_id, a.signature, a.is_primary
             FROM products p
             JOIN channels c ON c.product_id = p.id AND c.name = $2
             CROSS JOIN LATERAL (VALUES ('current', c.release_id),
                 ('previous', CASE WHEN c.rollout_percent < 100 THEN c.previous_release_id END))
                 AS s(slot, release_id)
             JOIN releases r ON r.id = s.release_id AND r.yanked_at IS NULL
             JOIN artifacts a ON a.release_id = r.id AND a.signature IS NOT NULL
             WHERE p.slug = $1
             ORDER BY s.slot, a.os, a.arch, a.is_primary DESC, a.kind",
            &[(&product, Type::TEXT), (&channel, Type::TEXT)],
        )
        .await?;
    let mut out = Manifest {
        rollout_percent: 100,
        current: None,
        previous: None,
    };
    for r in &rows {
        out.rollout_percent = r.get("rollout_percent");
        let slot = if r.get::<_, &str>("slot") == "current" {
            &mut out.current
        } else {
            &mut out.previous
        };
        slot.get_or_insert_with(|| ManifestRelease {
            version: r.get("version"),
            notes: r.get("notes"),
            published_at: r.get("published_at"),
            artifacts: Vec::new(),
        })
        .artifacts
        .push((
            r.get("os"),
            r.get("arch"),
            r.get("kind"),
            r.get("download_id"),
            r.get("signature"),
            r.get("is_primary"),
        ));
    }
    Ok(out)
}
