//! Staged rollouts: a stable hash bucket per (release, client) decides who is offered a
//! channel's release while its `rolloutPercent` is under 100.
//!
//! The rule is the same on every route that answers "what should this client run" (the
//! dynamic updater, `latest.json`, the latest lookup, the latest download and, through the
//! lookup, the runner installer): [`choose`].

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

/// Which of a channel's two releases a client gets. Outside a staged rollout (`percent`
/// 100), `current`. During one, `current` only for a client whose bucket for the current
/// release is inside `percent`; `previous` for the others and for a client that cannot be
/// bucketed (`client: None`). `percent` 0 halts the rollout: nobody new is offered it.
pub fn choose<'a, T>(
    product: &str,
    percent: i16,
    current: Option<(&str, &'a T)>,
    previous: Option<&'a T>,
    client: Option<&str>,
) -> Option<&'a T> {
    let (version, release) = current?;
    if percent >= 100 {
        return Some(release);
    }
    match client {
        Some(who) if offered(percent, bucket(product, version, who)) => Some(release),
        _ => previous,
    }
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

    #[test]
    fn choose_gives_the_previous_release_outside_the_bucket_and_to_the_unbucketed() {
        let pick = |percent, who| choose("launcher", percent, Some(("2.0.0", &2)), Some(&1), who);
        assert_eq!(pick(100, None), Some(&2));
        assert_eq!(pick(0, Some("anyone")), Some(&1));
        assert_eq!(pick(50, None), Some(&1));
        let inside = (0..1000)
            .map(|i| format!("c{i}"))
            .find(|c| offered(50, bucket("launcher", "2.0.0", c)))
            .unwrap();
        assert_eq!(pick(50, Some(&inside)), Some(&2));
        assert_eq!(
            choose::<u8>("launcher", 50, None, Some(&1), Some(&inside)),
            None
        );
    }
}
