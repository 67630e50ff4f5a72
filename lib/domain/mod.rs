//! The domain: identifiers, deploy tokens, products, uploads, releases, channels, audit.
//! SQL lives here, in functions over [`crate::db::Sql`]; handlers never write SQL.

pub mod audit;
pub mod channels;
pub mod ids;
pub mod limits;
pub mod oidc;
pub mod packs;
pub mod products;
pub mod releases;
pub mod rollout;
pub mod signature;
pub mod tokens;
pub mod uploads;
