//! HyperLogLog: an approximate count of distinct clients in a fixed kilobyte, mergeable
//! (the union of two sketches is their register-wise maximum), so every instance can count
//! its own clients and the database adds them up without ever holding a client's id.
//!
//! 2^10 one-byte registers: a standard error of 1.04 / √1024 ≈ 3.3% (Flajolet et al.),
//! with linear counting for small counts, where it is close to exact.

/// Registers per sketch (2^[`P`]).
pub const REGISTERS: usize = 1 << P;
/// Index bits of a hash.
const P: u32 = 10;

/// The relative standard error of an estimate.
pub const STANDARD_ERROR: f64 = 1.04 / 32.0;

/// One sketch.
#[derive(Clone, PartialEq, Eq)]
pub struct Hll(Box<[u8; REGISTERS]>);

impl std::fmt::Debug for Hll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll(≈{:.0})", self.estimate())
    }
}

impl Default for Hll {
    fn default() -> Self {
        Hll(Box::new([0; REGISTERS]))
    }
}

impl Hll {
    /// Adds a 64-bit hash (uniformly distributed: a keyed HMAC of the client).
    pub fn insert(&mut self, hash: u64) {
        let index = (hash >> (64 - P)) as usize;
        // Rank: position of the first 1 in the remaining bits (1-based), capped.
        let rest = hash << P;
        let rank = (rest.leading_zeros() + 1).min(64 - P + 1) as u8;
        if self.0[index] < rank {
            self.0[index] = rank;
        }
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&r| r == 0)
    }

    /// Adds everything `other` counted.
    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// The registers, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.0[..]
    }

    /// A sketch from stored registers (`None` when they are not a sketch's).
    pub fn from_bytes(bytes: &[u8]) -> Option<Hll> {
        let registers: [u8; REGISTERS] = bytes.try_into().ok()?;
        Some(Hll(Box::new(registers)))
    }

    /// The estimated number of distinct hashes inserted.
    pub fn estimate(&self) -> f64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.0.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.0.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            // Linear counting: exact enough while registers are still empty.
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }

    /// [`Self::estimate`], rounded.
    pub fn count(&self) -> u64 {
        self.estimate().round() as u64
    }
}

/// |A ∩ B| by inclusion–exclusion (|A| + |B| − |A ∪ B|), never below zero: approximate,
/// with the absolute error of the three estimates.
pub fn intersection(a: &Hll, b: &Hll) -> u64 {
    let mut union = a.clone();
    union.merge(b);
    (a.estimate() + b.estimate() - union.estimate())
        .max(0.0)
        .round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn hash(i: u64) -> u64 {
        let d = Sha256::digest(i.to_le_bytes());
        u64::from_le_bytes(d[..8].try_into().unwrap())
    }

    fn sketch(range: std::ops::Range<u64>) -> Hll {
        let mut h = Hll::default();
        for i in range {
            h.insert(hash(i));
        }
        h
    }

    #[test]
    fn small_counts_are_close_to_exact_and_repeats_count_once() {
        assert_eq!(Hll::default().count(), 0);
        let mut h = sketch(0..10);
        for i in 0..10 {
            h.insert(hash(i));
        }
        assert_eq!(h.count(), 10);
        let h = sketch(0..200);
        assert!((h.estimate() - 200.0).abs() <= 6.0, "{h:?}");
    }

    #[test]
    fn large_counts_stay_within_three_standard_errors() {
        for n in [1_000u64, 10_000, 100_000] {
            let e = sketch(0..n).estimate();
            let error = (e - n as f64).abs() / n as f64;
            assert!(error < 3.0 * STANDARD_ERROR, "{n}: {e} ({error:.3})");
        }
    }

    #[test]
    fn merges_are_unions_and_intersections_follow() {
        let mut a = sketch(0..3_000);
        let b = sketch(2_000..5_000);
        let both = intersection(&a, &b);
        assert!((both as f64 - 1_000.0).abs() < 350.0, "{both}");
        a.merge(&b);
        let e = a.estimate();
        assert!((e - 5_000.0).abs() / 5_000.0 < 3.0 * STANDARD_ERROR, "{e}");
        assert_eq!(Hll::from_bytes(a.bytes()), Some(a.clone()));
        assert_eq!(Hll::from_bytes(&[0; 7]), None);
    }
}
