//! [`SqlStore`]: the [`Store`](crate::Store) on SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! One set of queries serves both databases. They use `$1, $2, ...` placeholders, which
//! PostgreSQL requires and which sqlx's SQLite driver maps to positions (SQLite itself takes
//! `$NNN` as a named parameter; sqlx binds it by its number). Only the schema (column types)
//! and how a write transaction starts differ per dialect.

mod certificates;
mod config;
mod deployments;
mod endpoints;
mod environments;
mod events;
mod instances;
mod logs;
mod lookup;
mod migrate;
mod platform;
mod replacements;
mod reseal;
mod rows;
mod servers;
mod services;
mod stacks;
mod store_impl;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::{MasterKey, StoreError, StoreResult};

/// The database behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// The store on SQLite (embedded, one process) or PostgreSQL (several control planes).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    key: Arc<MasterKey>,
    /// SQLite allows one writer at a time; queueing writers here instead of in SQLite's busy
    /// handler keeps them in order and never turns contention into `SQLITE_BUSY` errors.
    writer: Option<Arc<Mutex<()>>>,
}

// SQLite's own connections are cheap; a few let reads run beside the one writer.
const SQLITE_CONNECTIONS: u32 = 8;
const POSTGRES_CONNECTIONS: u32 = 16;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

// busy_timeout first: switching to WAL needs a lock another process may hold for a moment.
// synchronous=FULL makes every commit durable across power loss, as the trait promises.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; \
    PRAGMA foreign_keys = ON; \
    PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = FULL;";

impl SqlStore {
    /// Opens (and migrates) the database at `url`: `sqlite:///abs/path.db`,
    /// `sqlite://relative.db` (created if missing) or `postgres://user@host/db`.
    pub async fn open(url: &str, key: MasterKey) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => {
                if url.contains(":memory:") || url.contains("mode=memory") {
                    // Each pooled connection would get its own empty in-memory database.
                    return Err(StoreError::Invalid(
                        "in-memory SQLite is not supported; use a file, such as one in a \
                         temporary directory"
                            .into(),
                    ));
                }
                let with_mode = if url.contains("mode=") {
                    url.to_string()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                let options = AnyConnectOptions::from_str(&with_mode).map_err(|e| {
                    StoreError::Invalid(format!("database url {url:?} is invalid: {e}"))
                })?;
                Self::connect(options, Dialect::Sqlite, key).await
            }
            "postgres" | "postgresql" => {
                // The URL may hold a password: never echo it.
                let options = AnyConnectOptions::from_str(url).map_err(|e| {
                    StoreError::Invalid(format!("the postgres database url is invalid: {e}"))
                })?;
                Self::connect(options, Dialect::Postgres, key).await
            }
            _ => Err(StoreError::Invalid(format!(
                "database url scheme {scheme:?} is not supported; use sqlite:///path/to/state.db \
                 or postgres://user@host/database"
            ))),
        }
    }

    /// Opens (and migrates) the SQLite database at `path`, creating it if missing.
    pub async fn open_sqlite_path(path: &Path, key: MasterKey) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        // Going through SqliteConnectOptions percent-encodes the path, so any file name works.
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        let options = AnyConnectOptions::from_url(&url)?;
        Self::connect(options, Dialect::Sqlite, key).await
    }

    async fn connect(
        options: AnyConnectOptions,
        dialect: Dialect,
        key: MasterKey,
    ) -> StoreResult<SqlStore> {
        let pool_options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = match dialect {
            Dialect::Sqlite => {
                pool_options
                    .max_connections(SQLITE_CONNECTIONS)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(sqlx::raw_sql(SQLITE_PRAGMAS)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Dialect::Postgres => {
                pool_options
                    .max_connections(POSTGRES_CONNECTIONS)
                    .connect_with(options)
                    .await?
            }
        };
        migrate::run(&pool, dialect, &key).await?;
        Ok(SqlStore {
            pool,
            dialect,
            key: Arc::new(key),
            writer: (dialect == Dialect::Sqlite).then(|| Arc::new(Mutex::new(()))),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction, after the previous writer finished on SQLite.
    pub(crate) async fn write(&self) -> StoreResult<Write<'_>> {
        let turn = match &self.writer {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let tx = match self.dialect {
            // IMMEDIATE takes the write lock now: a deferred transaction that reads first could
            // fail to upgrade if another process wrote in between.
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok(Write { tx, _turn: turn })
    }

    /// Starts a read transaction, so that reads of several rows see one state.
    pub(crate) async fn read(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(self.pool.begin().await?)
    }

    pub(crate) fn key(&self) -> &MasterKey {
        &self.key
    }
}

/// A write transaction holding the writer's turn until it commits or drops (rolling back).
pub(crate) struct Write<'a> {
    tx: Transaction<'static, Any>,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl Write<'_> {
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub(crate) async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// The clock, for the few writes whose trait method takes no timestamp.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
