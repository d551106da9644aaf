//! Server replacements (`mesh rack upgrade` / `mesh rack resize`): one row per rack replacing
//! its server, moved phase by phase with conditional writes, so several control planes sharing
//! a database take each step once.

use mesh_types::UnixMs;
use mesh_types::api::{RackState, Replacement, ReplacementPhase, ServerState};
use sqlx::any::AnyRow;

use super::rows::{OrExists, enum_of, int, name, opt_text, text, wire};
use super::{SqlStore, lookup};
use crate::{StoreError, StoreResult};

macro_rules! select_replacement {
    () => {
        "SELECT r.name AS rack, x.old_server, x.new_server, x.size, x.version, x.phase, x.since, \
         x.phase_since, x.drain_grace_ms, x.timeout_ms, x.message \
         FROM rack_replacements x JOIN racks r ON r.id = x.rack_id"
    };
}

fn replacement(row: &AnyRow) -> StoreResult<Replacement> {
    Ok(Replacement {
        rack: name(row, "rack")?,
        old_server: name(row, "old_server")?,
        new_server: name(row, "new_server")?,
        size: text(row, "size")?,
        version: text(row, "version")?,
        phase: enum_of(row, "phase")?,
        since: int(row, "since")?,
        phase_since: int(row, "phase_since")?,
        drain_grace_ms: int(row, "drain_grace_ms")?,
        timeout_ms: int(row, "timeout_ms")?,
        message: opt_text(row, "message")?,
    })
}

pub(crate) async fn start(store: &SqlStore, r: &Replacement, state: RackState) -> StoreResult<()> {
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), r.rack.as_str()).await?;
    sqlx::query(
        "INSERT INTO rack_replacements (rack_id, old_server, new_server, size, version, phase, \
         since, phase_since, drain_grace_ms, timeout_ms, message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(rack_id)
    .bind(r.old_server.as_str())
    .bind(r.new_server.as_str())
    .bind(r.size.as_str())
    .bind(r.version.as_str())
    .bind(wire(&r.phase)?)
    .bind(r.since)
    .bind(r.phase_since)
    .bind(r.drain_grace_ms)
    .bind(r.timeout_ms)
    .bind(r.message.as_deref())
    .execute(w.conn())
    .await
    .or_exists(|| format!("rack {} is replacing a server already", r.rack))?;
    sqlx::query("UPDATE racks SET state = $1 WHERE id = $2")
        .bind(wire(&state)?)
        .bind(rack_id)
        .execute(w.conn())
        .await?;
    w.commit().await
}

pub(crate) async fn get(store: &SqlStore, rack: &str) -> StoreResult<Option<Replacement>> {
    let mut tx = store.read().await?;
    let rack_id = lookup::rack(&mut tx, rack).await?;
    let row = sqlx::query(concat!(select_replacement!(), " WHERE x.rack_id = $1"))
        .bind(rack_id)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(replacement).transpose()
}

pub(crate) async fn list(store: &SqlStore) -> StoreResult<Vec<Replacement>> {
    let mut tx = store.read().await?;
    let rows = sqlx::query(concat!(select_replacement!(), " ORDER BY r.name"))
        .fetch_all(&mut *tx)
        .await?;
    rows.iter().map(replacement).collect()
}

/// Moves the replacement of `rack` started at `since` from `from` to `to`. Into `Forwarding`,
/// the rack's address becomes `address` and the old server drains (one-off work and cron go to
/// the new one), in the same transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn advance(
    store: &SqlStore,
    rack: &str,
    since: UnixMs,
    from: ReplacementPhase,
    to: ReplacementPhase,
    at: UnixMs,
    message: Option<&str>,
    address: Option<&str>,
) -> StoreResult<bool> {
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    let done = sqlx::query(
        "UPDATE rack_replacements SET phase = $1, phase_since = $2, message = $3 \
         WHERE rack_id = $4 AND since = $5 AND phase = $6",
    )
    .bind(wire(&to)?)
    .bind(at)
    .bind(message)
    .bind(rack_id)
    .bind(since)
    .bind(wire(&from)?)
    .execute(w.conn())
    .await?
    .rows_affected()
        > 0;
    if done && to == ReplacementPhase::Forwarding {
        let row = sqlx::query("SELECT old_server FROM rack_replacements WHERE rack_id = $1")
            .bind(rack_id)
            .fetch_one(w.conn())
            .await?;
        let old = text(&row, "old_server")?;
        sqlx::query("UPDATE servers SET state = $1 WHERE rack_id = $2 AND name = $3")
            .bind(wire(&ServerState::Draining)?)
            .bind(rack_id)
            .bind(old.as_str())
            .execute(w.conn())
            .await?;
        if let Some(address) = address {
            sqlx::query("UPDATE racks SET address = $1 WHERE id = $2")
                .bind(address)
                .bind(rack_id)
                .execute(w.conn())
                .await?;
        }
    }
    w.commit().await?;
    Ok(done)
}

/// Ends the replacement of `rack` started at `since`, in phase `from`: from `Removing` it is
/// done (the old server and its instances go; the rack takes the new server's size and
/// instance salt), from `Undoing` it is undone (the new server and its instances go). Either
/// way the rack is ready again.
pub(crate) async fn end(
    store: &SqlStore,
    rack: &str,
    since: UnixMs,
    from: ReplacementPhase,
) -> StoreResult<bool> {
    if !matches!(from, ReplacementPhase::Removing | ReplacementPhase::Undoing) {
        return Err(StoreError::Invalid(format!(
            "a server replacement ends from removing or undoing, not {}",
            from.as_str()
        )));
    }
    let mut w = store.write().await?;
    let rack_id = lookup::rack(w.conn(), rack).await?;
    let row = sqlx::query(concat!(
        select_replacement!(),
        " WHERE x.rack_id = $1 AND x.since = $2 AND x.phase = $3"
    ))
    .bind(rack_id)
    .bind(since)
    .bind(wire(&from)?)
    .fetch_optional(w.conn())
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let r = replacement(&row)?;
    let gone = match from {
        ReplacementPhase::Removing => {
            sqlx::query("UPDATE racks SET size = $1, instance_salt = $2 WHERE id = $3")
                .bind(r.size.as_str())
                .bind(r.new_server.as_str())
                .bind(rack_id)
                .execute(w.conn())
                .await?;
            r.old_server
        }
        _ => r.new_server,
    };
    sqlx::query("DELETE FROM instances WHERE server = $1")
        .bind(gone.as_str())
        .execute(w.conn())
        .await?;
    sqlx::query("DELETE FROM servers WHERE rack_id = $1 AND name = $2")
        .bind(rack_id)
        .bind(gone.as_str())
        .execute(w.conn())
        .await?;
    sqlx::query("DELETE FROM rack_replacements WHERE rack_id = $1")
        .bind(rack_id)
        .execute(w.conn())
        .await?;
    sqlx::query("UPDATE racks SET state = $1 WHERE id = $2")
        .bind(wire(&RackState::Ready)?)
        .bind(rack_id)
        .execute(w.conn())
        .await?;
    w.commit().await?;
    Ok(true)
}

pub(crate) async fn instance_salt(store: &SqlStore, rack: &str) -> StoreResult<Option<String>> {
    let mut tx = store.read().await?;
    let rack_id = lookup::rack(&mut tx, rack).await?;
    let row = sqlx::query("SELECT instance_salt FROM racks WHERE id = $1")
        .bind(rack_id)
        .fetch_one(&mut *tx)
        .await?;
    opt_text(&row, "instance_salt")
}
