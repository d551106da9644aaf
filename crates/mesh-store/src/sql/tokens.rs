//! API tokens, stored only as SHA-256 hashes. An agent token belongs to a rack and is deleted
//! with it, so a removed rack's join token stops working. A developer or viewer token names the
//! environments it reaches; deleting an environment drops it from every token's list.

use mesh_types::api::{Role, Token};
use mesh_types::{Name, UnixMs};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{OrExists, enum_of, int, name, opt_int, opt_name, text, wire};
use super::{SqlStore, lookup, now_ms};
use crate::{StoreError, StoreResult, TokenRecord};

macro_rules! select {
    () => {
        "SELECT t.id, t.name, t.role, r.name AS rack, t.hash, t.expires_at, t.created_at, \
         t.last_used_at \
         FROM tokens t LEFT JOIN racks r ON r.id = t.rack_id"
    };
}

async fn token(conn: &mut AnyConnection, row: &AnyRow) -> StoreResult<Token> {
    let envs = sqlx::query(
        "SELECT e.name FROM token_environments te JOIN environments e ON e.id = te.environment_id \
         WHERE te.token_id = $1 ORDER BY e.name",
    )
    .bind(int(row, "id")?)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Token {
        name: text(row, "name")?,
        role: enum_of(row, "role")?,
        rack: opt_name(row, "rack")?,
        environments: envs
            .iter()
            .map(|r| name(r, "name"))
            .collect::<StoreResult<_>>()?,
        expires_at: opt_int(row, "expires_at")?,
        created_at: int(row, "created_at")?,
        last_used_at: opt_int(row, "last_used_at")?,
    })
}

async fn by_name(conn: &mut AnyConnection, name: &str) -> StoreResult<Token> {
    let row = sqlx::query(concat!(select!(), " WHERE t.name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("token {name:?}")))?;
    token(conn, &row).await
}

pub(crate) async fn create(
    store: &SqlStore,
    name: &str,
    role: Role,
    rack: Option<&Name>,
    hash: &str,
) -> StoreResult<Token> {
    create_scoped(store, name, role, rack, &[], None, hash).await
}

pub(crate) async fn create_scoped(
    store: &SqlStore,
    name: &str,
    role: Role,
    rack: Option<&Name>,
    environments: &[Name],
    expires_at: Option<UnixMs>,
    hash: &str,
) -> StoreResult<Token> {
    let at = now_ms();
    let mut w = store.write().await?;
    let rack_id = match rack {
        Some(r) => Some(lookup::rack(w.conn(), r.as_str()).await?),
        None => None,
    };
    let mut env_ids = Vec::with_capacity(environments.len());
    for env in environments {
        let id = lookup::environment(w.conn(), env.as_str()).await?;
        if !env_ids.contains(&id) {
            env_ids.push(id);
        }
    }
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
        "INSERT INTO tokens (name, role, rack_id, hash, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(wire(&role)?)
    .bind(rack_id)
    .bind(hash)
    .bind(expires_at)
    .bind(at)
    .execute(w.conn())
    .await
    .or_exists(|| format!("token {name:?} or one with the same secret already exists"))?;
    for env_id in env_ids {
        sqlx::query(
            "INSERT INTO token_environments (token_id, environment_id) \
             SELECT id, $2 FROM tokens WHERE name = $1",
        )
        .bind(name)
        .bind(env_id)
        .execute(w.conn())
        .await?;
    }
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
    match row {
        Some(row) => Ok(Some(TokenRecord {
            token: token(&mut conn, &row).await?,
            hash: text(&row, "hash")?,
        })),
        None => Ok(None),
    }
}

pub(crate) async fn list(store: &SqlStore) -> StoreResult<Vec<Token>> {
    let mut conn = store.read().await?;
    let rows = sqlx::query(select!()).fetch_all(&mut *conn).await?;
    let mut tokens = Vec::with_capacity(rows.len());
    for row in &rows {
        tokens.push(token(&mut conn, row).await?);
    }
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
