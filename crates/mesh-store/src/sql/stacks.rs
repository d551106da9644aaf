//! Stacks: source, formula and release command shared by their services.

use mesh_types::api::{CreateStack, Formula, Stack, UpdateStack};
use mesh_types::{UnixMs, Version};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{OrExists, corrupt, int, name, opt_int_as, opt_text, text};
use super::{SqlStore, lookup};
use crate::{StoreError, StoreResult};

macro_rules! select {
    () => {
        "SELECT e.name AS environment, s.name, s.formula, s.release_command, s.builder, s.image, \
         s.buildpacks, s.current_version, s.created_at, s.updated_at \
         FROM stacks s JOIN environments e ON e.id = s.environment_id"
    };
}

fn stack(row: &AnyRow) -> StoreResult<Stack> {
    let formula = text(row, "formula")?;
    Ok(Stack {
        environment: name(row, "environment")?,
        name: name(row, "name")?,
        formula: formula.parse().map_err(corrupt)?,
        release_command: opt_text(row, "release_command")?,
        builder: opt_text(row, "builder")?,
        image: opt_text(row, "image")?,
        current_deployment: opt_int_as(row, "current_version")?.map(Version),
        buildpacks: serde_json::from_str(&text(row, "buildpacks")?)
            .map_err(|e| corrupt(e.to_string()))?,
        created_at: int(row, "created_at")?,
        updated_at: int(row, "updated_at")?,
    })
}

async fn load(conn: &mut AnyConnection, stack_id: i64) -> StoreResult<Stack> {
    let row = sqlx::query(concat!(select!(), " WHERE s.id = $1"))
        .bind(stack_id)
        .fetch_one(conn)
        .await?;
    stack(&row)
}

pub(crate) async fn create(
    store: &SqlStore,
    env: &str,
    new: &CreateStack,
    at: UnixMs,
) -> StoreResult<Stack> {
    let exists = || {
        format!(
            "stack {:?} already exists in environment {env:?}",
            new.name.as_str()
        )
    };
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    if lookup::found(lookup::stack(w.conn(), env, new.name.as_str()).await)?.is_some() {
        return Err(StoreError::AlreadyExists(exists()));
    }
    let row = sqlx::query(
        "INSERT INTO stacks (environment_id, name, formula, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(env_id)
    .bind(new.name.as_str())
    .bind(new.formula.unwrap_or_default().as_str())
    .bind(at)
    .fetch_one(w.conn())
    .await
    .or_exists(exists)?;
    let created = load(w.conn(), int(&row, "id")?).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn list(store: &SqlStore, env: &str) -> StoreResult<Vec<Stack>> {
    let mut tx = store.read().await?;
    let env_id = lookup::environment(&mut tx, env).await?;
    let rows = sqlx::query(concat!(select!(), " WHERE s.environment_id = $1"))
        .bind(env_id)
        .fetch_all(&mut *tx)
        .await?;
    let mut stacks = rows.iter().map(stack).collect::<StoreResult<Vec<_>>>()?;
    stacks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(stacks)
}

pub(crate) async fn get(store: &SqlStore, env: &str, stack_name: &str) -> StoreResult<Stack> {
    let mut tx = store.read().await?;
    let (_, stack_id) = lookup::stack(&mut tx, env, stack_name).await?;
    load(&mut tx, stack_id).await
}

pub(crate) async fn update(
    store: &SqlStore,
    env: &str,
    stack_name: &str,
    update: &UpdateStack,
    at: UnixMs,
) -> StoreResult<Stack> {
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack_name).await?;
    let current = load(w.conn(), stack_id).await?;
    let formula: Formula = update.formula.unwrap_or(current.formula);
    // Absent keeps the value; empty clears it.
    let change = |new: &Option<String>, old: Option<String>| match new {
        None => old,
        Some(s) if s.is_empty() => None,
        Some(s) => Some(s.clone()),
    };
    let release_command = change(&update.release_command, current.release_command);
    let builder = change(&update.builder, current.builder);
    let image = change(&update.image, current.image);
    let buildpacks = update.buildpacks.as_ref().unwrap_or(&current.buildpacks);
    let buildpacks = serde_json::to_string(buildpacks).map_err(|e| corrupt(e.to_string()))?;
    sqlx::query(
        "UPDATE stacks SET formula = $1, release_command = $2, builder = $3, image = $4, \
         updated_at = $5, buildpacks = $7 WHERE id = $6",
    )
    .bind(formula.as_str())
    .bind(release_command)
    .bind(builder)
    .bind(image)
    .bind(at)
    .bind(stack_id)
    .bind(buildpacks)
    .execute(w.conn())
    .await?;
    let updated = load(w.conn(), stack_id).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn delete(store: &SqlStore, env: &str, stack_name: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack_name).await?;
    // Services, config, routes to its services, deployments and instances go with it.
    sqlx::query("DELETE FROM stacks WHERE id = $1")
        .bind(stack_id)
        .execute(w.conn())
        .await?;
    w.commit().await
}

/// Points the stack at `version` (or at nothing): what its services run from now on.
pub(crate) async fn set_current(
    store: &SqlStore,
    env: &str,
    stack_name: &str,
    version: Option<Version>,
    at: UnixMs,
) -> StoreResult<Stack> {
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack_name).await?;
    sqlx::query("UPDATE stacks SET current_version = $1, updated_at = $2 WHERE id = $3")
        .bind(version.map(|v| i64::from(v.0)))
        .bind(at)
        .bind(stack_id)
        .execute(w.conn())
        .await?;
    let updated = load(w.conn(), stack_id).await?;
    w.commit().await?;
    Ok(updated)
}
