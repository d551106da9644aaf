//! Instances as agents last reported them. An instance id is unique within its environment.

use mesh_types::Version;
use mesh_types::api::Instance;
use sqlx::any::AnyRow;

use super::rows::{
    enum_of, int, int_as, name, opt_int, opt_int_as, opt_name, opt_text, text, wire,
};
use super::{SqlStore, lookup};
use crate::{StoreError, StoreResult};

fn instance(row: &AnyRow) -> StoreResult<Instance> {
    Ok(Instance {
        id: text(row, "instance_id")?,
        environment: name(row, "environment")?,
        stack: name(row, "stack")?,
        service: name(row, "service")?,
        deployment: opt_int_as(row, "deployment")?.map(Version),
        server: opt_name(row, "server")?,
        // The control plane names the rack when it lists instances.
        rack: None,
        state: enum_of(row, "state")?,
        address: opt_text(row, "address")?,
        restarts: int_as(row, "restarts")?,
        exit_code: opt_int_as(row, "exit_code")?,
        message: opt_text(row, "message")?,
        started_at: opt_int(row, "started_at")?,
        updated_at: int(row, "updated_at")?,
    })
}

pub(crate) async fn upsert(store: &SqlStore, i: &Instance) -> StoreResult<()> {
    let mut w = store.write().await?;
    upsert_in(w.conn(), i).await?;
    w.commit().await
}

/// Replaces everything one server reported before with what it reports now, atomically.
/// Instances of environments, stacks or services deleted meanwhile are dropped: the agent
/// removes them at its next reconcile.
pub(crate) async fn replace_for_server(
    store: &SqlStore,
    server: &str,
    instances: &[Instance],
) -> StoreResult<()> {
    let mut w = store.write().await?;
    sqlx::query("DELETE FROM instances WHERE server = $1")
        .bind(server)
        .execute(w.conn())
        .await?;
    for i in instances {
        match upsert_in(w.conn(), i).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    w.commit().await
}

async fn upsert_in(conn: &mut sqlx::AnyConnection, i: &Instance) -> StoreResult<()> {
    let (env, stack, service) = (i.environment.as_str(), i.stack.as_str(), i.service.as_str());
    let (env_id, stack_id) = lookup::stack(conn, env, stack).await?;
    let service_id = lookup::service_in(conn, stack_id, env, stack, service).await?;
    sqlx::query(
        "INSERT INTO instances (environment_id, instance_id, service_id, deployment, server, \
         state, address, restarts, exit_code, message, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (environment_id, instance_id) DO UPDATE SET \
         service_id = excluded.service_id, deployment = excluded.deployment, \
         server = excluded.server, state = excluded.state, address = excluded.address, \
         restarts = excluded.restarts, exit_code = excluded.exit_code, \
         message = excluded.message, started_at = excluded.started_at, \
         updated_at = excluded.updated_at",
    )
    .bind(env_id)
    .bind(i.id.as_str())
    .bind(service_id)
    .bind(i.deployment.map(|v| i64::from(v.0)))
    .bind(i.server.as_ref().map(|s| s.as_str()))
    .bind(wire(&i.state)?)
    .bind(i.address.as_deref())
    .bind(i64::from(i.restarts))
    .bind(i.exit_code.map(i64::from))
    .bind(i.message.as_deref())
    .bind(i.started_at)
    .bind(i.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn list(store: &SqlStore, env: &str) -> StoreResult<Vec<Instance>> {
    let mut tx = store.read().await?;
    let env_id = lookup::environment(&mut tx, env).await?;
    let rows = sqlx::query(
        "SELECT i.instance_id, e.name AS environment, st.name AS stack, sv.name AS service, \
         i.deployment, i.server, i.state, i.address, i.restarts, i.exit_code, i.message, \
         i.started_at, i.updated_at FROM instances i \
         JOIN environments e ON e.id = i.environment_id \
         JOIN services sv ON sv.id = i.service_id JOIN stacks st ON st.id = sv.stack_id \
         WHERE i.environment_id = $1",
    )
    .bind(env_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = rows.iter().map(instance).collect::<StoreResult<Vec<_>>>()?;
    out.sort_by(|a, b| (&a.stack, &a.service, &a.id).cmp(&(&b.stack, &b.service, &b.id)));
    Ok(out)
}

pub(crate) async fn delete(store: &SqlStore, env: &str, id: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let done = sqlx::query("DELETE FROM instances WHERE environment_id = $1 AND instance_id = $2")
        .bind(env_id)
        .bind(id)
        .execute(w.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "instance {id:?} in environment {env:?}"
        )));
    }
    w.commit().await
}
