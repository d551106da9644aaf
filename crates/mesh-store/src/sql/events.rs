//! The audit log: who changed what, newest first.

use mesh_types::UnixMs;
use mesh_types::api::Event;

use super::SqlStore;
use super::rows::{int, text};
use crate::StoreResult;

pub(crate) async fn record(
    store: &SqlStore,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    at: UnixMs,
) -> StoreResult<()> {
    let mut w = store.write().await?;
    sqlx::query(
        "INSERT INTO events (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(w.conn())
    .await?;
    w.commit().await
}

pub(crate) async fn list(store: &SqlStore, limit: u32) -> StoreResult<Vec<Event>> {
    // By id rather than `at`: ids grow in insertion order even when the clocks of several
    // control planes disagree.
    let rows = sqlx::query(
        "SELECT id, at, actor, action, target, detail FROM events ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut *store.read().await?)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Event {
                id: int(row, "id")?,
                at: int(row, "at")?,
                actor: text(row, "actor")?,
                action: text(row, "action")?,
                target: text(row, "target")?,
                detail: text(row, "detail")?,
            })
        })
        .collect()
}
