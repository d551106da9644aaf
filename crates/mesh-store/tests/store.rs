//! The `Store` contract, checked against both implementations: every test runs once on SQLite
//! (a temporary file) and once on PostgreSQL (a fresh database on the server named by
//! `MESH_TEST_POSTGRES_URL`; run through `scripts/with-postgres`). The PostgreSQL half fails,
//! rather than skips, when that server is missing, so a green run always means both.

/// `both!(a, b)` makes tests `a::sqlite`, `a::postgres`, ... from `async fn a(Arc<dyn Store>)`.
macro_rules! both {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::support::run_store(crate::support::Kind::Sqlite, super::$test).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::support::run_store(crate::support::Kind::Postgres, super::$test).await
            }
        }
    )*};
}

/// Like `both!`, for `async fn a(Arc<Fixture>)` tests that open stores themselves.
macro_rules! both_fixture {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::support::run(crate::support::Kind::Sqlite, super::$test).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::support::run(crate::support::Kind::Postgres, super::$test).await
            }
        }
    )*};
}

// The crate root is tests/, so the submodules under tests/store/ need their paths spelled out.
#[path = "store/support.rs"]
mod support;

#[path = "store/config.rs"]
mod config;
#[path = "store/deployments.rs"]
mod deployments;
#[path = "store/endpoints.rs"]
mod endpoints;
#[path = "store/environments.rs"]
mod environments;
#[path = "store/logs.rs"]
mod logs;
#[path = "store/platform.rs"]
mod platform;
#[path = "store/sealing.rs"]
mod sealing;
#[path = "store/servers.rs"]
mod servers;
#[path = "store/services.rs"]
mod services;
#[path = "store/storage.rs"]
mod storage;
#[path = "store/tokens.rs"]
mod tokens;
