//! Environments, their ordered racks, and the alias endpoints kept in step with those racks.

use std::collections::{BTreeMap, HashSet};

use mesh_types::api::{EndpointKind, Environment, LeavingRack};
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

macro_rules! select_leaving {
    () => {
        "SELECT lr.environment_id, r.name, lr.since, lr.drain_grace_ms, lr.forwarding_since \
         FROM environment_leaving_racks lr JOIN racks r ON r.id = lr.rack_id"
    };
}

fn leaving_rack(row: &AnyRow) -> StoreResult<LeavingRack> {
    Ok(LeavingRack {
        rack: name(row, "name")?,
        since: int(row, "since")?,
        drain_grace_ms: int(row, "drain_grace_ms")?,
        forwarding_since: opt_int(row, "forwarding_since")?,
    })
}

/// The racks an environment is leaving, in the order they were taken out.
async fn leaving_of(conn: &mut AnyConnection, env_id: i64) -> StoreResult<Vec<LeavingRack>> {
    let rows = sqlx::query(concat!(
        select_leaving!(),
        " WHERE lr.environment_id = $1 ORDER BY lr.since, r.name"
    ))
    .bind(env_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(leaving_rack).collect()
}

fn environment(
    row: &AnyRow,
    racks: Vec<Name>,
    leaving: Vec<LeavingRack>,
) -> StoreResult<Environment> {
    Ok(Environment {
        name: name(row, "name")?,
        racks,
        leaving,
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
    let id = int(&row, "id")?;
    let racks = racks_of(conn, id).await?;
    let leaving = leaving_of(conn, id).await?;
    environment(&row, racks, leaving)
}

/// Merges the racks the environment is leaving: a rack put back in the list stops leaving; a
/// rack of `leaving` that was placed when this write began (`before`) starts leaving unless it
/// already is. Rows already there are never rewritten, so an update computed from an older read
/// cannot undo a retire step taken meanwhile (forwarding started, or the rack left). A rack
/// both placed and leaving is refused. Returns the racks it is leaving afterwards.
async fn set_leaving(
    conn: &mut AnyConnection,
    env_id: i64,
    before: &[Name],
    racks: &[Name],
    leaving: &[LeavingRack],
) -> StoreResult<Vec<Name>> {
    let mut seen = HashSet::new();
    for l in leaving {
        if racks.contains(&l.rack) || !seen.insert(&l.rack) {
            return Err(StoreError::Invalid(format!(
                "rack {:?} is listed twice",
                l.rack.as_str()
            )));
        }
    }
    for rack in racks {
        let rack_id = lookup::rack(conn, rack.as_str()).await?;
        sqlx::query(
            "DELETE FROM environment_leaving_racks WHERE environment_id = $1 AND rack_id = $2",
        )
        .bind(env_id)
        .bind(rack_id)
        .execute(&mut *conn)
        .await?;
    }
    for l in leaving.iter().filter(|l| before.contains(&l.rack)) {
        let rack_id = lookup::rack(conn, l.rack.as_str()).await?;
        sqlx::query(
            "INSERT INTO environment_leaving_racks \
             (environment_id, rack_id, since, drain_grace_ms, forwarding_since) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (environment_id, rack_id) DO NOTHING",
        )
        .bind(env_id)
        .bind(rack_id)
        .bind(l.since)
        .bind(l.drain_grace_ms)
        .bind(l.forwarding_since)
        .execute(&mut *conn)
        .await?;
    }
    Ok(leaving_of(conn, env_id)
        .await?
        .into_iter()
        .map(|l| l.rack)
        .collect())
}

/// Records that the remaining racks are healthy and `rack` forwards from `at`; false if it is
/// not leaving the environment or forwards already.
pub(crate) async fn start_forwarding(
    store: &SqlStore,
    env: &str,
    rack: &str,
    since: UnixMs,
    at: UnixMs,
) -> StoreResult<bool> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    let done = sqlx::query(
        "UPDATE environment_leaving_racks SET forwarding_since = $1 \
         WHERE environment_id = $2 AND rack_id = $3 AND since = $4 \
         AND forwarding_since IS NULL",
    )
    .bind(at)
    .bind(env_id)
    .bind(rack_id)
    .bind(since)
    .execute(w.conn())
    .await?
    .rows_affected()
        > 0;
    w.commit().await?;
    Ok(done)
}

/// The environment has left `rack`: its leaving row goes, with the alias endpoints that belong
/// to that rack. False if it was not leaving it (another control plane finished first).
pub(crate) async fn finish_leaving(
    store: &SqlStore,
    env: &str,
    rack: &str,
    since: UnixMs,
) -> StoreResult<bool> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    let done = sqlx::query(
        "DELETE FROM environment_leaving_racks WHERE environment_id = $1 AND rack_id = $2 \
         AND since = $3 AND forwarding_since IS NOT NULL",
    )
    .bind(env_id)
    .bind(rack_id)
    .bind(since)
    .execute(w.conn())
    .await?
    .rows_affected()
        > 0;
    if done {
        sqlx::query(
            "DELETE FROM endpoints WHERE environment_id = $1 AND rack_id = $2 AND kind = $3 \
             AND NOT EXISTS (SELECT 1 FROM environment_racks er \
             WHERE er.environment_id = $1 AND er.rack_id = $2)",
        )
        .bind(env_id)
        .bind(rack_id)
        .bind(wire(&EndpointKind::Alias)?)
        .execute(w.conn())
        .await?;
    }
    w.commit().await?;
    Ok(done)
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
    let leaving_rows = sqlx::query(concat!(
        select_leaving!(),
        " ORDER BY lr.environment_id, lr.since, r.name"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut leaving: BTreeMap<i64, Vec<LeavingRack>> = BTreeMap::new();
    for row in &leaving_rows {
        leaving
            .entry(int(row, "environment_id")?)
            .or_default()
            .push(leaving_rack(row)?);
    }
    let mut envs = rows
        .iter()
        .map(|row| {
            let id = int(row, "id")?;
            let placed = racks.remove(&id).unwrap_or_default();
            environment(row, placed, leaving.remove(&id).unwrap_or_default())
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
    leaving: &[LeavingRack],
    aliases: &[AliasSpec],
    at: UnixMs,
) -> StoreResult<Environment> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let before = racks_of(w.conn(), env_id).await?;
    place(w.conn(), env_id, racks).await?;
    let left = set_leaving(w.conn(), env_id, &before, racks, leaving).await?;
    // Only the aliases of racks it is on or still leaving (one may have left meanwhile); every
    // alias names a rack that exists.
    for a in aliases {
        lookup::rack(w.conn(), a.rack.as_str()).await?;
    }
    let aliases: Vec<AliasSpec> = aliases
        .iter()
        .filter(|a| racks.contains(&a.rack) || left.contains(&a.rack))
        .cloned()
        .collect();
    reconcile_aliases(w.conn(), env_id, &aliases, at).await?;
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
