//! Fixtures: a fresh database per test on either backend, and a small world to test in.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use mesh_store::{AliasSpec, MasterKey, ServiceSpec, SqlStore, Store, StoreError, StoreResult};
use mesh_types::api::{CreateProvider, CreateStack, HealthCheck, ProviderKind, Rack, RackState};
use mesh_types::{Domain, InstanceSize, Name, UnixMs};
use sqlx::{AnyConnection, Connection, Executor};
use tempfile::TempDir;

pub const T: UnixMs = 1_700_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One empty database, removed when the test ends.
pub struct Fixture {
    pub kind: Kind,
    pub url: String,
    dir: Option<TempDir>,
    /// `(admin url, database name)` on PostgreSQL.
    pg: Option<(String, String)>,
}

pub fn key() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

pub fn other_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    async fn new(kind: Kind) -> Fixture {
        sqlx::any::install_default_drivers();
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("state.db");
                Fixture {
                    kind,
                    url: format!("sqlite://{}", path.display()),
                    dir: Some(dir),
                    pg: None,
                }
            }
            Kind::Postgres => {
                let admin = std::env::var("MESH_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                    panic!(
                        "MESH_TEST_POSTGRES_URL is not set: run the tests through scripts/test \
                         (or scripts/with-postgres)"
                    )
                });
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let db = format!(
                    "mesh_test_{}_{}_{nanos}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed)
                );
                let mut conn = AnyConnection::connect(&admin)
                    .await
                    .expect("admin connection");
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .await
                    .expect("create database");
                conn.close().await.ok();
                let (base, query) = match admin.split_once('?') {
                    Some((b, q)) => (b, format!("?{q}")),
                    None => (admin.as_str(), String::new()),
                };
                let (server, _) = base.rsplit_once('/').expect("admin url has a database");
                Fixture {
                    kind,
                    url: format!("{server}/{db}{query}"),
                    dir: None,
                    pg: Some((admin.clone(), db)),
                }
            }
        }
    }

    pub async fn open(&self, key: MasterKey) -> StoreResult<SqlStore> {
        SqlStore::open(&self.url, key).await
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("state.db"))
    }

    /// Rows in `table`, read around the store.
    pub async fn count(&self, table: &str) -> i64 {
        let mut conn = AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(&mut conn)
        .await
        .expect("count");
        conn.close().await.ok();
        sqlx::Row::try_get::<i64, _>(&row, "n").expect("count column")
    }

    /// Runs `sql` around the store.
    pub async fn execute(&self, sql: &str) {
        let mut conn = AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .expect("raw statement");
        conn.close().await.ok();
    }

    /// `(version, applied_at)` of every applied migration, read around the store.
    pub async fn migrations(&self) -> Vec<(i64, i64)> {
        let mut conn = AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        let rows =
            sqlx::query("SELECT version, applied_at FROM schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .expect("schema_migrations");
        conn.close().await.ok();
        rows.iter()
            .map(|r| {
                (
                    sqlx::Row::try_get(r, "version").expect("version"),
                    sqlx::Row::try_get(r, "applied_at").expect("applied_at"),
                )
            })
            .collect()
    }

    async fn cleanup(&self) {
        if let Some((admin, db)) = &self.pg {
            let mut conn = AnyConnection::connect(admin)
                .await
                .expect("admin connection");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .await
            .expect("drop database");
            conn.close().await.ok();
        }
    }
}

/// Runs `body` on a new fixture, then removes the database even if `body` panicked.
pub async fn run<F, Fut>(kind: Kind, body: F)
where
    F: FnOnce(Arc<Fixture>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fixture = Arc::new(Fixture::new(kind).await);
    let outcome = tokio::spawn(body(fixture.clone())).await;
    fixture.cleanup().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// Runs `body` with a store opened on a new fixture.
pub async fn run_store<F, Fut>(kind: Kind, body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    run(kind, |fixture| async move {
        let store = fixture.open(key()).await.expect("open store");
        body(Arc::new(store.clone())).await;
        store.close().await;
    })
    .await
}

pub fn name(s: &str) -> Name {
    Name::parse(s).expect("test name")
}

pub fn domain(s: &str) -> Domain {
    Domain::parse(s).expect("test domain")
}

pub fn rack(rack_name: &str, provider: &str, address: &str) -> Rack {
    Rack {
        name: name(rack_name),
        provider: name(provider),
        region: name("local"),
        size: "local".into(),
        domain: domain(&format!("{rack_name}.test")),
        address: address.into(),
        state: RackState::Ready,
        created_at: T,
        runtime: Default::default(),
    }
}

pub fn spec(service: &str) -> ServiceSpec {
    ServiceSpec {
        name: name(service),
        command: Some(format!("run-{service}")),
        schedule: None,
        port: 5000,
        instances: 1,
        size: InstanceSize::Small,
        health: HealthCheck::default(),
    }
}

pub fn alias(env: &str, rack_name: &str) -> AliasSpec {
    AliasSpec {
        domain: domain(&format!("{env}.{rack_name}.test")),
        rack: name(rack_name),
    }
}

/// Provider `local`, rack `local` (address 203.0.113.10), environment `shop` on it with its
/// alias `shop.local.test`, stack `app` with services `web` and `worker`.
pub async fn world(store: &dyn Store) {
    store
        .create_provider(
            &CreateProvider {
                name: name("local"),
                kind: ProviderKind::Local,
                secrets: Default::default(),
            },
            T,
        )
        .await
        .expect("provider");
    store
        .create_rack(&rack("local", "local", "203.0.113.10"))
        .await
        .expect("rack");
    environment(store, "shop").await;
}

/// Environment `env` on rack `local`, with stack `app` and services `web` and `worker`.
pub async fn environment(store: &dyn Store, env: &str) {
    store
        .create_environment(&name(env), &[name("local")], &[alias(env, "local")], T)
        .await
        .expect("environment");
    store
        .create_stack(
            env,
            &CreateStack {
                name: name("app"),
                formula: None,
            },
            T,
        )
        .await
        .expect("stack");
    for svc in ["web", "worker"] {
        store
            .create_service(env, "app", &spec(svc), T)
            .await
            .expect("service");
    }
}

/// Asserts a `NotFound` whose message is `what` + " not found".
#[track_caller]
pub fn not_found<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(e @ StoreError::NotFound(_)) => assert_eq!(e.to_string(), format!("{what} not found")),
        other => panic!("expected NotFound({what}), got {other:?}"),
    }
}

#[track_caller]
pub fn exists<T: std::fmt::Debug>(result: StoreResult<T>, message: &str) {
    match result {
        Err(StoreError::AlreadyExists(m)) => assert_eq!(m, message),
        other => panic!("expected AlreadyExists({message}), got {other:?}"),
    }
}

#[track_caller]
pub fn precondition<T: std::fmt::Debug>(result: StoreResult<T>, message: &str) {
    match result {
        Err(StoreError::FailedPrecondition(m)) => assert_eq!(m, message),
        other => panic!("expected FailedPrecondition({message}), got {other:?}"),
    }
}

#[track_caller]
pub fn invalid<T: std::fmt::Debug>(result: StoreResult<T>, contains: &str) {
    match result {
        Err(StoreError::Invalid(m)) => assert!(m.contains(contains), "{m}"),
        other => panic!("expected Invalid(..{contains}..), got {other:?}"),
    }
}
