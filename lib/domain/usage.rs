//! Recording what clients ask for, without slowing them: update checks (by product, channel,
//! platform, bundle type, the version the client runs and the version it was offered) and
//! latest lookups (by the version answered), and distinct clients per day as HyperLogLog
//! sketches ([`super::hll`]).
//!
//! Each instance adds observations up in memory: a repeated one is found by one keyed hash,
//! with no allocation and no string comparison (about 0.12 µs a call, against 0.35–0.48 µs
//! with the seven fields compared).
//! The request that finds no writer running starts one (in the background, after its
//! answer: Vercel's `waitUntil`), which waits until `ATLAS_STATS_WRITE_SECS` (default 10)
//! have passed since the last write, writes everything pending, and ends: a writer never
//! outlives its invocation by more than that, and the next request starts the next one. An
//! idle instance writes at once. Each write is one transaction whatever the request rate;
//! writing back to back cost the updater 88% of its throughput, and once a second still
//! raised its p99 (docs/benchmark.md). A failed write is logged and dropped: it never fails
//! or delays an answer.
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
use std::hash::Hasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustc_hash::FxBuildHasher;
use siphasher::sip::SipHasher24;
use siphasher::sip128::{Hasher128, SipHasher13};
use tokio_postgres::types::Type;

use super::hll::Hll;
use crate::config::Secret;
use crate::db::Sql;
use crate::error::ApiError;

/// Distinct count rows and sketches an instance holds before it drops new ones (a flood of
/// made-up versions must not grow memory without bound); the drops are logged.
const MAX_PENDING_COUNTS: usize = 5_000;
const MAX_PENDING_SKETCHES: usize = 1_000;

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

impl CountKey {
    fn of(seen: &Seen<'_>) -> Self {
        CountKey {
            product: seen.product.to_owned(),
            event: seen.event.as_str(),
            channel: seen.channel.to_owned(),
            platform: seen.platform.to_owned(),
            bundle: seen.bundle.to_owned(),
            version: seen.version.to_owned(),
            offered: seen.offered.to_owned(),
        }
    }
}

/// A sketch's key: product, dimension (`all`, `version`, `offered`) and value.
type SketchKey = (String, &'static str, String);

/// One pending count row, and the sketches its clients feed (indices into
/// [`Pending::sketches`], found at the row's first known client).
struct Count {
    key: CountKey,
    n: i64,
    sketches: Option<[Option<u32>; 3]>,
}

/// What the instance has seen since the last write. A repeated observation (nearly all of
/// them) is found by its fingerprint alone.
#[derive(Default)]
struct Pending {
    counts: HashMap<u128, Count, FxBuildHasher>,
    sketches: Vec<(SketchKey, Hll)>,
    sketch_slots: HashMap<SketchKey, u32>,
    dropped: u64,
}

impl Pending {
    /// The sketches an observation like `seen` feeds: everyone; for checks, the version a
    /// client runs and the release it was offered, per channel.
    fn sketches_of(&mut self, seen: &Seen<'_>) -> [Option<u32>; 3] {
        let mut slots = [
            self.sketch_slot(seen.product, "all", String::new()),
            None,
            None,
        ];
        if seen.event == Event::Check {
            if !seen.version.is_empty() {
                slots[1] = self.sketch_slot(seen.product, "version", seen.version.to_owned());
            }
            if !seen.offered.is_empty() {
                let value = format!("{} {}", seen.channel, seen.offered);
                slots[2] = self.sketch_slot(seen.product, "offered", value);
            }
        }
        slots
    }

    fn sketch_slot(
        &mut self,
        product: &str,
        dimension: &'static str,
        value: String,
    ) -> Option<u32> {
        let key = (product.to_owned(), dimension, value);
        if let Some(&slot) = self.sketch_slots.get(&key) {
            return Some(slot);
        }
        if self.sketches.len() >= MAX_PENDING_SKETCHES {
            self.dropped += 1;
            return None;
        }
        let slot = self.sketches.len() as u32;
        self.sketch_slots.insert(key.clone(), slot);
        self.sketches.push((key, Hll::default()));
        Some(slot)
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
    client_key: (u64, u64),
    /// The secret key of observation fingerprints.
    print_key: (u64, u64),
    /// How often a busy instance writes, at most (`ATLAS_STATS_WRITE_SECS`).
    write_every: Duration,
    state: Mutex<State>,
}

/// What is pending, and the writer's turn.
#[derive(Default)]
struct State {
    pending: Pending,
    /// Whether a writer is running (or has been asked for).
    writing: bool,
    last_write: Option<Instant>,
}

impl Recorder {
    /// A recorder (`on: false`: `ATLAS_STATS=off`, nothing is recorded).
    pub fn new(on: bool, write_every: Duration, pepper: &Secret) -> Self {
        let key = super::tokens::digest(pepper, "atlas-hub: client statistics, v1");
        let half = |i: usize| u64::from_le_bytes(key[i..i + 8].try_into().expect("32 bytes"));
        Recorder {
            on,
            client_key: (half(0), half(8)),
            print_key: (half(16), half(24)),
            write_every,
            state: Mutex::default(),
        }
    }

    /// The keyed hash a client is counted by: its id never leaves this function.
    fn client_hash(&self, client: &str) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.client_key.0, self.client_key.1);
        h.write(client.as_bytes());
        h.finish()
    }

    /// An observation's identity: a 128-bit keyed hash (SipHash-1-3) of its fields, each
    /// prefixed by its length so no two field lists hash the same input. Two different
    /// observations share one with probability 2^-128 (about 10^-31 for a full batch), and
    /// the key is secret, so a client cannot make them; comparing the seven strings as well
    /// cost more than everything else `record` does.
    fn fingerprint(&self, seen: &Seen<'_>) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.print_key.0, self.print_key.1);
        for part in [
            seen.product,
            seen.event.as_str(),
            seen.channel,
            seen.platform,
            seen.bundle,
            seen.version,
            seen.offered,
        ] {
            h.write_usize(part.len());
            h.write(part.as_bytes());
        }
        h.finish128().as_u128()
    }

    /// Adds one observation. Returns `true` when the caller must start the writer.
    pub fn record(&self, seen: &Seen<'_>) -> bool {
        if !self.on {
            return false;
        }
        let hash = seen.client.map(|c| self.client_hash(c));
        let print = self.fingerprint(seen);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pending = &mut state.pending;
        let full = pending.counts.len() >= MAX_PENDING_COUNTS;
        let slots = match pending.counts.get_mut(&print) {
            Some(count) => {
                count.n += 1;
                count.sketches
            }
            None if !full => {
                let key = CountKey::of(seen);
                let count = Count {
                    key,
                    n: 1,
                    sketches: None,
                };
                pending.counts.insert(print, count);
                None
            }
            None => {
                pending.dropped += 1;
                Some([None; 3])
            }
        };
        if let Some(hash) = hash {
            // Sketch slots are found at a row's first known client, once.
            let slots = slots.unwrap_or_else(|| {
                let slots = pending.sketches_of(seen);
                if let Some(count) = pending.counts.get_mut(&print) {
                    count.sketches = Some(slots);
                }
                slots
            });
            for slot in slots.into_iter().flatten() {
                pending.sketches[slot as usize].1.insert(hash);
            }
        }
        !std::mem::replace(&mut state.writing, true)
    }

    /// How long the writer waits before its next write (at most one per `write_every`).
    pub fn wait(&self) -> Duration {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last_write.map_or(Duration::ZERO, |at| {
            self.write_every.saturating_sub(at.elapsed())
        })
    }

    /// For the writer: everything pending, in key order (so writers of several instances
    /// lock rows in the same order), or `None` when nothing is. Either way the writer's turn
    /// ends: what is recorded from now on starts the next writer.
    pub fn take(&self) -> Option<Batch> {
        let pending = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.writing = false;
            if state.pending.counts.is_empty() {
                return None;
            }
            state.last_write = Some(Instant::now());
            // Moved out, so requests wait for a move, not for the sorting.
            std::mem::take(&mut state.pending)
        };
        let mut counts: Vec<_> = pending.counts.into_values().map(|c| (c.key, c.n)).collect();
        counts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut sketches: Vec<_> = pending
            .sketches
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .collect();
        sketches.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some(Batch {
            counts,
            sketches,
            dropped: pending.dropped,
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
    let stored: HashMap<(&str, &str, &str), &[u8]> = stored
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
        .collect();
    let mut merged: Vec<Vec<u8>> = Vec::with_capacity(sketches.len());
    for ((product, dimension, value), h) in sketches {
        let mut sum = h.clone();
        if let Some(old) = stored
            .get(&(product.as_str(), *dimension, value.as_str()))
            .and_then(|bytes| Hll::from_bytes(bytes))
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
        let r = Recorder::new(true, Duration::from_secs(1), &Secret::new("p".repeat(32)));
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
    fn fields_are_told_apart_at_their_boundaries() {
        let r = Recorder::new(true, Duration::from_secs(1), &Secret::new("p".repeat(32)));
        // The same bytes split differently between version and offered: two rows.
        r.record(&seen(None, "1.0.0", "1.1.0"));
        r.record(&seen(None, "1.0.01", ".1.0"));
        r.record(&seen(None, "1.0.01", ".1.0"));
        let batch = r.take().unwrap();
        let n = |version: &str, offered: &str| {
            batch
                .counts
                .iter()
                .find(|(k, _)| k.version == version && k.offered == offered)
                .map(|(_, n)| *n)
        };
        assert_eq!(n("1.0.0", "1.1.0"), Some(1));
        assert_eq!(n("1.0.01", ".1.0"), Some(2));
        assert_eq!(batch.counts.len(), 2);
    }

    #[test]
    fn nothing_is_recorded_when_off_and_floods_are_bounded() {
        let off = Recorder::new(false, Duration::from_secs(1), &Secret::new("p".repeat(32)));
        assert!(!off.record(&seen(Some("a"), "1.0.0", "")));
        assert!(off.take().is_none());
        let r = Recorder::new(true, Duration::from_secs(1), &Secret::new("p".repeat(32)));
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
    fn observations_of_several_threads_add_up_in_one_batch() {
        let r = Recorder::new(true, Duration::from_secs(1), &Secret::new("p".repeat(32)));
        std::thread::scope(|s| {
            for t in 0..4 {
                let r = &r;
                s.spawn(move || {
                    for i in 0..50 {
                        let client = format!("client-{t}-{i}");
                        r.record(&seen(Some(&client), "1.0.0", "1.1.0"));
                    }
                });
            }
        });
        let batch = r.take().unwrap();
        assert_eq!(batch.requests(), 200);
        assert_eq!(batch.counts.len(), 1, "one row, whichever thread saw it");
        assert_eq!(batch.sketches.len(), 3, "all, version, offered: each once");
        for (_, h) in &batch.sketches {
            let n = h.count() as f64;
            assert!((n - 200.0).abs() < 200.0 * 3.0 * crate::domain::hll::STANDARD_ERROR);
        }
        assert!(r.take().is_none(), "drained");
    }

    #[test]
    fn client_hashes_depend_on_the_pepper_and_never_show_the_client() {
        let a = Recorder::new(true, Duration::from_secs(1), &Secret::new("a".repeat(32)));
        let b = Recorder::new(true, Duration::from_secs(1), &Secret::new("b".repeat(32)));
        assert_eq!(a.client_hash("client-1"), a.client_hash("client-1"));
        assert_ne!(a.client_hash("client-1"), b.client_hash("client-1"));
        assert_ne!(a.client_hash("client-1"), a.client_hash("client-2"));
    }
}
