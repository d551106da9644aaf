//! Environments, their ordered racks, and the alias endpoints kept in step with those racks.

use std::collections::{BTreeMap, HashSet};

use mesh_types::api::{EndpointKind, Environment};
use mesh_types::{Name, UnixMs};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{OrExists, int, name, opt_int, text, wire};
use super::{SqlStore, lookup};
use crate::{AliasSpec, StoreError, StoreResult};

async fn racks_of(conn: &mut AnyConnection, env_id: i64) -> StoreResult<Vec<Name>> {
    let rows = sqlx::query(
        "SELECT r.name FROM environment_racks er JOIN racks r ON r.id = er.rack_id \
         WHERE er.environment_id = $1 ORDER BY er.position",
    )
    .bind(env_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| name(r, "name")).collect()
}

fn environment(row: &AnyRow, racks: Vec<Name>) -> StoreResult<Environment> {
    Ok(Environment {
        name: name(row, "name")?,
        racks,
        created_at: int(row, "created_at")?,
        updated_at: int(row, "updated_at")?,
    })
}

pub(crate) async fn load(conn: &mut AnyConnection, env: &str) -> StoreResult<Environment> {
    let row =
        sqlx::query("SELECT id, name, created_at, updated_at FROM environments WHERE name = $1")
            .bind(env)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("environment {env:?}")))?;
    let racks = racks_of(conn, int(&row, "id")?).await?;
    environment(&row, racks)
}

/// Replaces the environment's rack list, in order.
async fn place(conn: &mut AnyConnection, env_id: i64, racks: &[Name]) -> StoreResult<()> {
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(racks.len());
    for rack in racks {
        if !seen.insert(rack) {
            return Err(StoreError::Invalid(format!(
                "rack {rack:?} is listed twice"
            )));
        }
        ids.push(lookup::rack(conn, rack.as_str()).await?);
    }
    sqlx::query("DELETE FROM environment_racks WHERE environment_id = $1")
        .bind(env_id)
        .execute(&mut *conn)
        .await?;
    for (position, rack_id) in ids.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO environment_racks (environment_id, rack_id, position) VALUES ($1, $2, $3)",
        )
        .bind(env_id)
        .bind(rack_id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Makes the environment's alias endpoints exactly `aliases`. An alias that stays keeps its
/// routes, even if it moves to another rack.
async fn reconcile_aliases(
    conn: &mut AnyConnection,
    env_id: i64,
    aliases: &[AliasSpec],
    at: UnixMs,
) -> StoreResult<()> {
    let mut wanted = BTreeMap::new();
    for alias in aliases {
        let rack_id = lookup::rack(conn, alias.rack.as_str()).await?;
        if wanted.insert(alias.domain.as_str(), rack_id).is_some() {
            return Err(StoreError::Invalid(format!(
                "alias {:?} is listed twice",
                alias.domain.as_str()
            )));
        }
    }
    let existing = sqlx::query(
        "SELECT id, domain, rack_id FROM endpoints WHERE environment_id = $1 AND kind = $2",
    )
    .bind(env_id)
    .bind(wire(&EndpointKind::Alias)?)
    .fetch_all(&mut *conn)
    .await?;
    for row in &existing {
        let id = int(row, "id")?;
        let domain = text(row, "domain")?;
        match wanted.remove(domain.as_str()) {
            None => {
                sqlx::query("DELETE FROM endpoints WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Some(rack_id) if opt_int(row, "rack_id")? != Some(rack_id) => {
                sqlx::query("UPDATE endpoints SET rack_id = $1 WHERE id = $2")
                    .bind(rack_id)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Some(_) => {}
        }
    }
    for (domain, rack_id) in wanted {
        check_domain_free(conn, domain).await?;
        sqlx::query(
            "INSERT INTO endpoints (environment_id, domain, kind, rack_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(env_id)
        .bind(domain)
        .bind(wire(&EndpointKind::Alias)?)
        .bind(rack_id)
        .bind(at)
        .execute(&mut *conn)
        .await
        .or_exists(|| format!("endpoint {domain:?} already exists"))?;
    }
    Ok(())
}

/// `AlreadyExists` naming the environment that holds `domain`, if one does.
pub(crate) async fn check_domain_free(conn: &mut AnyConnection, domain: &str) -> StoreResult<()> {
    let holder = sqlx::query(
        "SELECT e.name FROM endpoints p JOIN environments e ON e.id = p.environment_id \
         WHERE p.domain = $1",
    )
    .bind(domain)
    .fetch_optional(conn)
    .await?;
    match holder {
        None => Ok(()),
        Some(row) => Err(StoreError::AlreadyExists(format!(
            "endpoint {domain:?} already exists in environment {:?}",
            text(&row, "name")?
        ))),
    }
}

pub(crate) async fn create(
    store: &SqlStore,
    env: &Name,
    racks: &[Name],
    aliases: &[AliasSpec],
    at: UnixMs,
) -> StoreResult<Environment> {
    let exists = || format!("environment {:?} already exists", env.as_str());
    let mut w = store.write().await?;
    if lookup::found(lookup::environment(w.conn(), env.as_str()).await)?.is_some() {
        return Err(StoreError::AlreadyExists(exists()));
    }
    let row = sqlx::query(
        "INSERT INTO environments (name, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id",
    )
    .bind(env.as_str())
    .bind(at)
    .fetch_one(w.conn())
    .await
    .or_exists(exists)?;
    let env_id = int(&row, "id")?;
    place(w.conn(), env_id, racks).await?;
    reconcile_aliases(w.conn(), env_id, aliases, at).await?;
    let created = load(w.conn(), env.as_str()).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn list(store: &SqlStore) -> StoreResult<Vec<Environment>> {
    let mut tx = store.read().await?;
    let rows = sqlx::query("SELECT id, name, created_at, updated_at FROM environments")
        .fetch_all(&mut *tx)
        .await?;
    let placements = sqlx::query(
        "SELECT er.environment_id, r.name FROM environment_racks er \
         JOIN racks r ON r.id = er.rack_id ORDER BY er.environment_id, er.position",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut racks: BTreeMap<i64, Vec<Name>> = BTreeMap::new();
    for p in &placements {
        racks
            .entry(int(p, "environment_id")?)
            .or_default()
            .push(name(p, "name")?);
    }
    let mut envs = rows
        .iter()
        .map(|row| {
            let placed = racks.remove(&int(row, "id")?).unwrap_or_default();
            environment(row, placed)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    envs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(envs)
}

pub(crate) async fn get(store: &SqlStore, env: &str) -> StoreResult<Environment> {
    load(&mut *store.read().await?, env).await
}

pub(crate) async fn update_racks(
    store: &SqlStore,
    env: &str,
    racks: &[Name],
    aliases: &[AliasSpec],
    at: UnixMs,
) -> StoreResult<Environment> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    place(w.conn(), env_id, racks).await?;
    reconcile_aliases(w.conn(), env_id, aliases, at).await?;
    sqlx::query("UPDATE environments SET updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(env_id)
        .execute(w.conn())
        .await?;
    let updated = load(w.conn(), env).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn delete(store: &SqlStore, env: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    // Stacks, services, config, endpoints, routes, certificates, deployments and instances go
    // with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM environments WHERE id = $1")
        .bind(env_id)
        .execute(w.conn())
        .await?;
    w.commit().await
}
