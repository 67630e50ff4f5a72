//! Recording what clients ask for, without slowing them: update checks (by product, channel,
//! platform, bundle type, the version the client runs and the version it was offered) and
//! latest lookups (by the version answered), and distinct clients per day as HyperLogLog
//! sketches ([`super::hll`]).
//!
//! Each instance adds observations up in memory; the request that finds no writer running
//! starts one (in the background, after its answer: Vercel's `waitUntil`), which waits until
//! [`WRITE_EVERY`] has passed since the last write, writes everything pending, and ends: a
//! writer never outlives its invocation by more than that, however long the load lasts, and
//! the next request starts the next one. Under load an
//! instance writes once a second whatever its request rate: the first version wrote as soon
//! as the previous write ended, and its writes took the database from the lookups (the
//! updater's throughput fell to 0.12× in the benchmark). A failed write is logged and
//! dropped: it never fails or delays an answer.
//!
//! Clients are never stored: only registers of sketches fed with a keyed hash of the client
//! id (or, without one, the address): SipHash-2-4, a pseudorandom function, under a 128-bit
//! key derived from `ATLAS_TOKEN_PEPPER` (HMAC-SHA256 cost a microsecond per request here).
//!
//! What is counted is what reaches the Hub: answers the CDN serves from its cache
//! (`s-maxage`) never do. Update checks that carry a client id are never shared-cached
//! during a rollout, and the dynamic updater's answers differ per current version in the
//! URL, so the installed base comes from them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use siphasher::sip::SipHasher24;
use tokio_postgres::types::Type;

use super::hll::Hll;
use crate::config::Secret;
use crate::db::Sql;
use crate::error::ApiError;

/// Distinct count rows and sketches an instance holds before it drops new ones (a flood of
/// made-up versions must not grow memory without bound); the drops are logged.
const MAX_PENDING_COUNTS: usize = 5_000;
const MAX_PENDING_SKETCHES: usize = 1_000;

/// How often an instance writes what it recorded, at most.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// An updater check (dynamic or the static manifest).
    Check,
    /// A latest lookup or latest download.
    Latest,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Check => "check",
            Event::Latest => "latest",
        }
    }
}

/// One request as the statistics see it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub product: &'a str,
    pub event: Event,
    pub channel: &'a str,
    /// `{os}-{arch}`, or empty (the static manifest names no platform).
    pub platform: &'a str,
    /// The bundle type or kind asked for, or empty.
    pub bundle: &'a str,
    /// Checks: the version the client runs (empty for the static manifest); latest: the
    /// version answered.
    pub version: &'a str,
    /// Checks: the version offered (empty: no update).
    pub offered: &'a str,
    /// The client id, or the address; `None` when neither is known.
    pub client: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CountKey {
    product: String,
    event: &'static str,
    channel: String,
    platform: String,
    bundle: String,
    version: String,
    offered: String,
}

/// A sketch's key: product, dimension (`all`, `version`, `offered`) and value.
type SketchKey = (String, &'static str, String);

/// Pending observations, found by a 64-bit fingerprint of their borrowed fields, so a
/// repeated observation (nearly all of them) costs no allocation; the stored key is compared
/// too, so a fingerprint collision can never merge two keys.
#[derive(Default)]
struct Pending {
    counts: HashMap<u64, (CountKey, i64), rustc_hash::FxBuildHasher>,
    sketches: HashMap<u64, (SketchKey, Hll), rustc_hash::FxBuildHasher>,
    dropped: u64,
    writing: bool,
    last_write: Option<Instant>,
}

fn fingerprint(parts: &[&str]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Whether a stored sketch value is `a` (when `b` is empty) or `a b`, without building it.
fn value_is(stored: &str, a: &str, b: &str) -> bool {
    if b.is_empty() {
        stored == a
    } else {
        stored.len() == a.len() + 1 + b.len()
            && stored.starts_with(a)
            && stored.as_bytes()[a.len()] == b' '
            && stored.ends_with(b)
    }
}

/// What one write carries.
#[derive(Default)]
pub struct Batch {
    counts: Vec<(CountKey, i64)>,
    sketches: Vec<(SketchKey, Hll)>,
    /// Observations dropped since the last write (limits reached).
    pub dropped: u64,
}

impl Batch {
    /// Requests the batch counts.
    pub fn requests(&self) -> i64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// The per-instance recorder.
pub struct Recorder {
    on: bool,
    /// The secret key of the client hash.
    key: (u64, u64),
    pending: Mutex<Pending>,
}

impl Recorder {
    /// A recorder (`on: false`: `ATLAS_STATS=off`, nothing is recorded).
    pub fn new(on: bool, pepper: &Secret) -> Self {
        let key = super::tokens::digest(pepper, "atlas-hub: client statistics, v1");
        let half = |i: usize| u64::from_le_bytes(key[i..i + 8].try_into().expect("32 bytes"));
        Recorder {
            on,
            key: (half(0), half(8)),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// The keyed hash a client is counted by: its id never leaves this function.
    fn client_hash(&self, client: &str) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.key.0, self.key.1);
        h.write(client.as_bytes());
        h.finish()
    }

    /// Adds one observation. Returns `true` when the caller must start the writer.
    pub fn record(&self, seen: &Seen<'_>) -> bool {
        if !self.on {
            return false;
        }
        let hash = seen.client.map(|c| self.client_hash(c));
        let event = seen.event.as_str();
        let count_print = fingerprint(&[
            seen.product,
            event,
            seen.channel,
            seen.platform,
            seen.bundle,
            seen.version,
            seen.offered,
        ]);
        // Sketches this observation feeds: everyone; the version a client runs; the release
        // a client was offered, per channel.
        let mut sketch_keys: [Option<(&'static str, &str, &str)>; 3] =
            [Some(("all", "", "")), None, None];
        if hash.is_some() && seen.event == Event::Check {
            if !seen.version.is_empty() {
                sketch_keys[1] = Some(("version", seen.version, ""));
            }
            if !seen.offered.is_empty() {
                sketch_keys[2] = Some(("offered", seen.channel, seen.offered));
            }
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let full = p.counts.len() >= MAX_PENDING_COUNTS;
        match p.counts.get_mut(&count_print) {
            Some((k, n))
                if k.product == seen.product
                    && k.event == event
                    && k.channel == seen.channel
                    && k.platform == seen.platform
                    && k.bundle == seen.bundle
                    && k.version == seen.version
                    && k.offered == seen.offered =>
            {
                *n += 1
            }
            Some(_) => p.dropped += 1,
            None if !full => {
                let key = CountKey {
                    product: seen.product.to_owned(),
                    event,
                    channel: seen.channel.to_owned(),
                    platform: seen.platform.to_owned(),
                    bundle: seen.bundle.to_owned(),
                    version: seen.version.to_owned(),
                    offered: seen.offered.to_owned(),
                };
                p.counts.insert(count_print, (key, 1));
            }
            None => p.dropped += 1,
        }
        if let Some(hash) = hash {
            for (dimension, a, b) in sketch_keys.into_iter().flatten() {
                let print = fingerprint(&[seen.product, dimension, a, b]);
                let full = p.sketches.len() >= MAX_PENDING_SKETCHES;
                match p.sketches.get_mut(&print) {
                    Some(((product, dim, v), h))
                        if product == seen.product && *dim == dimension && value_is(v, a, b) =>
                    {
                        h.insert(hash)
                    }
                    Some(_) => p.dropped += 1,
                    None if !full => {
                        let mut h = Hll::default();
                        h.insert(hash);
                        let value = if b.is_empty() {
                            a.to_owned()
                        } else {
                            format!("{a} {b}")
                        };
                        let key = (seen.product.to_owned(), dimension, value);
                        p.sketches.insert(print, (key, h));
                    }
                    None => p.dropped += 1,
                }
            }
        }
        !std::mem::replace(&mut p.writing, true)
    }

    /// How long the writer waits before its next write (at most one per [`WRITE_EVERY`]).
    pub fn wait(&self) -> Duration {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.last_write.map_or(Duration::ZERO, |at| {
            WRITE_EVERY.saturating_sub(at.elapsed())
        })
    }

    /// For the writer: everything pending, in key order (so writers of several instances
    /// lock rows in the same order), or `None` when nothing is. Either way the writer's turn
    /// ends: what is recorded from now on starts the next writer.
    pub fn take(&self) -> Option<Batch> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.writing = false;
        if p.counts.is_empty() && p.sketches.is_empty() {
            return None;
        }
        p.last_write = Some(Instant::now());
        let mut counts: Vec<_> = p.counts.drain().map(|(_, kv)| kv).collect();
        counts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut sketches: Vec<_> = p.sketches.drain().map(|(_, kv)| kv).collect();
        sketches.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some(Batch {
            counts,
            sketches,
            dropped: std::mem::take(&mut p.dropped),
        })
    }
}

/// Writes a batch into today's rows: counts added, sketches merged (register-wise maximum,
/// in the database: `atlas_hll_union`).
pub async fn write(db: &impl Sql, batch: &Batch) -> Result<(), ApiError> {
    if !batch.counts.is_empty() {
        let column = |f: fn(&CountKey) -> &str| -> Vec<&str> {
            batch.counts.iter().map(|(k, _)| f(k)).collect()
        };
        let counts: Vec<i64> = batch.counts.iter().map(|(_, n)| *n).collect();
        db.query(
            "INSERT INTO usage_daily
                (day, product, event, channel, platform, bundle, version, offered, count)
             SELECT current_date, * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                                $5::text[], $6::text[], $7::text[], $8::int8[])
             ON CONFLICT (day, product, event, channel, platform, bundle, version, offered)
             DO UPDATE SET count = usage_daily.count + EXCLUDED.count",
            &[
                (&column(|k| &k.product), Type::TEXT_ARRAY),
                (&column(|k| k.event), Type::TEXT_ARRAY),
                (&column(|k| &k.channel), Type::TEXT_ARRAY),
                (&column(|k| &k.platform), Type::TEXT_ARRAY),
                (&column(|k| &k.bundle), Type::TEXT_ARRAY),
                (&column(|k| &k.version), Type::TEXT_ARRAY),
                (&column(|k| &k.offered), Type::TEXT_ARRAY),
                (&counts, Type::INT8_ARRAY),
            ],
        )
        .await?;
    }
    if !batch.sketches.is_empty() {
        write_sketches(db, &batch.sketches).await?;
    }
    Ok(())
}

/// Merges sketches into today's rows: empty rows made where missing, every row locked in key
/// order (writers of other instances wait rather than overwrite), merged here (the
/// register-wise maximum: cheap in Rust, costly in SQL) and written back. `db` is one
/// transaction's connection, so the locks hold until the caller commits.
async fn write_sketches(db: &impl Sql, sketches: &[(SketchKey, Hll)]) -> Result<(), ApiError> {
    let products: Vec<&str> = sketches.iter().map(|((p, _, _), _)| p.as_str()).collect();
    let dimensions: Vec<&str> = sketches.iter().map(|((_, d, _), _)| *d).collect();
    let values: Vec<&str> = sketches.iter().map(|((_, _, v), _)| v.as_str()).collect();
    let keys: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
        (&products, Type::TEXT_ARRAY),
        (&dimensions, Type::TEXT_ARRAY),
        (&values, Type::TEXT_ARRAY),
    ];
    let empty = Hll::default();
    db.query(
        "INSERT INTO usage_clients (day, product, dimension, value, registers)
         SELECT current_date, p, d, v, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS k(p, d, v)
         ON CONFLICT DO NOTHING",
        &[
            keys[0].clone(),
            keys[1].clone(),
            keys[2].clone(),
            (&empty.bytes(), Type::BYTEA),
        ],
    )
    .await?;
    let stored = db
        .query(
            "SELECT u.product, u.dimension, u.value, u.registers FROM usage_clients u
             JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(p, d, v)
               ON u.product = k.p AND u.dimension = k.d AND u.value = k.v
             WHERE u.day = current_date
             ORDER BY u.product, u.dimension, u.value
             FOR UPDATE OF u",
            &keys,
        )
        .await?;
    let mut merged: Vec<Vec<u8>> = Vec::with_capacity(sketches.len());
    for ((product, dimension, value), h) in sketches {
        let mut sum = h.clone();
        if let Some(row) = stored.iter().find(|r| {
            r.get::<_, &str>(0) == product
                && r.get::<_, &str>(1) == *dimension
                && r.get::<_, &str>(2) == value
        }) && let Some(old) = Hll::from_bytes(row.get::<_, &[u8]>(3))
        {
            sum.merge(&old);
        }
        merged.push(sum.bytes().to_vec());
    }
    db.query(
        "UPDATE usage_clients u SET registers = n.r
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS n(p, d, v, r)
         WHERE u.day = current_date AND u.product = n.p AND u.dimension = n.d AND u.value = n.v",
        &[
            keys[0].clone(),
            keys[1].clone(),
            keys[2].clone(),
            (&merged, Type::BYTEA_ARRAY),
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen<'a>(client: Option<&'a str>, version: &'a str, offered: &'a str) -> Seen<'a> {
        Seen {
            product: "launcher",
            event: Event::Check,
            channel: "stable",
            platform: "linux-x86_64",
            bundle: "",
            version,
            offered,
            client,
        }
    }

    #[test]
    fn observations_add_up_and_clients_count_once_per_sketch() {
        let r = Recorder::new(true, &Secret::new("p".repeat(32)));
        assert!(
            r.record(&seen(Some("a"), "1.0.0", "1.1.0")),
            "the first starts the writer"
        );
        assert!(!r.record(&seen(Some("a"), "1.0.0", "1.1.0")));
        assert!(!r.record(&seen(Some("b"), "1.1.0", "")));
        assert!(!r.record(&seen(None, "1.1.0", "")));
        let batch = r.take().unwrap();
        assert_eq!(batch.requests(), 4);
        assert_eq!(batch.counts.len(), 2);
        let sketch = |d: &str, v: &str| {
            batch
                .sketches
                .iter()
                .find(|((_, dim, val), _)| *dim == d && val == v)
                .map(|(_, h)| h.count())
        };
        assert_eq!(sketch("all", ""), Some(2));
        assert_eq!(sketch("version", "1.0.0"), Some(1));
        assert_eq!(sketch("version", "1.1.0"), Some(1));
        assert_eq!(sketch("offered", "stable 1.1.0"), Some(1));
        assert!(r.take().is_none(), "drained");
        assert!(
            r.record(&seen(Some("c"), "1.0.0", "")),
            "each batch has its own writer"
        );
        assert!(!r.record(&seen(Some("d"), "1.0.0", "")));
        assert!(
            r.wait() > Duration::ZERO,
            "a write a moment ago: the next one waits"
        );
        assert!(r.take().is_some());
    }

    #[test]
    fn nothing_is_recorded_when_off_and_floods_are_bounded() {
        let off = Recorder::new(false, &Secret::new("p".repeat(32)));
        assert!(!off.record(&seen(Some("a"), "1.0.0", "")));
        assert!(off.take().is_none());
        let r = Recorder::new(true, &Secret::new("p".repeat(32)));
        let versions: Vec<String> = (0..MAX_PENDING_COUNTS + 10)
            .map(|i| format!("0.0.{i}"))
            .collect();
        for v in &versions {
            r.record(&seen(None, v, ""));
        }
        let batch = r.take().unwrap();
        assert_eq!(batch.counts.len(), MAX_PENDING_COUNTS);
        assert_eq!(batch.dropped, 10);
    }

    #[test]
    fn client_hashes_depend_on_the_pepper_and_never_show_the_client() {
        let a = Recorder::new(true, &Secret::new("a".repeat(32)));
        let b = Recorder::new(true, &Secret::new("b".repeat(32)));
        assert_eq!(a.client_hash("client-1"), a.client_hash("client-1"));
        assert_ne!(a.client_hash("client-1"), b.client_hash("client-1"));
        assert_ne!(a.client_hash("client-1"), a.client_hash("client-2"));
    }
}
