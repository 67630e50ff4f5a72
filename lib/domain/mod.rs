//! The domain: identifiers, deploy tokens, operator sessions and access rules, products, uploads, releases, channels, audit.
//! SQL lives here, in functions over [`crate::db::Sql`]; handlers never write SQL (the hot
//! channel lookup and its batcher included: [`lookup`]).

pub mod audit;
pub mod channels;
pub mod hll;
pub mod ids;
pub mod limits;
pub mod lookup;
pub mod oidc;
pub mod packs;
pub mod page;
pub mod products;
pub mod releases;
pub mod rollout;
pub mod sessions;
pub mod signature;
pub mod signin;
pub mod stats;
pub mod tokens;
pub mod uploads;
pub mod usage;
