//! Integration tests: real PostgreSQL, a real S3 protocol server, the real binaries over HTTP.
//! One module per area, laid out like the routes.

mod api;
mod blob_store;
mod integrity;
mod support;
mod tools;

mod bad_input;
mod blob;
mod cli;
mod console;
mod consumers;
mod contract;
mod faults;
mod foundation;
mod hardening;
mod layout;
mod limits;
mod operators;
mod packs;
mod releases;
mod rollout;
mod secrets;
mod sessions;
mod signin;
mod soak;
mod stats;
mod updater_clients;
