//! Atlas Hub: release distribution as Rust serverless functions.
//!
//! Layout (see the README's "where things live"):
//! - [`http`]: request/response types, problem+json errors, the route table and its matcher.
//! - [`routes`]: one module per endpoint family; handlers parse input, call the domain, shape output.
//! - [`domain`]: identifiers, deploy tokens, releases, channels, audit, in terms of the database.
//! - [`db`]: the connection pool, statement mode (direct or behind a transaction pooler), migrations.
//! - [`storage`]: object storage providers (S3-compatible) behind one interface.
//! - [`hosts`]: the three ways the same handlers are served: Vercel, AWS Lambda, one local process.
//! - [`dev`]: what the local command starts when nothing is configured (private PostgreSQL, S3 store).

pub mod config;
pub mod db;
pub mod dev;
pub mod domain;
pub mod hosts;
pub mod http;
pub mod routes;
pub mod state;
pub mod storage;

#[cfg(test)]
mod test_support;

/// The crate version, reported by `/api/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
