//! Finding the row ids behind the names the API speaks in, with the `NotFound` messages users
//! see when one is missing. The parent is checked first, so a missing environment is reported
//! as such rather than as a missing stack.

use sqlx::AnyConnection;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use super::rows::{int, text};
use crate::{StoreError, StoreResult};

pub(crate) async fn environment(conn: &mut AnyConnection, env: &str) -> StoreResult<i64> {
    sqlx::query("SELECT id FROM environments WHERE name = $1")
        .bind(env)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| int(&row, "id"))
        .unwrap_or_else(|| Err(StoreError::NotFound(format!("environment {env:?}"))))
}

/// `(environment id, stack id)`.
pub(crate) async fn stack(
    conn: &mut AnyConnection,
    env: &str,
    stack: &str,
) -> StoreResult<(i64, i64)> {
    let env_id = environment(conn, env).await?;
    let stack_id = sqlx::query("SELECT id FROM stacks WHERE environment_id = $1 AND name = $2")
        .bind(env_id)
        .bind(stack)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| int(&row, "id"))
        .unwrap_or_else(|| {
            Err(StoreError::NotFound(format!(
                "stack {stack:?} in environment {env:?}"
            )))
        })?;
    Ok((env_id, stack_id))
}

/// The id of a service of a known stack.
pub(crate) async fn service_in(
    conn: &mut AnyConnection,
    stack_id: i64,
    env: &str,
    stack: &str,
    service: &str,
) -> StoreResult<i64> {
    sqlx::query("SELECT id FROM services WHERE stack_id = $1 AND name = $2")
        .bind(stack_id)
        .bind(service)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| int(&row, "id"))
        .unwrap_or_else(|| Err(service_not_found(env, stack, service)))
}

pub(crate) fn service_not_found(env: &str, stack: &str, service: &str) -> StoreError {
    StoreError::NotFound(format!(
        "service {service:?} in stack {stack:?} of environment {env:?}"
    ))
}

pub(crate) async fn rack(conn: &mut AnyConnection, rack: &str) -> StoreResult<i64> {
    sqlx::query("SELECT id FROM racks WHERE name = $1")
        .bind(rack)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| int(&row, "id"))
        .unwrap_or_else(|| Err(StoreError::NotFound(format!("rack {rack:?}"))))
}

pub(crate) async fn provider(conn: &mut AnyConnection, provider: &str) -> StoreResult<i64> {
    sqlx::query("SELECT id FROM providers WHERE name = $1")
        .bind(provider)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| int(&row, "id"))
        .unwrap_or_else(|| Err(StoreError::NotFound(format!("provider {provider:?}"))))
}

/// `Some(id)` if found, `None` if not: for existence checks that must not hide other errors.
pub(crate) fn found<T>(result: StoreResult<T>) -> StoreResult<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The sorted `name` column of a query's rows, for messages listing what still uses something.
pub(crate) async fn names(
    conn: &mut AnyConnection,
    query: Query<'_, sqlx::Any, AnyArguments>,
) -> StoreResult<Vec<String>> {
    let rows = query.fetch_all(conn).await?;
    let mut out = rows
        .iter()
        .map(|r| text(r, "name"))
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort();
    Ok(out)
}
