//! Instance output: lines stored per environment, duplicates dropped by the highest offset kept
//! per instance and stream (`log_offsets`), and each environment pruned to its limits as lines
//! arrive, a bounded number of rows per batch.
//!
//! Readers resume by id, so an environment's lines must get ids in commit order: SQLite has one
//! writer at a time; on PostgreSQL a transaction-scoped advisory lock per environment orders
//! the batches of several control planes writing to the same environment.

use std::collections::HashMap;

use mesh_types::agent::{LogAck, LogLine, LogStream};
use mesh_types::{Name, UnixMs};
use sqlx::AnyConnection;

use super::rows::{enum_of, int, name, opt_name, text, wire};
use super::{Dialect, SqlStore, lookup};
use crate::{LogAppend, LogLimits, LogRead, StoreError, StoreResult, StoredLogLine};

/// Per-line bookkeeping counted against the byte budget besides the text (as the in-memory
/// store counted it, so the 500 MB rule means what it meant).
pub(crate) const LINE_OVERHEAD: u64 = 96;
/// Rows per INSERT. Measured on SQLite through sqlx (20,000-line batches): 50 rows take ~11 µs a
/// line, 100 rows ~20 µs and 1,000 rows ~130 µs (binding grows faster than linearly with the
/// statement's parameters), one row per statement far more (a round trip per line).
const INSERT_ROWS: usize = 50;
/// The fewest rows one prune looks at; otherwise twice the lines just stored, so pruning
/// outpaces ingestion and catches up on any backlog while each batch's work stays bounded.
const PRUNE_ROWS_MIN: usize = 1000;
/// High half of the PostgreSQL advisory lock key of an environment's log writes ("logs" in
/// ASCII), the low half its id: distinct from the migration lock's key.
const PG_LOG_LOCK: i64 = 0x6c6f_6773 << 32;

/// The bytes a line counts for against the budget.
pub(crate) fn size(l: &LogLine) -> u64 {
    (l.text.len() + l.instance.len()) as u64 + LINE_OVERHEAD
}

/// How many of the oldest lines to drop, and the bytes they free: lines go from the front while
/// they are older than `cutoff` or the environment holds more than it may (`excess` > 0).
pub(crate) fn prune_count(oldest: &[(UnixMs, u64)], cutoff: UnixMs, excess: i64) -> (usize, u64) {
    let mut freed: u64 = 0;
    for (n, (at, bytes)) in oldest.iter().enumerate() {
        let over = excess - freed as i64 > 0;
        if *at >= cutoff && !over {
            return (n, freed);
        }
        freed += bytes;
    }
    (oldest.len(), freed)
}

/// `INSERT` of `rows` log lines with numbered placeholders, returning their ids.
pub(crate) fn insert_sql(rows: usize) -> String {
    const COLUMNS: usize = 10;
    let mut sql = String::with_capacity(120 + rows * 60);
    sql.push_str(
        "INSERT INTO log_lines (environment_id, at, stack, service, instance, stream, text, \
         position, bytes, rack) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * COLUMNS + c + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING id");
    sql
}

/// A line to store, with its environment's id and counted size.
struct Keep {
    env_id: i64,
    bytes: u64,
    line: LogLine,
}

pub(crate) async fn append(
    store: &SqlStore,
    lines: Vec<LogLine>,
    now: UnixMs,
    limits: LogLimits,
) -> StoreResult<LogAppend> {
    let mut ack = LogAck {
        accepted: 0,
        duplicates: 0,
    };
    if lines.is_empty() {
        return Ok(LogAppend { ack, kept: vec![] });
    }
    let mut w = store.write().await?;
    let conn = w.conn();
    // Environment ids, `None` for environments deleted meanwhile.
    let mut envs: HashMap<Name, Option<i64>> = HashMap::new();
    // Highest offset kept per (environment, instance, stream), read once, then kept current.
    let mut seen: HashMap<(i64, String, LogStream), (i64, bool)> = HashMap::new();
    let mut keep: Vec<Keep> = Vec::with_capacity(lines.len());
    for line in lines {
        let env_id = match envs.get(&line.environment) {
            Some(id) => *id,
            None => {
                let id = env_id(conn, store.dialect, line.environment.as_str()).await?;
                envs.insert(line.environment.clone(), id);
                id
            }
        };
        let Some(env_id) = env_id else {
            ack.duplicates += 1;
            continue;
        };
        let offset = i64::try_from(line.offset)
            .map_err(|_| StoreError::Invalid(format!("log offset {} is too large", line.offset)))?;
        let key = (env_id, line.instance.clone(), line.stream);
        let last = match seen.get_mut(&key) {
            Some(v) => v,
            None => {
                let stored = stored_offset(conn, &key).await?;
                seen.entry(key).or_insert((stored, false))
            }
        };
        if offset <= last.0 {
            ack.duplicates += 1;
            continue;
        }
        *last = (offset, true);
        ack.accepted += 1;
        keep.push(Keep {
            env_id,
            bytes: size(&line),
            line,
        });
    }

    let mut ids: Vec<i64> = Vec::with_capacity(keep.len());
    for chunk in keep.chunks(INSERT_ROWS) {
        let sql = insert_sql(chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for k in chunk {
            q = q
                .bind(k.env_id)
                .bind(k.line.at)
                .bind(k.line.stack.as_str().to_string())
                .bind(k.line.service.as_str().to_string())
                .bind(k.line.instance.clone())
                .bind(wire(&k.line.stream)?)
                .bind(k.line.text.clone())
                .bind(i64::try_from(k.line.offset).unwrap_or(i64::MAX))
                .bind(i64::try_from(k.bytes).unwrap_or(i64::MAX))
                .bind(k.line.rack.as_ref().map(|r| r.as_str().to_string()));
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut chunk_ids = rows
            .iter()
            .map(|r| int(r, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        // The rows went in in VALUES order; RETURNING does not promise to answer in it.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }

    for ((env_id, instance, stream), (offset, changed)) in &seen {
        if !changed {
            continue;
        }
        sqlx::query(
            "INSERT INTO log_offsets (environment_id, instance, stream, position, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (environment_id, instance, stream) \
             DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(*env_id)
        .bind(instance.clone())
        .bind(wire(stream)?)
        .bind(*offset)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }

    let mut added: HashMap<i64, (u64, usize)> = HashMap::new();
    for k in &keep {
        let e = added.entry(k.env_id).or_default();
        e.0 += k.bytes;
        e.1 += 1;
    }
    for (env_id, (bytes, count)) in added {
        let row = sqlx::query(
            "INSERT INTO log_usage (environment_id, bytes) VALUES ($1, $2) \
             ON CONFLICT (environment_id) DO UPDATE SET bytes = log_usage.bytes + excluded.bytes \
             RETURNING bytes",
        )
        .bind(env_id)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .fetch_one(&mut *conn)
        .await?;
        let usage = int(&row, "bytes")?;
        prune(
            conn,
            env_id,
            usage,
            now,
            limits,
            (2 * count).max(PRUNE_ROWS_MIN),
        )
        .await?;
    }
    w.commit().await?;

    let kept = ids
        .into_iter()
        .zip(keep)
        .map(|(id, k)| StoredLogLine { id, line: k.line })
        .collect();
    Ok(LogAppend { ack, kept })
}

/// The environment's id, `None` if it is gone; on PostgreSQL, also takes the environment's log
/// write lock until the transaction ends.
async fn env_id(conn: &mut AnyConnection, dialect: Dialect, env: &str) -> StoreResult<Option<i64>> {
    let id = match lookup::environment(conn, env).await {
        Ok(id) => id,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_LOG_LOCK | (id & 0xffff_ffff))
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some(id))
}

async fn stored_offset(
    conn: &mut AnyConnection,
    (env_id, instance, stream): &(i64, String, LogStream),
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT position FROM log_offsets \
         WHERE environment_id = $1 AND instance = $2 AND stream = $3",
    )
    .bind(*env_id)
    .bind(instance.clone())
    .bind(wire(stream)?)
    .fetch_optional(&mut *conn)
    .await?;
    row.map_or(Ok(0), |r| int(&r, "position"))
}

/// Drops the environment's oldest lines beyond its limits, looking at `rows` lines at most.
async fn prune(
    conn: &mut AnyConnection,
    env_id: i64,
    usage: i64,
    now: UnixMs,
    limits: LogLimits,
    rows: usize,
) -> StoreResult<()> {
    let cutoff = now - limits.max_age_ms;
    let excess = usage - i64::try_from(limits.max_bytes).unwrap_or(i64::MAX);
    if excess <= 0 {
        // The common case costs one indexed row: is the oldest line still young?
        let first =
            sqlx::query("SELECT at FROM log_lines WHERE environment_id = $1 ORDER BY id LIMIT 1")
                .bind(env_id)
                .fetch_optional(&mut *conn)
                .await?;
        match first {
            Some(r) if int(&r, "at")? < cutoff => {}
            _ => return Ok(()),
        }
    }
    let oldest = sqlx::query(
        "SELECT id, at, bytes FROM log_lines WHERE environment_id = $1 ORDER BY id LIMIT $2",
    )
    .bind(env_id)
    .bind(i64::try_from(rows).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    let mut ids = Vec::with_capacity(oldest.len());
    let mut sizes = Vec::with_capacity(oldest.len());
    for r in &oldest {
        ids.push(int(r, "id")?);
        sizes.push((int(r, "at")?, u64::try_from(int(r, "bytes")?).unwrap_or(0)));
    }
    let (n, freed) = prune_count(&sizes, cutoff, excess);
    let Some(last) = n.checked_sub(1).and_then(|i| ids.get(i)) else {
        return Ok(());
    };
    sqlx::query("DELETE FROM log_lines WHERE environment_id = $1 AND id <= $2")
        .bind(env_id)
        .bind(*last)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE log_usage SET bytes = bytes - $2 WHERE environment_id = $1")
        .bind(env_id)
        .bind(i64::try_from(freed).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    // Offsets of instances quiet for longer than lines are kept: their agents resend from
    // their own acknowledged position, never from this far back.
    sqlx::query("DELETE FROM log_offsets WHERE environment_id = $1 AND updated_at < $2")
        .bind(env_id)
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn read(
    store: &SqlStore,
    env: &str,
    read: &LogRead,
) -> StoreResult<Vec<StoredLogLine>> {
    let mut tx = store.read().await?;
    let env_id = lookup::environment(&mut tx, env).await?;
    let environment = Name::parse(env)
        .map_err(|e| StoreError::Invalid(format!("environment name {env:?}: {e}")))?;
    let mut after = read.after;
    if read.since > 0 {
        // Lines are stored in about the order they were printed: start at the first line
        // printed at `since` rather than scan the hour before it.
        let first = sqlx::query(
            "SELECT id FROM log_lines WHERE environment_id = $1 AND at >= $2 \
             ORDER BY at, id LIMIT 1",
        )
        .bind(env_id)
        .bind(read.since)
        .fetch_optional(&mut *tx)
        .await?;
        match first {
            Some(r) => after = after.max(int(&r, "id")? - 1),
            None => return Ok(vec![]),
        }
    }
    let mut sql = String::from(
        "SELECT id, at, stack, service, instance, stream, text, position, rack FROM log_lines \
         WHERE environment_id = $1 AND id > $2 AND at >= $3",
    );
    let mut binds: Vec<String> = Vec::new();
    for (column, value) in [
        ("stack", &read.stack),
        ("service", &read.service),
        ("instance", &read.instance),
    ] {
        if let Some(v) = value {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {column} = ${}", binds.len() + 3));
        }
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", binds.len() + 4));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(env_id)
        .bind(after)
        .bind(read.since);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.bind(i64::from(read.limit)).fetch_all(&mut *tx).await?;
    rows.iter()
        .map(|r| {
            Ok(StoredLogLine {
                id: int(r, "id")?,
                line: LogLine {
                    at: int(r, "at")?,
                    environment: environment.clone(),
                    stack: name(r, "stack")?,
                    service: name(r, "service")?,
                    instance: text(r, "instance")?,
                    stream: enum_of(r, "stream")?,
                    text: text(r, "text")?,
                    offset: u64::try_from(int(r, "position")?).unwrap_or(0),
                    rack: opt_name(r, "rack")?,
                },
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "logs/tests.rs"]
mod tests;
