//! Deployments, numbered v0, v1, ... per stack, and their logs.
//!
//! The next number lives in the stack row (`stacks.next_version`) and is taken with
//! `UPDATE ... RETURNING` in the transaction that inserts the deployment. On PostgreSQL that
//! update locks the stack row, so concurrent control planes get distinct, gapless numbers; a
//! `MAX(version) + 1` would hand the same number to two of them.

use mesh_types::api::{
    Deployment, DeploymentBuild, DeploymentStatus, DeploymentStep, NewDeployment,
};
use mesh_types::{UnixMs, Version};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{corrupt, enum_of, int, int_as, name, opt_int, opt_text, text};
use super::{SqlStore, lookup};
use crate::{StoreError, StoreResult};

macro_rules! select {
    () => {
        "SELECT e.name AS environment, st.name AS stack, d.version, d.status, d.formula, \
         d.source_digest, d.message, d.created_by, d.created_at, d.finished_at, \
         d.description, d.image, d.processes, d.release_command, d.steps \
         FROM deployments d JOIN stacks st ON st.id = d.stack_id \
         JOIN environments e ON e.id = st.environment_id"
    };
}

fn deployment(row: &AnyRow) -> StoreResult<Deployment> {
    Ok(Deployment {
        environment: name(row, "environment")?,
        stack: name(row, "stack")?,
        version: Version(int_as(row, "version")?),
        status: enum_of(row, "status")?,
        formula: text(row, "formula")?.parse().map_err(corrupt)?,
        source_digest: opt_text(row, "source_digest")?,
        message: opt_text(row, "message")?,
        created_by: text(row, "created_by")?,
        created_at: int(row, "created_at")?,
        finished_at: opt_int(row, "finished_at")?,
        description: text(row, "description")?,
        image: opt_text(row, "image")?
            .map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
        processes: serde_json::from_str(&text(row, "processes")?)
            .map_err(|e| corrupt(e.to_string()))?,
        release_command: opt_text(row, "release_command")?,
        steps: serde_json::from_str(&text(row, "steps")?).map_err(|e| corrupt(e.to_string()))?,
    })
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| corrupt(e.to_string()))
}

async fn load(
    conn: &mut AnyConnection,
    stack_id: i64,
    version: Version,
) -> StoreResult<Deployment> {
    let row = sqlx::query(concat!(
        select!(),
        " WHERE d.stack_id = $1 AND d.version = $2"
    ))
    .bind(stack_id)
    .bind(i64::from(version.0))
    .fetch_one(conn)
    .await?;
    deployment(&row)
}

/// `(stack id, deployment id)`.
async fn find(
    conn: &mut AnyConnection,
    env: &str,
    stack: &str,
    version: Version,
) -> StoreResult<(i64, i64)> {
    let (_, stack_id) = lookup::stack(conn, env, stack).await?;
    let row = sqlx::query("SELECT id FROM deployments WHERE stack_id = $1 AND version = $2")
        .bind(stack_id)
        .bind(i64::from(version.0))
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "deployment {version} of stack {stack:?} in environment {env:?}"
            ))
        })?;
    Ok((stack_id, int(&row, "id")?))
}

pub(crate) async fn create(
    store: &SqlStore,
    env: &str,
    stack: &str,
    new: &NewDeployment,
    at: UnixMs,
) -> StoreResult<Deployment> {
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack).await?;
    let row = sqlx::query(
        "UPDATE stacks SET next_version = next_version + 1 WHERE id = $1 RETURNING next_version",
    )
    .bind(stack_id)
    .fetch_one(w.conn())
    .await?;
    let next: u32 = int_as(&row, "next_version")?;
    let version =
        Version(next.checked_sub(1).ok_or_else(|| {
            corrupt(format!("stack {stack:?} has next deployment number {next}"))
        })?);
    sqlx::query(
        "INSERT INTO deployments (stack_id, version, status, formula, source_digest, \
         created_by, created_at, description, image, processes, release_command) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(stack_id)
    .bind(i64::from(version.0))
    .bind(DeploymentStatus::Pending.as_str())
    .bind(new.formula.as_str())
    .bind(new.source_digest.as_deref())
    .bind(new.created_by.as_str())
    .bind(at)
    .bind(new.description.as_str())
    .bind(new.image.as_ref().map(json).transpose()?)
    .bind(json(&new.processes)?)
    .bind(new.release_command.as_deref())
    .execute(w.conn())
    .await?;
    let created = load(w.conn(), stack_id, version).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn list(store: &SqlStore, env: &str, stack: &str) -> StoreResult<Vec<Deployment>> {
    let mut tx = store.read().await?;
    let (_, stack_id) = lookup::stack(&mut tx, env, stack).await?;
    let rows = sqlx::query(concat!(
        select!(),
        " WHERE d.stack_id = $1 ORDER BY d.version"
    ))
    .bind(stack_id)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(deployment).collect()
}

pub(crate) async fn get(
    store: &SqlStore,
    env: &str,
    stack: &str,
    version: Version,
) -> StoreResult<Deployment> {
    let mut tx = store.read().await?;
    let (stack_id, _) = find(&mut tx, env, stack, version).await?;
    load(&mut tx, stack_id, version).await
}

pub(crate) async fn set_status(
    store: &SqlStore,
    env: &str,
    stack: &str,
    version: Version,
    status: DeploymentStatus,
    message: Option<&str>,
    at: UnixMs,
) -> StoreResult<Deployment> {
    let mut w = store.write().await?;
    let (stack_id, id) = find(w.conn(), env, stack, version).await?;
    // A message of None keeps the last one: a later step should not erase why it failed.
    sqlx::query(
        "UPDATE deployments SET status = $1, message = COALESCE($2, message), \
         finished_at = COALESCE($3, finished_at) WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(message)
    .bind(status.is_finished().then_some(at))
    .bind(id)
    .execute(w.conn())
    .await?;
    if status == DeploymentStatus::Succeeded {
        sqlx::query("UPDATE stacks SET current_version = $1 WHERE id = $2")
            .bind(i64::from(version.0))
            .bind(stack_id)
            .execute(w.conn())
            .await?;
    }
    let updated = load(w.conn(), stack_id, version).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn append_log(
    store: &SqlStore,
    env: &str,
    stack: &str,
    version: Version,
    text: &str,
) -> StoreResult<()> {
    let mut w = store.write().await?;
    let (_, id) = find(w.conn(), env, stack, version).await?;
    sqlx::query("INSERT INTO deployment_log_chunks (deployment_id, text) VALUES ($1, $2)")
        .bind(id)
        .bind(text)
        .execute(w.conn())
        .await?;
    w.commit().await
}

pub(crate) async fn log(
    store: &SqlStore,
    env: &str,
    stack: &str,
    version: Version,
) -> StoreResult<String> {
    let mut tx = store.read().await?;
    let (_, id) = find(&mut tx, env, stack, version).await?;
    let rows =
        sqlx::query("SELECT text FROM deployment_log_chunks WHERE deployment_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let mut out = String::new();
    for row in &rows {
        out.push_str(&text(row, "text")?);
    }
    Ok(out)
}

/// Records what the build or import produced.
pub(crate) async fn set_build(
    store: &SqlStore,
    env: &str,
    stack: &str,
    version: Version,
    build: &DeploymentBuild,
) -> StoreResult<Deployment> {
    let mut w = store.write().await?;
    let (stack_id, id) = find(w.conn(), env, stack, version).await?;
    sqlx::query(
        "UPDATE deployments SET image = $1, processes = $2, release_command = $3 WHERE id = $4",
    )
    .bind(json(&build.image)?)
    .bind(json(&build.processes)?)
    .bind(build.release_command.as_deref())
    .bind(id)
    .execute(w.conn())
    .await?;
    let updated = load(w.conn(), stack_id, version).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn set_steps(
    store: &SqlStore,
    env: &str,
    stack: &str,
    version: Version,
    steps: &[DeploymentStep],
) -> StoreResult<()> {
    let mut w = store.write().await?;
    let (_, id) = find(w.conn(), env, stack, version).await?;
    sqlx::query("UPDATE deployments SET steps = $1 WHERE id = $2")
        .bind(json(&steps)?)
        .bind(id)
        .execute(w.conn())
        .await?;
    w.commit().await
}
