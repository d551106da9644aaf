//! The schema migrations, embedded in the binary, one list per dialect.
//!
//! sqlx's own migrator is not used: it needs the `migrate` feature and a runtime choice of
//! directory per dialect, while this is a few lines and keeps the rules in sight. Each migration
//! runs in its own transaction together with its row in `schema_migrations`, so a crash leaves
//! it applied whole or not at all, and a restart applies only what is missing.

use sqlx::{AnyConnection, AnyPool, Executor};

use super::rows::{int, opt_int};
use super::{Dialect, now_ms};
use crate::{MasterKey, StoreError, StoreResult};

struct Migration {
    version: i64,
    step: Step,
}

/// What a migration does: SQL, or, where SQL cannot (sealing needs the master key), a step in
/// Rust that runs the same way, in the migration's transaction.
enum Step {
    Sql(&'static str),
    /// Reseals config values bound to their owner (`sql/reseal.rs`).
    ResealConfig,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        step: Step::Sql(include_str!("../../migrations/sqlite/0001_init.sql")),
    },
    Migration {
        version: 2,
        step: Step::ResealConfig,
    },
    Migration {
        version: 3,
        step: Step::Sql(include_str!(
            "../../migrations/sqlite/0003_token_scopes.sql"
        )),
    },
    Migration {
        version: 4,
        step: Step::Sql(include_str!(
            "../../migrations/sqlite/0004_server_version.sql"
        )),
    },
    Migration {
        version: 5,
        step: Step::Sql(include_str!("../../migrations/sqlite/0005_logs.sql")),
    },
    Migration {
        version: 6,
        step: Step::Sql(include_str!("../../migrations/sqlite/0006_migration.sql")),
    },
    Migration {
        version: 7,
        step: Step::Sql(include_str!("../../migrations/sqlite/0007_replacement.sql")),
    },
    Migration {
        version: 8,
        step: Step::Sql(include_str!("../../migrations/sqlite/0008_kubernetes.sql")),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        step: Step::Sql(include_str!("../../migrations/postgres/0001_init.sql")),
    },
    Migration {
        version: 2,
        step: Step::ResealConfig,
    },
    Migration {
        version: 3,
        step: Step::Sql(include_str!(
            "../../migrations/postgres/0003_token_scopes.sql"
        )),
    },
    Migration {
        version: 4,
        step: Step::Sql(include_str!(
            "../../migrations/postgres/0004_server_version.sql"
        )),
    },
    Migration {
        version: 5,
        step: Step::Sql(include_str!("../../migrations/postgres/0005_logs.sql")),
    },
    Migration {
        version: 6,
        step: Step::Sql(include_str!("../../migrations/postgres/0006_migration.sql")),
    },
    Migration {
        version: 7,
        step: Step::Sql(include_str!(
            "../../migrations/postgres/0007_replacement.sql"
        )),
    },
    Migration {
        version: 8,
        step: Step::Sql(include_str!(
            "../../migrations/postgres/0008_kubernetes.sql"
        )),
    },
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// Any constant shared by every control plane; "mesh" in ASCII, to be recognizable in pg_locks.
const PG_LOCK_KEY: i64 = 0x6d65_7368;

/// Applies the migrations this database lacks.
pub(crate) async fn run(pool: &AnyPool, dialect: Dialect, key: &MasterKey) -> StoreResult<()> {
    let migrations = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    let mut conn = pool.acquire().await?;
    {
        let mut tx = begin(&mut conn, dialect).await?;
        tx.execute(CREATE_TABLE).await?;
        tx.commit().await?;
    }
    let newest = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await?;
    let known = migrations.last().map_or(0, |m| m.version);
    if let Some(v) = opt_int(&newest, "v")?
        && v > known
    {
        // A newer mesh migrated this database; running old code on it could corrupt it.
        return Err(StoreError::FailedPrecondition(format!(
            "the database schema is at version {v}, newer than the {known} this mesh knows; \
             run a newer mesh"
        )));
    }
    for m in migrations {
        // The check is repeated inside the locked transaction: another control plane may have
        // applied it while this one waited for the lock.
        let mut tx = begin(&mut conn, dialect).await?;
        let applied = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| int(&row, "version"))
            .transpose()?
            .is_some();
        if applied {
            continue;
        }
        match m.step {
            Step::Sql(sql) => {
                tx.execute(sqlx::raw_sql(sql)).await?;
            }
            Step::ResealConfig => {
                super::reseal::config_values(&mut tx, key).await?;
            }
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(m.version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            dialect = dialect.as_str(),
            "applied a schema migration"
        );
    }
    Ok(())
}

/// A transaction that holds the migration lock: on SQLite the database's write lock, on
/// PostgreSQL an advisory lock released at commit, so a lock cannot outlive a failed migration.
async fn begin(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> StoreResult<sqlx::Transaction<'_, sqlx::Any>> {
    match dialect {
        Dialect::Sqlite => Ok(sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await?),
        Dialect::Postgres => {
            let mut tx = sqlx::Connection::begin(conn).await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}
