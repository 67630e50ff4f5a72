//! Staged rollouts: a stable hash bucket per (release, client) decides who is offered a
//! channel's release while its `rolloutPercent` is under 100.

use sha2::{Digest, Sha256};

/// The client's bucket (0–99) for `product`@`version`: the same inputs always give the same
/// bucket, and different releases reshuffle clients so the same ones are not always first.
pub fn bucket(product: &str, version: &str, client_id: &str) -> u8 {
    let mut h = Sha256::new();
    for part in [product, version, client_id] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"));
    (n % 100) as u8
}

/// Whether a client in `bucket` is offered a release rolled out to `percent` of clients.
/// Raising the percent only adds buckets, so nobody who got the release loses it.
pub fn offered(percent: i16, bucket: u8) -> bool {
    i16::from(bucket) < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_rollout_reaches_a_quarter_of_ten_thousand_clients() {
        let reached = (0..10_000)
            .filter(|i| offered(25, bucket("launcher", "2.0.0", &format!("client-{i}"))))
            .count();
        assert!((2300..=2700).contains(&reached), "{reached} of 10000");
    }

    #[test]
    fn the_same_client_always_gets_the_same_answer() {
        let b = bucket("launcher", "2.0.0", "install-42");
        for _ in 0..100 {
            assert_eq!(bucket("launcher", "2.0.0", "install-42"), b);
        }
    }

    #[test]
    fn raising_the_percent_only_adds_clients() {
        for i in 0..2000 {
            let b = bucket("runner", "1.0.0", &i.to_string());
            for p in 0..100 {
                if offered(p, b) {
                    assert!(offered(p + 1, b));
                }
            }
        }
        assert!(!offered(0, 0) && offered(100, 99));
    }
}
