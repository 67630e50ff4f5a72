//! Atlas Hub: release distribution as Rust serverless functions.
//!
//! Layout (see the README's "where things live"):
//! Layers point one way: hosts → routes → http → state → domain → db / storage → config,
//! with [`error`] beside them all.
//! - [`hosts`]: the three ways the one router is served: Vercel, AWS Lambda, one local process.
//! - [`routes`]: the route table (axum router + OpenAPI operations) and one module per
//!   endpoint family; handlers take parsed input, call the domain, shape output.
//! - [`http`]: extractors, middleware (request ids, the log line, problems, 304s), responses,
//!   the session cookie and its cross-site checks.
//! - [`state`]: what a function instance builds once: configuration, pools, clients.
//! - [`domain`]: identifiers, deploy tokens, operator sessions and sign-in, releases,
//!   channels, packs, audit, usage statistics, the hot lookup; all SQL.
//! - [`db`]: the connection pool, statement mode (direct or behind a transaction pooler),
//!   migrations, batched counters.
//! - [`storage`]: object storage providers (S3-compatible, Vercel Blob) behind one interface.
//! - [`config`]: the typed configuration, read once from the environment.
//! - [`error`]: the one error type and its stable codes.
//! - [`dev`]: what the local command starts when nothing is configured (private PostgreSQL,
//!   S3 store, PgBouncer).

pub mod config;
pub mod db;
pub mod dev;
pub mod domain;
pub mod error;
pub mod hosts;
pub mod http;
pub mod routes;
pub mod state;
pub mod storage;

#[cfg(test)]
mod test_support;

/// The crate version, reported by `/api/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
