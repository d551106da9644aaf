//! API tokens, stored only as SHA-256 hashes. An agent token belongs to a rack and is deleted
//! with it, so a removed rack's join token stops working.

use mesh_types::api::{Role, Token};
use mesh_types::{Name, UnixMs};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{OrExists, enum_of, int, opt_int, opt_name, text, wire};
use super::{SqlStore, lookup, now_ms};
use crate::{StoreError, StoreResult, TokenRecord};

macro_rules! select {
    () => {
        "SELECT t.name, t.role, r.name AS rack, t.hash, t.created_at, t.last_used_at \
         FROM tokens t LEFT JOIN racks r ON r.id = t.rack_id"
    };
}

fn token(row: &AnyRow) -> StoreResult<Token> {
    Ok(Token {
        name: text(row, "name")?,
        role: enum_of(row, "role")?,
        rack: opt_name(row, "rack")?,
        created_at: int(row, "created_at")?,
        last_used_at: opt_int(row, "last_used_at")?,
    })
}

async fn by_name(conn: &mut AnyConnection, name: &str) -> StoreResult<Token> {
    let row = sqlx::query(concat!(select!(), " WHERE t.name = $1"))
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("token {name:?}")))?;
    token(&row)
}

pub(crate) async fn create(
    store: &SqlStore,
    name: &str,
    role: Role,
    rack: Option<&Name>,
    hash: &str,
) -> StoreResult<Token> {
    let at = now_ms();
    let mut w = store.write().await?;
    let rack_id = match rack {
        Some(r) => Some(lookup::rack(w.conn(), r.as_str()).await?),
        None => None,
    };
    let taken = sqlx::query("SELECT name FROM tokens WHERE name = $1")
        .bind(name)
        .fetch_optional(w.conn())
        .await?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "token {name:?} already exists"
        )));
    }
    sqlx::query(
        "INSERT INTO tokens (name, role, rack_id, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(wire(&role)?)
    .bind(rack_id)
    .bind(hash)
    .bind(at)
    .execute(w.conn())
    .await
    .or_exists(|| format!("token {name:?} or one with the same secret already exists"))?;
    let created = by_name(w.conn(), name).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn by_hash(store: &SqlStore, hash: &str) -> StoreResult<Option<TokenRecord>> {
    let mut conn = store.read().await?;
    let row = sqlx::query(concat!(select!(), " WHERE t.hash = $1"))
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(TokenRecord {
            token: token(&row)?,
            hash: text(&row, "hash")?,
        })
    })
    .transpose()
}

pub(crate) async fn list(store: &SqlStore) -> StoreResult<Vec<Token>> {
    let mut conn = store.read().await?;
    let rows = sqlx::query(select!()).fetch_all(&mut *conn).await?;
    let mut tokens = rows.iter().map(token).collect::<StoreResult<Vec<_>>>()?;
    tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tokens)
}

pub(crate) async fn delete(store: &SqlStore, name: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let done = sqlx::query("DELETE FROM tokens WHERE name = $1")
        .bind(name)
        .execute(w.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("token {name:?}")));
    }
    w.commit().await
}

pub(crate) async fn touch(store: &SqlStore, name: &str, at: UnixMs) -> StoreResult<()> {
    let mut w = store.write().await?;
    // Never moves backwards when two requests race; a deleted token is simply not touched.
    sqlx::query(
        "UPDATE tokens SET last_used_at = $1 \
         WHERE name = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
    )
    .bind(at)
    .bind(name)
    .execute(w.conn())
    .await?;
    w.commit().await
}
