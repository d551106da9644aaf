//! The control plane on PostgreSQL, two of them sharing one database as behind a load balancer.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use super::*;

/// A fresh database on the test PostgreSQL server; dropped by `drop_database`.
pub async fn fresh_database() -> (String, String) {
    let admin = std::env::var("MESH_TEST_POSTGRES_URL")
        .expect("MESH_TEST_POSTGRES_URL is not set: run the tests through scripts/test (or scripts/with-postgres)");
    let mut b = [0u8; 6];
    getrandom_name(&mut b);
    let name = format!(
        "mesh_api_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => panic!("MESH_TEST_POSTGRES_URL has no database path: {admin}"),
    };
    (url, name)
}

fn getrandom_name(b: &mut [u8]) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let pid = std::process::id() as u128;
    for (i, x) in b.iter_mut().enumerate() {
        *x = ((t >> (i * 8)) ^ (pid >> (i * 4))) as u8;
    }
}

pub async fn drop_database(name: &str) {
    let admin = std::env::var("MESH_TEST_POSTGRES_URL").unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn two_control_planes_share_one_postgres_database() {
    let (url, name) = fresh_database().await;
    let tmp = tempfile::TempDir::new().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = TestServer::start_in(a_dir.clone(), Some(url.clone()), true).await;
    assert!(!a.token.is_empty());
    // Every control plane of one platform shares the master key.
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::copy(a_dir.join("master.key"), b_dir.join("master.key")).unwrap();
    let mut b = TestServer::start_in(b_dir, Some(url), false).await;
    assert!(
        b.running.as_ref().unwrap().admin_token().is_none(),
        "only the first control plane makes an admin token"
    );
    b.token = a.token.clone();

    ok::<Value>(
        a.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        a.post("/v1/environments/shop/stacks", json!({"name": "app"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        a.patch(
            "/v1/environments/shop/stacks/app/config",
            json!({"set": {"SECRET": "pg-sealed"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let vars: Vec<Value> = b.get_ok("/v1/environments/shop/stacks/app/config").await;
    assert_eq!(
        vars[0]["value"], "pg-sealed",
        "b reads what a wrote, and opens its seal"
    );
    err(
        b.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CONFLICT,
        "already_exists",
        "shop",
    )
    .await;
    let envs: Vec<Value> = b.get_ok("/v1/environments").await;
    assert_eq!(envs.len(), 1);

    a.stop().await;
    b.stop().await;
    drop_database(&name).await;
}
