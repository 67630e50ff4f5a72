//! PostgreSQL: a small pool per function instance, one statement mode chosen by
//! configuration, the schema-version guard, and migrations.

pub mod migrate;

use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, config::SslMode};

use crate::config::{Config, Pooler};
use crate::http::ApiError;

/// A statement parameter with its PostgreSQL type (needed for unnamed statements).
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// The instance's database handle. Building it opens no connection.
pub struct Db {
    pool: Pool,
    pooler: Pooler,
    schema_ok: AtomicBool,
}

impl Db {
    /// Builds the pool from the configuration; connections open on first use.
    pub fn new(config: &Config) -> Result<Self, String> {
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
        let pool = Pool::builder(manager)
            .max_size(config.db_pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("database pool: {e}"))?;
        Ok(Self {
            pool,
            pooler: config.db_pooler,
            schema_ok: AtomicBool::new(false),
        })
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

    /// A connection without the schema check (health and migrations).
    pub async fn raw_conn(&self) -> Result<Conn, ApiError> {
        let client = self.pool.get().await?;
        Ok(Conn {
            client,
            pooler: self.pooler,
        })
    }
}

/// 503 `schema_behind`: the code expects migrations the database has not had.
pub fn schema_behind(current: i32) -> ApiError {
    ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "schema_behind",
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

/// A pooled connection.
pub struct Conn {
    client: deadpool_postgres::Object,
    pooler: Pooler,
}

impl Conn {
    /// Starts a transaction.
    pub async fn transaction(&mut self) -> Result<Tx<'_>, ApiError> {
        let pooler = self.pooler;
        Ok(Tx {
            tx: self.client.transaction().await?,
            pooler,
        })
    }
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    pooler: Pooler,
}

impl Tx<'_> {
    /// Commits.
    pub async fn commit(self) -> Result<(), ApiError> {
        Ok(self.tx.commit().await?)
    }
}

/// Running statements: prepared and cached per connection when direct, unnamed
/// (`query_typed`) behind a transaction-mode pooler where named statements break.
pub trait Sql: Sync {
    /// All rows.
    fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send;

    /// At most one row.
    fn query_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
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
    fn batch(&self, sql: &str) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send;
}

macro_rules! impl_sql {
    ($t:ty, $field:ident) => {
        impl Sql for $t {
            async fn query(
                &self,
                sql: &str,
                params: &[Param<'_>],
            ) -> Result<Vec<Row>, tokio_postgres::Error> {
                match self.pooler {
                    Pooler::Transaction => self.$field.query_typed(sql, params).await,
                    Pooler::None => {
                        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                        let stmt = self.$field.prepare_typed_cached(sql, &types).await?;
                        let values: Vec<&(dyn ToSql + Sync)> =
                            params.iter().map(|(v, _)| *v).collect();
                        self.$field.query(&stmt, &values).await
                    }
                }
            }

            async fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
                self.$field.batch_execute(sql).await
            }
        }
    };
}

impl_sql!(Conn, client);
impl_sql!(Tx<'_>, tx);
