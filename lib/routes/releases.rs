//! Release reads (latest, history, detail) and yank / unyank.

use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::types::Type;

use super::admin::pagination;
use crate::config::Pooler;
use crate::db::Sql;
use crate::domain::audit::{self, Actor};
use crate::domain::ids::{Arch, Os, Slug, Version, parse_channel, parse_kind};
use crate::domain::releases::{self, ReleaseView};
use crate::domain::tokens::{self, Scope};
use crate::domain::{channels, products, rollout};
use crate::http::respond::CachePolicy;
use crate::http::{ApiError, ApiRequest, ApiResult, respond};
use crate::state::AppState;

/// The cache policy of public reads.
pub fn public_cache(state: &AppState) -> CachePolicy {
    CachePolicy {
        s_maxage: state.config.cache_s_maxage,
        vary: None,
        private: false,
    }
}

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
    /// Public id.
    pub download_id: String,
    /// Hub download URL.
    pub download_url: String,
    /// OS.
    pub os: &'static str,
    /// Architecture.
    pub arch: &'static str,
    /// Kind.
    pub kind: String,
    /// File name.
    pub filename: String,
    /// Bytes.
    pub size: i64,
    /// Hex sha256.
    pub sha256: String,
    /// Tauri signature.
    pub signature: Option<String>,
    /// Primary for the platform.
    pub primary: bool,
}

/// What a channel serves for one platform.
#[derive(Debug, Clone)]
pub struct Latest {
    /// Version.
    pub version: String,
    /// Notes.
    pub notes: String,
    /// Published.
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

    /// The release `client` gets ([`rollout::choose`]).
    pub fn for_client(&self, product: &str, client: &RolloutClient) -> Option<&Latest> {
        rollout::choose(
            product,
            self.rollout_percent,
            self.current.as_ref().map(|c| (c.version.as_str(), c)),
            self.previous.as_ref(),
            client.key(),
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
    answer: tokio::sync::oneshot::Sender<Result<ChannelPlatform, ApiError>>,
}

/// Lookups batched per instance: while one batch is at the database, the lookups that arrive
/// wait, and go together as the next batch (one statement, one round trip, each distinct
/// lookup once). An idle instance sends a lookup at once. Every lookup is answered by a
/// statement sent after it arrived, so a lookup never reads older data than it would alone.
#[derive(Default)]
pub struct LookupBatcher {
    queue: std::sync::Mutex<BatchQueue>,
}

#[derive(Default)]
struct BatchQueue {
    running: bool,
    waiting: Vec<Waiting>,
}

impl LookupBatcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, BatchQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hot lookup ([`CHANNEL_PLATFORM_SQL`]), batched with concurrent ones
/// ([`LookupBatcher`]).
pub async fn lookup_channel(
    state: &Arc<AppState>,
    product: &str,
    channel: &'static str,
    os: Os,
    arch: Arch,
) -> Result<ChannelPlatform, ApiError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let key = LookupKey {
        product: product.to_owned(),
        channel,
        os,
        arch,
    };
    let lead = {
        let mut queue = state.lookups.lock();
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
async fn run_batches(state: Arc<AppState>) {
    loop {
        let batch = {
            let mut queue = state.lookups.lock();
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
    state: &AppState,
    keys: &[LookupKey],
) -> Result<Vec<ChannelPlatform>, ApiError> {
    let products: Vec<&str> = keys.iter().map(|k| k.product.as_str()).collect();
    let channels: Vec<&str> = keys.iter().map(|k| k.channel).collect();
    let oses: Vec<&str> = keys.iter().map(|k| k.os.as_str()).collect();
    let arches: Vec<&str> = keys.iter().map(|k| k.arch.as_str()).collect();
    let conn = state.db.conn().await?;
    let rows = conn
        .query(
            batch_sql(state.config.db_pooler),
            &[
                (&products, Type::TEXT_ARRAY),
                (&channels, Type::TEXT_ARRAY),
                (&oses, Type::TEXT_ARRAY),
                (&arches, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    drop(conn);
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
    state: &AppState,
    os: Os,
    arch: Arch,
    rows: &[tokio_postgres::Row],
) -> Result<ChannelPlatform, ApiError> {
    let hub = &state.config.hub_url;
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

/// The header launchers send to identify an installation for staged rollouts.
pub const CLIENT_ID_HEADER: &str = "x-atlas-client-id";

/// Whom a consumer route buckets in a staged rollout ([`rollout::choose`]): the client id
/// the client sends (`x-atlas-client-id`, or `?clientId=` for clients that cannot set
/// headers), else, where the route allows it, the client's address.
pub struct RolloutClient {
    key: Option<String>,
    /// The key is part of the URL, so a shared cache (keyed by URL) keeps each client's
    /// answer apart.
    in_url: bool,
}

impl RolloutClient {
    /// Reads the client id of `req`; `by_address`: fall back to the address without one.
    pub fn of(req: &ApiRequest, by_address: bool) -> Result<Self, ApiError> {
        let valid = |what: &str, v: &str| {
            if (1..=200).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(v.to_owned())
            } else {
                Err(ApiError::invalid(format!(
                    "{what} must be 1 to 200 visible ASCII characters (an installation id)"
                )))
            }
        };
        let header = match req.headers.get(CLIENT_ID_HEADER) {
            Some(v) => Some(valid(
                CLIENT_ID_HEADER,
                v.to_str().map_err(|_| {
                    ApiError::invalid(format!("{CLIENT_ID_HEADER} must be visible ASCII"))
                })?,
            )?),
            None => None,
        };
        let query = req
            .query("clientId")
            .map(|v| valid("clientId", &v))
            .transpose()?;
        if let (Some(h), Some(q)) = (&header, &query)
            && h != q
        {
            return Err(ApiError::invalid(format!(
                "clientId and {CLIENT_ID_HEADER} name different clients; send one of them"
            )));
        }
        let in_url = header.is_none() && query.is_some();
        let key = header.or(query).or_else(|| {
            by_address
                .then(|| req.client_ip.map(|ip| ip.to_string()))
                .flatten()
        });
        Ok(RolloutClient { key, in_url })
    }

    /// The bucketing key, if the client can be bucketed.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// How an answer for this client may be cached: an answer that depends on its bucket
    /// (`staged`, and a client with a key) only by a shared cache that keys it by URL
    /// (`?clientId=`); else never by a shared one. `Vary: x-atlas-client-id` always, since
    /// the header can change the answer.
    pub fn cache(&self, state: &AppState, staged: bool) -> CachePolicy {
        CachePolicy {
            s_maxage: state.config.cache_s_maxage,
            vary: Some(CLIENT_ID_HEADER),
            private: staged && self.key.is_some() && !self.in_url,
        }
    }
}

/// Parsed `{product}/latest/{os}/{arch}?channel=&kind=` of a request.
pub struct LatestQuery {
    /// Product slug.
    pub product: Slug,
    /// Channel (default `stable`).
    pub channel: &'static str,
    /// OS.
    pub os: Os,
    /// Architecture.
    pub arch: Arch,
    /// Requested kind.
    pub kind: Option<String>,
    /// Who asks, for staged rollouts.
    pub client: RolloutClient,
}

impl LatestQuery {
    /// Parses path and query parameters.
    pub fn parse(req: &ApiRequest) -> Result<Self, ApiError> {
        Ok(LatestQuery {
            product: Slug::parse("product", req.param("product"))?,
            channel: parse_channel(req.query("channel").as_deref().unwrap_or("stable"))?,
            os: Os::parse(req.param("os"))?,
            arch: Arch::parse(req.param("arch"))?,
            kind: req.query("kind").map(|k| parse_kind(&k)).transpose()?,
            client: RolloutClient::of(req, true)?,
        })
    }

    /// Resolves the release this client gets from the channel (the rollout rule) and its
    /// artifact (`kind`, else primary), or 404; and whether the answer depended on the
    /// client's rollout bucket.
    pub async fn resolve(
        &self,
        state: &Arc<AppState>,
    ) -> Result<(Latest, LatestArtifact, bool), ApiError> {
        let not_found = || {
            ApiError::not_found(format!(
                "{} has no release on {} for {}/{}{}",
                self.product,
                self.channel,
                self.os.as_str(),
                self.arch.as_str(),
                self.kind
                    .as_deref()
                    .map(|k| format!(" of kind {k}"))
                    .unwrap_or_default()
            ))
        };
        let served = lookup_channel(
            state,
            self.product.as_str(),
            self.channel,
            self.os,
            self.arch,
        )
        .await?;
        let staged = served.staged();
        let latest = served
            .for_client(self.product.as_str(), &self.client)
            .cloned()
            .ok_or_else(not_found)?;
        let artifact = match &self.kind {
            Some(kind) => latest.artifacts.iter().find(|a| &a.kind == kind),
            None => latest
                .artifacts
                .iter()
                .find(|a| a.primary)
                .or(latest.artifacts.first()),
        }
        .cloned()
        .ok_or_else(not_found)?;
        Ok((latest, artifact, staged))
    }
}

/// `GET /api/v1/releases/{product}/latest/{os}/{arch}?channel=stable&kind=`.
pub async fn latest(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let q = LatestQuery::parse(&req)?;
    let (latest, artifact, staged) = q.resolve(&state).await?;
    /// Serialized straight from borrowed data (no intermediate `serde_json::Value`).
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        product: &'a str,
        channel: &'a str,
        version: &'a str,
        notes: &'a str,
        published_at: String,
        artifact: &'a LatestArtifact,
        artifacts: &'a [LatestArtifact],
    }
    let body = Body {
        product: q.product.as_str(),
        channel: q.channel,
        version: &latest.version,
        notes: &latest.notes,
        published_at: latest
            .published_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        artifact: &artifact,
        artifacts: &latest.artifacts,
    };
    respond::cached_json(&req, &body, q.client.cache(&state, staged))
}

/// `GET /api/v1/releases/{product}?limit=&cursor=`: history, newest first.
pub async fn list(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let slug = Slug::parse("product", req.param("product"))?;
    let (cursor, limit) = pagination(&req)?;
    let conn = state.db.conn().await?;
    let product = products::get(&conn, slug.as_str()).await?;
    let page = releases::page(&conn, product.id, cursor, limit).await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|(r, _)| r.id.to_string()))
        .flatten();
    let items: Vec<_> = page
        .iter()
        .map(|(r, count)| {
            json!({
                "version": r.version, "notes": r.notes,
                "publishedAt": r.published_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "yanked": r.yanked_at.is_some(), "artifactCount": count,
            })
        })
        .collect();
    respond::cached_json(
        &req,
        &json!({
            "product": product.slug,
            "updaterPublicKey": product.updater_public_key.as_deref().map(crate::domain::signature::tauri_pubkey),
            "releases": items, "nextCursor": next,
        }),
        public_cache(&state),
    )
}

/// `GET /api/v1/releases/{product}/{version}`.
pub async fn detail(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    let slug = Slug::parse("product", req.param("product"))?;
    let version = Version::parse(req.param("version"))?;
    let conn = state.db.conn().await?;
    let product = products::get(&conn, slug.as_str()).await?;
    let release = releases::get(&conn, product.id, &product.slug, &version.to_string()).await?;
    let artifacts = releases::artifacts(&conn, release.id).await?;
    respond::cached_json(
        &req,
        &ReleaseView::new(&state.config.hub_url, &product.slug, &release, &artifacts),
        public_cache(&state),
    )
}

async fn set_yanked(state: Arc<AppState>, req: ApiRequest, yanked: bool) -> ApiResult {
    let mut conn = state.db.conn().await?;
    // Credentials first: without valid ones, nothing else is read.
    let principal = tokens::authenticate_request(&conn, &state.config, &req).await?;
    let slug = Slug::parse("product", req.param("product"))?;
    let version = Version::parse(req.param("version"))?.to_string();
    req.no_body()?;
    principal.require_app(slug.as_str(), Scope::Yank, None)?;
    let product = products::get(&conn, slug.as_str()).await?;
    let tx = conn.transaction().await?;
    let release = releases::get_for_update(&tx, product.id, &product.slug, &version).await?;
    if yanked {
        let pointing = channels::pointing_at(&tx, release.id).await?;
        if !pointing.is_empty() {
            return Err(ApiError::conflict(
                "channel_points_here",
                format!(
                    "{} {version} is served by channel {}; move the channel first",
                    product.slug,
                    pointing.join(", ")
                ),
            )
            .with_extra(json!({ "channels": pointing })));
        }
    }
    let changed = release.yanked_at.is_some() != yanked;
    let release = releases::set_yanked(&tx, release.id, yanked).await?;
    if changed {
        let actor = Actor {
            name: principal.actor(),
            token_id: Some(principal.token_id),
        };
        let action = if yanked {
            "release.yank"
        } else {
            "release.unyank"
        };
        audit::record(
            &tx,
            &actor,
            action,
            &format!("{}@{version}", product.slug),
            json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    let artifacts = releases::artifacts(&conn, release.id).await?;
    respond::json(
        StatusCode::OK,
        &ReleaseView::new(&state.config.hub_url, &product.slug, &release, &artifacts),
    )
}

/// `POST /api/v1/releases/{product}/{version}/yank`.
pub async fn yank(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    set_yanked(state, req, true).await
}

/// `POST /api/v1/releases/{product}/{version}/unyank`.
pub async fn unyank(state: Arc<AppState>, req: ApiRequest) -> ApiResult {
    set_yanked(state, req, false).await
}
