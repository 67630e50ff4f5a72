//! PostgreSQL: a small pool per function instance, one statement mode chosen by
//! configuration, the schema-version guard, and migrations.
//!
//! Statements outside a transaction run on a few connections shared by every request of the
//! instance: concurrent requests' statements are pipelined on them (tokio-postgres sends
//! whatever is queued in one write, PostgreSQL answers them back to back), instead of each
//! request holding a connection for its own round trip. A transaction takes a connection
//! of its own from the pool. See docs/benchmark.md for what this bought.

pub mod migrate;
pub mod tally;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, config::SslMode};

use crate::config::{Config, Pooler};
use crate::error::{ApiError, Code};

/// How long a statement, `BEGIN` or `COMMIT` may wait for the database before the request
/// gives up with 503 `db_unavailable`. The Hub's statements take milliseconds; without a
/// deadline, a server that accepts and never answers (suspended, or cut off by the network)
/// would hold every request until the platform's function timeout. [`Sql::batch`] (migrations,
/// advisory locks) has none: a migration may legitimately run long.
pub const STATEMENT_DEADLINE: Duration = Duration::from_secs(5);

/// A statement that failed, or that the database did not answer in time.
#[derive(Debug)]
pub enum SqlError {
    /// PostgreSQL, the pooler or the connection reported an error.
    Postgres(tokio_postgres::Error),
    /// No answer within [`STATEMENT_DEADLINE`].
    Timeout,
}

impl SqlError {
    /// The SQLSTATE, for errors the server reported.
    pub fn code(&self) -> Option<&SqlState> {
        self.as_db_error().map(DbError::code)
    }

    /// The server's error, if it reported one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match self {
            SqlError::Postgres(e) => e.as_db_error(),
            SqlError::Timeout => None,
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Postgres(e) => e.fmt(f),
            SqlError::Timeout => write!(
                f,
                "no answer from the database within {STATEMENT_DEADLINE:?}"
            ),
        }
    }
}

impl std::error::Error for SqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SqlError::Postgres(e) => Some(e),
            SqlError::Timeout => None,
        }
    }
}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> Self {
        SqlError::Postgres(e)
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Postgres(e) => e.into(),
            SqlError::Timeout => ApiError::db_unavailable(SqlError::Timeout),
        }
    }
}

/// Runs `op` within [`STATEMENT_DEADLINE`].
async fn within_deadline<T>(
    op: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, SqlError> {
    match tokio::time::timeout(STATEMENT_DEADLINE, op).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(SqlError::Timeout),
    }
}

/// A statement parameter with its PostgreSQL type (needed for unnamed statements).
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// The instance's database handle. Building it opens no connection.
pub struct Db {
    pool: Pool,
    pooler: Pooler,
    schema_ok: AtomicBool,
    /// Where the shared connections come from (at most two per slot: one in use, one
    /// replacing it after it broke).
    shared_pool: Pool,
    shared: Box<[Slot]>,
    next: AtomicUsize,
    tally: tally::Tally,
}

/// One shared connection, opened on first use and replaced when it breaks.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<Arc<Object>>>,
    opening: tokio::sync::Mutex<()>,
}

impl Slot {
    fn live(&self) -> Option<Arc<Object>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }
}

fn pool(config: &Config, max_size: usize) -> Result<Pool, String> {
    let pg: tokio_postgres::Config = config
        .database_url
        .expose()
        .parse()
        .map_err(|e| format!("DATABASE_URL: {e}"))?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if pg.get_ssl_mode() == SslMode::Require {
        Manager::from_config(pg, tls_connector(), manager_config)
    } else {
        Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("database pool: {e}"))
}

impl Db {
    /// Builds the pool from the configuration; connections open on first use.
    /// `ATLAS_DB_POOL_SIZE` bounds the transaction pool; a quarter of it (at least one) is
    /// the number of shared connections: one by default, which measured best (docs/benchmark.md).
    pub fn new(config: &Config) -> Result<Self, String> {
        let shared = (config.db_pool_size / 4).max(1);
        Ok(Self {
            pool: pool(config, config.db_pool_size)?,
            pooler: config.db_pooler,
            schema_ok: AtomicBool::new(false),
            shared_pool: pool(config, shared * 2)?,
            shared: (0..shared).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            tally: tally::Tally::default(),
        })
    }

    /// Counters incremented by requests and written in batches (see [`tally`]).
    pub fn tally(&self) -> &tally::Tally {
        &self.tally
    }

    /// The next shared connection (round robin), opening or reopening it when needed.
    async fn shared(&self) -> Result<Arc<Object>, ApiError> {
        let slot = &self.shared[self.next.fetch_add(1, Ordering::Relaxed) % self.shared.len()];
        if let Some(client) = slot.live() {
            return Ok(client);
        }
        let _opening = slot.opening.lock().await;
        if let Some(client) = slot.live() {
            return Ok(client);
        }
        let client = Arc::new(self.shared_pool.get().await?);
        *slot.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    /// A connection, after checking once per instance that the schema is not behind the code.
    pub async fn conn(&self) -> Result<Conn, ApiError> {
        let conn = self.raw_conn().await?;
        if !self.schema_ok.load(Ordering::Relaxed) {
            let current = migrate::current_version(&conn).await?;
            if current < migrate::expected_version() {
                return Err(schema_behind(current));
            }
            self.schema_ok.store(true, Ordering::Relaxed);
        }
        Ok(conn)
    }

    /// Runs `statement` without waiting for the schema check first: on an instance that has
    /// not checked its schema yet, the check goes to the database together with the
    /// statement (pipelined on the connection: one round trip for both), and a schema behind
    /// the code answers 503 `schema_behind` whatever the statement returned. The hot lookup
    /// runs so, so a cold instance's first answer waits for the database once, not twice.
    pub async fn pipelined<T, F, Fut>(&self, statement: F) -> Result<T, ApiError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let conn = self.raw_conn().await?;
        if self.schema_ok.load(Ordering::Relaxed) {
            return statement(conn).await;
        }
        let check = self.raw_conn().await?;
        let (current, result) = tokio::join!(migrate::current_version(&check), statement(conn));
        let current = current?;
        if current < migrate::expected_version() {
            return Err(schema_behind(current));
        }
        self.schema_ok.store(true, Ordering::Relaxed);
        result
    }

    /// A connection without the schema check (health and migrations).
    pub async fn raw_conn(&self) -> Result<Conn, ApiError> {
        Ok(Conn {
            client: Client::Shared(self.shared().await?),
            pool: self.pool.clone(),
            pooler: self.pooler,
        })
    }
}

/// 503 `schema_behind`: the code expects migrations the database has not had.
pub fn schema_behind(current: i32) -> ApiError {
    ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        Code::SchemaBehind,
        format!(
            "the database schema is at version {current} but this deployment needs {}; \
             run `atlas-hub migrate` against this database before deploying",
            migrate::expected_version()
        ),
    )
}

fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// A request's handle on the database: statements run on a shared connection until the
/// first transaction, which takes a connection of its own from the pool (kept until drop).
pub struct Conn {
    client: Client,
    pool: Pool,
    pooler: Pooler,
}

enum Client {
    Shared(Arc<Object>),
    Own(Box<Object>),
}

impl Conn {
    fn client(&self) -> &Object {
        match &self.client {
            Client::Shared(c) => c,
            Client::Own(c) => c,
        }
    }

    pub async fn transaction(&mut self) -> Result<Tx<'_>, ApiError> {
        if let Client::Shared(_) = self.client {
            self.client = Client::Own(Box::new(self.pool.get().await?));
        }
        let Client::Own(client) = &mut self.client else {
            unreachable!("a transaction runs on a connection of its own")
        };
        Ok(Tx {
            tx: within_deadline(client.transaction()).await?,
            pooler: self.pooler,
        })
    }
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    pooler: Pooler,
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<(), ApiError> {
        Ok(within_deadline(self.tx.commit()).await?)
    }

    /// Rolls back now, waiting for it (a dry run's answer goes out only once its locks are
    /// released and nothing of it can land), where a drop would only queue the rollback.
    pub async fn rollback(self) -> Result<(), ApiError> {
        Ok(within_deadline(self.tx.rollback()).await?)
    }
}

/// Running statements: prepared and cached per connection when direct, unnamed
/// (`query_typed`) behind a transaction-mode pooler where named statements break.
pub trait Sql: Sync {
    fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, SqlError>> + Send;

    /// At most one row.
    fn query_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Row>, SqlError>> + Send {
        async move { Ok(self.query(sql, params).await?.into_iter().next()) }
    }

    /// Exactly one row (a missing row is a bug in the statement, answered 500).
    fn query_one(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Row, ApiError>> + Send {
        async move {
            self.query(sql, params)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::internal(format!("statement returned no row: {sql}")))
        }
    }

    /// Statements without parameters or results, as one round trip (DDL, locks).
    fn batch(&self, sql: &str) -> impl Future<Output = Result<(), SqlError>> + Send;
}

macro_rules! impl_sql {
    ($t:ty, $this:ident => $client:expr) => {
        impl Sql for $t {
            async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
                let $this = self;
                within_deadline(async {
                    match self.pooler {
                        Pooler::Transaction => $client.query_typed(sql, params).await,
                        Pooler::None => {
                            let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                            let stmt = $client.prepare_typed_cached(sql, &types).await?;
                            let values: Vec<&(dyn ToSql + Sync)> =
                                params.iter().map(|(v, _)| *v).collect();
                            $client.query(&stmt, &values).await
                        }
                    }
                })
                .await
            }

            async fn batch(&self, sql: &str) -> Result<(), SqlError> {
                let $this = self;
                Ok($client.batch_execute(sql).await?)
            }
        }
    };
}

impl_sql!(Conn, this => this.client());
impl_sql!(Tx<'_>, this => this.tx);
