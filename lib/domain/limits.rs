//! Abuse limits, stored in PostgreSQL so they hold across every function instance: per
//! actor on presign and publish, and per client address on failed authentication.
//!
//! Each limit is a GCRA bucket (`rate_limits` row, SQL function `atlas_rate_take` in
//! migration 0002): `count` requests per `period`, in bursts of up to `count`. A refused
//! request is not counted, and is answered 429 `rate_limited` with `Retry-After`.

use std::net::IpAddr;

use http::StatusCode;
use tokio_postgres::types::Type;

pub use crate::config::{Limits, Rate};
use crate::db::Sql;
use crate::error::{ApiError, Code};

/// The limited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /api/v1/uploads/presign`.
    Presign,
    /// Release publish and pack deploy.
    Publish,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Presign => "presign",
            Action::Publish => "publish",
        }
    }
}

const TAKE_SQL: &str = "SELECT atlas_rate_take($1, $2, $3) AS wait";

/// Counts one `action` by `actor` (a token id, or `oidc:<repository>`), or answers 429.
pub async fn take(
    db: &impl Sql,
    limits: &Limits,
    action: Action,
    actor: &str,
) -> Result<(), ApiError> {
    let rate = match action {
        Action::Presign => limits.presign,
        Action::Publish => limits.publish,
    };
    let key = format!("{}:{actor}", action.as_str());
    let wait = take_key(db, &key, rate).await?;
    if wait > 0.0 {
        return Err(rate_limited(
            wait,
            format!(
                "too many {} requests for this token ({} per {} s); retry after the time in Retry-After",
                action.as_str(),
                rate.count,
                rate.period.as_secs()
            ),
        ));
    }
    Ok(())
}

/// Takes one from bucket `key`: 0 when taken, else the seconds until there is room.
async fn take_key(db: &impl Sql, key: &str, rate: Rate) -> Result<f64, ApiError> {
    let count = i32::try_from(rate.count).unwrap_or(i32::MAX);
    let period = rate.period.as_secs_f64();
    let row = db
        .query_one(
            TAKE_SQL,
            &[
                (&key, Type::TEXT),
                (&count, Type::INT4),
                (&period, Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.get("wait"))
}

/// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1).
pub fn rate_limited(wait_secs: f64, detail: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, detail);
    e.retry_after = Some(wait_secs.ceil().clamp(1.0, 86_400.0) as u64);
    e
}

/// The failed-authentication bucket of one client address.
#[derive(Debug, Clone)]
pub struct AuthGuard {
    key: String,
    rate: Rate,
}

impl AuthGuard {
    /// The guard for a client: IPv4 addresses one by one, IPv6 by /64 (one site's
    /// addresses are one client); requests whose host gives no address share one bucket.
    pub fn for_client(ip: Option<IpAddr>, rate: Rate) -> Self {
        let client = match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            None => "unknown".to_owned(),
        };
        AuthGuard {
            key: format!("authfail:{client}"),
            rate,
        }
    }

    /// The bucket key (`authfail:<address>`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Seconds the bucket is over its limit by: an address is blocked while its next
    /// failure would be refused, that is while `tat > now() + threshold`.
    pub fn block_threshold_secs(&self) -> f64 {
        self.rate.period.as_secs_f64() - self.rate.emission_secs()
    }

    /// Counts a failed authentication. `Some(429)` when the address is over its limit.
    pub async fn failed(&self, db: &impl Sql) -> Result<Option<ApiError>, ApiError> {
        let wait = take_key(db, &self.key, self.rate).await?;
        Ok((wait > 0.0).then(|| self.blocked_error(wait)))
    }

    /// 429 for an address whose failed authentications are over the limit, or `None`.
    pub async fn check(&self, db: &impl Sql) -> Result<Option<ApiError>, ApiError> {
        let row = db
            .query_opt(
                "SELECT extract(epoch FROM tat - now())::float8 - $2 AS wait
                 FROM rate_limits WHERE key = $1 AND tat > now() + make_interval(secs => $2)",
                &[
                    (&self.key, Type::TEXT),
                    (&self.block_threshold_secs(), Type::FLOAT8),
                ],
            )
            .await?;
        Ok(row.map(|r| self.blocked_error(r.get("wait"))))
    }

    /// The 429 for a blocked address.
    pub fn blocked_error(&self, wait: f64) -> ApiError {
        rate_limited(
            wait,
            format!(
                "too many failed authentications from this address ({} per {} s); \
                 check the token, then retry after the time in Retry-After",
                self.rate.count,
                self.rate.period.as_secs()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_parse_count_and_period() {
        let r = |count, secs| {
            Some(Rate {
                count,
                period: Duration::from_secs(secs),
            })
        };
        assert_eq!(Rate::parse("600/min"), r(600, 60));
        assert_eq!(Rate::parse(" 30 / 10min "), r(30, 600));
        assert_eq!(Rate::parse("5/s"), r(5, 1));
        assert_eq!(Rate::parse("100/1h"), r(100, 3600));
        for bad in [
            "", "0/min", "-1/min", "10", "10/", "10/day", "10/0s", "x/min", "10/25h",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn addresses_key_by_host_or_ipv6_site() {
        let rate = Limits::default().auth_failures;
        let key = |ip: &str| AuthGuard::for_client(ip.parse().ok(), rate).key;
        assert_eq!(key("203.0.113.9"), "authfail:203.0.113.9");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "authfail:2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), key("2001:db8:1:2::9"));
        assert_eq!(key("::ffff:203.0.113.9"), "authfail:203.0.113.9");
        assert_eq!(key("not an address"), "authfail:unknown");
    }

    #[test]
    fn the_block_threshold_leaves_room_for_exactly_count_failures() {
        let g = AuthGuard::for_client(None, Rate::parse("4/min").unwrap());
        assert_eq!(g.block_threshold_secs(), 45.0);
        let e = rate_limited(0.2, "x");
        assert_eq!(
            (e.status.as_u16(), e.code.as_str(), e.retry_after),
            (429, "rate_limited", Some(1))
        );
    }
}
