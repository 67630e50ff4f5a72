//! Recording what clients ask for, without slowing them: update checks (by product, channel,
//! platform, bundle type, the version the client runs and the version it was offered) and
//! latest lookups (by the version answered), and distinct clients per day as HyperLogLog
//! sketches ([`super::hll`]).
//!
//! Each instance adds observations up in memory; the request that finds no write in flight
//! becomes the writer (in the background, after its answer: Vercel's `waitUntil`) and writes
//! everything pending in two statements, until nothing is left, as download counts are
//! written (`db::tally`). A failed write is logged and dropped: it never fails or delays an
//! answer. Clients are never stored: only registers of sketches fed with an HMAC of the
//! client id (or, without one, the address) under a key derived from `ATLAS_TOKEN_PEPPER`.
//!
//! What is counted is what reaches the Hub: answers the CDN serves from its cache
//! (`s-maxage`) never do. Update checks that carry a client id are never shared-cached
//! during a rollout, and the dynamic updater's answers differ per current version in the
//! URL, so the installed base comes from them.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
use sha2::Sha256;
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

/// A sketch's key: product, dimension (`all`, `version`, `offered`) and value.
type SketchKey = (String, &'static str, String);

#[derive(Default)]
struct Pending {
    counts: HashMap<CountKey, i64>,
    sketches: HashMap<SketchKey, Hll>,
    dropped: u64,
    writing: bool,
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
    mac: hmac::Hmac<Sha256>,
    pending: Mutex<Pending>,
}

impl Recorder {
    /// A recorder (`on: false`: `ATLAS_STATS=off`, nothing is recorded).
    pub fn new(on: bool, pepper: &Secret) -> Self {
        let key = super::tokens::digest(pepper, "atlas-hub: client statistics, v1");
        Recorder {
            on,
            mac: <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key)
                .expect("HMAC accepts keys of any length"),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// The keyed hash a client is counted by: its id never leaves this function.
    fn client_hash(&self, client: &str) -> u64 {
        let mut mac = self.mac.clone();
        mac.update(client.as_bytes());
        let digest = mac.finalize().into_bytes();
        u64::from_be_bytes(digest[..8].try_into().expect("32-byte digest"))
    }

    /// Adds one observation. Returns `true` when the caller must start the writer.
    pub fn record(&self, seen: &Seen<'_>) -> bool {
        if !self.on {
            return false;
        }
        let hash = seen.client.map(|c| self.client_hash(c));
        let key = CountKey {
            product: seen.product.to_owned(),
            event: seen.event.as_str(),
            channel: seen.channel.to_owned(),
            platform: seen.platform.to_owned(),
            bundle: seen.bundle.to_owned(),
            version: seen.version.to_owned(),
            offered: seen.offered.to_owned(),
        };
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let full = p.counts.len() >= MAX_PENDING_COUNTS;
        match p.counts.get_mut(&key) {
            Some(n) => *n += 1,
            None if !full => {
                p.counts.insert(key, 1);
            }
            None => p.dropped += 1,
        }
        if let Some(hash) = hash {
            let mut keys = vec![(seen.product.to_owned(), "all", String::new())];
            if seen.event == Event::Check && !seen.version.is_empty() {
                keys.push((seen.product.to_owned(), "version", seen.version.to_owned()));
            }
            if seen.event == Event::Check && !seen.offered.is_empty() {
                let value = format!("{} {}", seen.channel, seen.offered);
                keys.push((seen.product.to_owned(), "offered", value));
            }
            for key in keys {
                let full = p.sketches.len() >= MAX_PENDING_SKETCHES;
                match p.sketches.get_mut(&key) {
                    Some(h) => h.insert(hash),
                    None if !full => {
                        let mut h = Hll::default();
                        h.insert(hash);
                        p.sketches.insert(key, h);
                    }
                    None => p.dropped += 1,
                }
            }
        }
        !std::mem::replace(&mut p.writing, true)
    }

    /// For the writer: everything pending, in key order (so writers of several instances
    /// lock rows in the same order); `None` when nothing is, which ends the writer's turn.
    pub fn take(&self) -> Option<Batch> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.counts.is_empty() && p.sketches.is_empty() {
            p.writing = false;
            return None;
        }
        let mut counts: Vec<_> = p.counts.drain().collect();
        counts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut sketches: Vec<_> = p.sketches.drain().collect();
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
        let products: Vec<&str> = batch
            .sketches
            .iter()
            .map(|((p, _, _), _)| p.as_str())
            .collect();
        let dimensions: Vec<&str> = batch.sketches.iter().map(|((_, d, _), _)| *d).collect();
        let values: Vec<&str> = batch
            .sketches
            .iter()
            .map(|((_, _, v), _)| v.as_str())
            .collect();
        let registers: Vec<&[u8]> = batch.sketches.iter().map(|(_, h)| h.bytes()).collect();
        db.query(
            "INSERT INTO usage_clients (day, product, dimension, value, registers)
             SELECT current_date, * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
             ON CONFLICT (day, product, dimension, value)
             DO UPDATE SET registers = atlas_hll_union(usage_clients.registers, EXCLUDED.registers)",
            &[
                (&products, Type::TEXT_ARRAY),
                (&dimensions, Type::TEXT_ARRAY),
                (&values, Type::TEXT_ARRAY),
                (&registers, Type::BYTEA_ARRAY),
            ],
        )
        .await?;
    }
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
        assert!(r.take().is_none(), "drained: the writer stops");
        assert!(r.record(&seen(Some("c"), "1.0.0", "")), "a new writer");
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
