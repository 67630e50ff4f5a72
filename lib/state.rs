//! What a function instance builds once and shares across invocations.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::domain::lookup::LookupBatcher;
use crate::domain::oidc::OidcVerifier;
use crate::domain::signin::Providers;
use crate::domain::usage::Recorder;
use crate::storage::Storage;

/// Per-instance state: configuration, database pool, storage client.
pub struct AppState {
    /// The configuration read at start.
    pub config: Config,
    /// Database pool (connections open on first use).
    pub db: Arc<Db>,
    pub storage: Storage,
    /// GitHub Actions OIDC verification (keys fetched on first use).
    pub oidc: OidcVerifier,
    /// Concurrent channel lookups, sent to the database in batches.
    pub lookups: Arc<LookupBatcher>,
    /// Operator sign-in providers (discovery fetched on first use).
    pub signin: Providers,
    /// Usage statistics recorded by this instance, written in batches.
    pub usage: Recorder,
    /// Whether the local developer sign-in is offered (only `atlas-hub serve` sets it, and
    /// only its router has the route).
    pub local_signin: bool,
}

impl AppState {
    /// Builds the state from a configuration without any network I/O.
    pub fn new(config: Config) -> Result<Self, String> {
        let db = Arc::new(Db::new(&config)?);
        let storage = Storage::new(&config.storage);
        let oidc = OidcVerifier::new(&config.oidc_issuer, config.oidc_audience.as_deref());
        let lookups = LookupBatcher::new(db.clone(), config.db_pooler, &config.hub_url);
        let signin = Providers::new(&config);
        let usage = Recorder::new(
            config.stats.on,
            config.stats.write_every,
            &config.token_pepper,
        );
        Ok(Self {
            config,
            db,
            storage,
            oidc,
            lookups,
            signin,
            usage,
            local_signin: false,
        })
    }

    /// An absolute Hub URL for `path` (which starts with `/`).
    pub fn hub_url(&self, path: &str) -> String {
        format!("{}{}", self.config.hub_url, path)
    }
}
