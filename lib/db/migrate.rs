//! Forward-only SQL migrations from `migrations/`, applied under an advisory lock, each in
//! its own transaction, with a checksum so an edited applied migration is refused.

use sha2::{Digest, Sha256};

use super::{Conn, Sql};
use crate::error::ApiError;

/// One migration file, compiled into every binary so code and schema move together.
pub struct Migration {
    /// Number from the file name (`0001_…` → 1).
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. `tests/layout.rs` fails when `migrations/` and this list differ.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_schema.sql",
        sql: include_str!("../../migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "0002_rate_limits.sql",
        sql: include_str!("../../migrations/0002_rate_limits.sql"),
    },
    Migration {
        version: 3,
        name: "0003_invariants.sql",
        sql: include_str!("../../migrations/0003_invariants.sql"),
    },
    Migration {
        version: 4,
        name: "0004_operators.sql",
        sql: include_str!("../../migrations/0004_operators.sql"),
    },
    Migration {
        version: 5,
        name: "0005_signin.sql",
        sql: include_str!("../../migrations/0005_signin.sql"),
    },
    Migration {
        version: 6,
        name: "0006_yank_reason.sql",
        sql: include_str!("../../migrations/0006_yank_reason.sql"),
    },
    Migration {
        version: 7,
        name: "0007_usage.sql",
        sql: include_str!("../../migrations/0007_usage.sql"),
    },
];

/// The schema version this build expects.
pub fn expected_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Hex sha256 of a migration's text.
pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Arbitrary constant shared by every `migrate` run: only one applies migrations at a time.
const LOCK_KEY: i64 = 0x6174_6c61_735f_6d67; // "atlas_mg"

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS atlas_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";

/// The highest applied version (0 on an empty database).
pub async fn current_version(conn: &Conn) -> Result<i32, ApiError> {
    let row = conn
        .query_opt(
            "SELECT coalesce(max(version), 0) FROM atlas_schema_migrations",
            &[],
        )
        .await;
    match row {
        Ok(Some(row)) => Ok(row.get(0)),
        Ok(None) => Ok(0),
        // 42P01: the bookkeeping table does not exist yet.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct Report {
    /// Names of migrations applied now.
    pub applied: Vec<&'static str>,
    /// The version after running.
    pub version: i32,
}

/// Why migrating stopped.
#[derive(Debug)]
pub enum MigrateError {
    /// An applied migration's file changed since it was applied.
    Edited {
        name: String,
    },
    Database(String),
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::Edited { name } => write!(
                f,
                "migration {name} was edited after it was applied to this database; \
                 migrations are forward-only: restore the file and add a new migration instead"
            ),
            MigrateError::Database(e) => write!(f, "migration failed: {e}"),
        }
    }
}

impl From<super::SqlError> for MigrateError {
    fn from(e: super::SqlError) -> Self {
        MigrateError::Database(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })
    }
}

impl From<ApiError> for MigrateError {
    fn from(e: ApiError) -> Self {
        MigrateError::Database(e.cause.unwrap_or(e.detail))
    }
}

/// Applies pending migrations in `list` (normally [`MIGRATIONS`]).
pub async fn run(conn: &mut Conn, list: &[Migration]) -> Result<Report, MigrateError> {
    let mut report = Report::default();
    for m in list {
        let tx = conn.transaction().await?;
        tx.batch(&format!(
            "SELECT pg_advisory_xact_lock({LOCK_KEY}); {CREATE_TABLE}"
        ))
        .await?;
        let sum = checksum(m.sql);
        let applied = tx
            .query_opt(
                "SELECT checksum FROM atlas_schema_migrations WHERE version = $1",
                &[(&m.version, tokio_postgres::types::Type::INT4)],
            )
            .await?;
        match applied {
            Some(row) => {
                let stored: String = row.get(0);
                if stored != sum {
                    return Err(MigrateError::Edited {
                        name: m.name.to_owned(),
                    });
                }
            }
            None => {
                tx.batch(m.sql).await?;
                tx.query(
                    "INSERT INTO atlas_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    &[
                        (&m.version, tokio_postgres::types::Type::INT4),
                        (&m.name, tokio_postgres::types::Type::TEXT),
                        (&sum, tokio_postgres::types::Type::TEXT),
                    ],
                )
                .await?;
                report.applied.push(m.name);
            }
        }
        tx.commit().await?;
        report.version = m.version;
    }
    Ok(report)
}
