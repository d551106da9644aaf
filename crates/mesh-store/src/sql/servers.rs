//! The servers of racks, as their agents register and report: which server a rack has, its
//! heartbeats, and its being lost.

use mesh_types::api::{InstanceState, Server, ServerState};
use mesh_types::{Name, UnixMs};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{enum_of, float, int, int_as, name, opt_int, opt_text, text, to_i64, wire};
use super::{SqlStore, lookup};
use crate::{StoreError, StoreResult};

// Instances name their server only, so the count is by name.
macro_rules! select_server {
    () => {
        "SELECT s.name, r.name AS rack, s.address, s.cpus, s.memory_mb, s.state, \
         s.last_heartbeat, s.created_at, s.version, s.router, \
         (SELECT COUNT(*) FROM instances i WHERE i.server = s.name) AS instances \
         FROM servers s JOIN racks r ON r.id = s.rack_id"
    };
}

fn server(row: &AnyRow) -> StoreResult<Server> {
    Ok(Server {
        name: name(row, "name")?,
        rack: name(row, "rack")?,
        address: text(row, "address")?,
        cpus: float(row, "cpus")?,
        memory_mb: int_as(row, "memory_mb")?,
        state: enum_of(row, "state")?,
        last_heartbeat: opt_int(row, "last_heartbeat")?,
        created_at: int(row, "created_at")?,
        version: opt_text(row, "version")?,
        instances: int_as(row, "instances")?,
        router: opt_text(row, "router")?,
    })
}

/// Inserts or updates `s` (keeping when it first joined) and reads it back.
async fn upsert_in(conn: &mut AnyConnection, rack_id: i64, s: &Server) -> StoreResult<Server> {
    sqlx::query(
        "INSERT INTO servers \
         (rack_id, name, address, cpus, memory_mb, state, last_heartbeat, created_at, version, \
         router) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (rack_id, name) DO UPDATE SET address = excluded.address, \
         cpus = excluded.cpus, memory_mb = excluded.memory_mb, state = excluded.state, \
         last_heartbeat = excluded.last_heartbeat, version = excluded.version, \
         router = excluded.router",
    )
    .bind(rack_id)
    .bind(s.name.as_str())
    .bind(s.address.as_str())
    .bind(s.cpus)
    .bind(to_i64("memory", s.memory_mb)?)
    .bind(wire(&s.state)?)
    .bind(s.last_heartbeat)
    .bind(s.created_at)
    .bind(s.version.as_deref())
    .bind(s.router.as_deref())
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(concat!(
        select_server!(),
        " WHERE s.rack_id = $1 AND s.name = $2"
    ))
    .bind(rack_id)
    .bind(s.name.as_str())
    .fetch_one(&mut *conn)
    .await?;
    server(&row)
}

pub(crate) async fn upsert_server(store: &SqlStore, s: &Server) -> StoreResult<Server> {
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), s.rack.as_str()).await?;
    let stored = upsert_in(w.conn(), rack_id, s).await?;
    w.commit().await?;
    Ok(stored)
}

/// Registers `s`, deleting the servers it replaces (`replacing`), with the rack's other servers
/// exactly `replacing` and `keeping`.
pub(crate) async fn claim_server(
    store: &SqlStore,
    s: &Server,
    replacing: &[Name],
    keeping: &[Name],
) -> StoreResult<Server> {
    let rack = s.rack.as_str();
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    // Locks the rack's row until commit, so two control planes sharing a PostgreSQL database
    // claim one rack in turn (SQLite writes are one at a time already).
    sqlx::query("UPDATE racks SET state = state WHERE id = $1")
        .bind(rack_id)
        .execute(w.conn())
        .await?;
    let rows = sqlx::query("SELECT name FROM servers WHERE rack_id = $1")
        .bind(rack_id)
        .fetch_all(w.conn())
        .await?;
    let mut others = Vec::new();
    for row in &rows {
        let n = text(row, "name")?;
        if n != s.name.as_str() {
            others.push(n);
        }
    }
    others.sort();
    let mut expected: Vec<String> = replacing
        .iter()
        .chain(keeping)
        .map(|n| n.to_string())
        .collect();
    expected.sort();
    if others != expected {
        return Err(StoreError::FailedPrecondition(format!(
            "the servers of rack {rack} changed while server {} registered (now: {}); \
             register again",
            s.name,
            if others.is_empty() {
                "none".to_string()
            } else {
                others.join(", ")
            }
        )));
    }
    for old in replacing {
        sqlx::query("DELETE FROM instances WHERE server = $1")
            .bind(old.as_str())
            .execute(w.conn())
            .await?;
        sqlx::query("DELETE FROM servers WHERE rack_id = $1 AND name = $2")
            .bind(rack_id)
            .bind(old.as_str())
            .execute(w.conn())
            .await?;
    }
    let stored = upsert_in(w.conn(), rack_id, s).await?;
    w.commit().await?;
    Ok(stored)
}

pub(crate) async fn heartbeat_server(
    store: &SqlStore,
    rack: &str,
    server: &str,
    at: UnixMs,
    state: ServerState,
) -> StoreResult<()> {
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    let done = sqlx::query(
        "UPDATE servers SET last_heartbeat = $1, state = $2 WHERE rack_id = $3 AND name = $4",
    )
    .bind(at)
    .bind(wire(&state)?)
    .bind(rack_id)
    .bind(server)
    .execute(w.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "server {server:?} of rack {rack:?}"
        )));
    }
    w.commit().await
}

pub(crate) async fn mark_server_lost(
    store: &SqlStore,
    rack: &str,
    server: &str,
    seen: UnixMs,
) -> StoreResult<bool> {
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    // Only if no heartbeat came since the caller looked: a heartbeat meanwhile wins.
    let done = sqlx::query(
        "UPDATE servers SET state = $1 WHERE rack_id = $2 AND name = $3 AND state <> $1 \
         AND COALESCE(last_heartbeat, created_at) = $4",
    )
    .bind(wire(&ServerState::Lost)?)
    .bind(rack_id)
    .bind(server)
    .bind(seen)
    .execute(w.conn())
    .await?;
    let marked = done.rows_affected() > 0;
    if marked {
        sqlx::query("UPDATE instances SET state = $1 WHERE server = $2")
            .bind(wire(&InstanceState::Unknown)?)
            .bind(server)
            .execute(w.conn())
            .await?;
    }
    w.commit().await?;
    Ok(marked)
}

pub(crate) async fn list_servers(store: &SqlStore, rack_name: &str) -> StoreResult<Vec<Server>> {
    let mut tx = store.read().await?;
    let rack_id = lookup::rack(&mut tx, rack_name).await?;
    let rows = sqlx::query(concat!(select_server!(), " WHERE s.rack_id = $1"))
        .bind(rack_id)
        .fetch_all(&mut *tx)
        .await?;
    let mut servers = rows.iter().map(server).collect::<StoreResult<Vec<_>>>()?;
    servers.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    Ok(servers)
}
