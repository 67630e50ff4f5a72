//! Rate limits as configured (`ATLAS_LIMIT_*`); `domain::limits` enforces them.

use std::time::Duration;

/// `count` requests per `period`, in bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (and the largest burst).
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// Parses `<count>/<period>`: `600/min`, `30/10min`, `5/s`, `100/1h`.
    pub fn parse(s: &str) -> Option<Rate> {
        let (count, period) = s.trim().split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (n, unit) = period.split_at(split);
        let n: u64 = if n.is_empty() { 1 } else { n.parse().ok()? };
        let unit_secs = match unit {
            "s" => 1,
            "min" => 60,
            "h" => 3600,
            _ => return None,
        };
        let secs = n
            .checked_mul(unit_secs)
            .filter(|s| (1..=86_400).contains(s))?;
        Some(Rate {
            count,
            period: Duration::from_secs(secs),
        })
    }

    /// How long after one request the bucket has room for the next.
    pub fn emission_secs(self) -> f64 {
        self.period.as_secs_f64() / f64::from(self.count)
    }
}

/// The configured limits (`ATLAS_LIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Presigned uploads per actor (token, or OIDC repository).
    pub presign: Rate,
    /// Publishes and pack deploys per actor.
    pub publish: Rate,
    /// Failed authentications per client address.
    pub auth_failures: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        let per_minute = |count| Rate {
            count,
            period: Duration::from_secs(60),
        };
        Limits {
            presign: per_minute(600),
            publish: per_minute(60),
            auth_failures: per_minute(30),
        }
    }
}
