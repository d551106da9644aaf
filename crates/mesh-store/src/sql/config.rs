//! Config variables of a stack, in every scope. Values are sealed before they are written, bound
//! to their owner (environment, stack, scope and key): a value copied to another row does not
//! open there, and reading that stack's config then fails with an error naming the key, while
//! every other stack reads as before.
//!
//! A scope's optional parts are matched as `COALESCE(service_id, 0)`, `COALESCE(region, '')`
//! and `COALESCE(rack, '')`, the same expressions as the unique index, because NULL never
//! equals NULL.

use std::collections::BTreeMap;

use mesh_types::config::{ConfigScope, ConfigVar, MAX_VARS_PER_SCOPE, check_value};
use mesh_types::{ConfigKey, UnixMs};
use sqlx::AnyConnection;

use super::rows::{OrExists, blob, corrupt, int, opt_name, text};
use super::{SqlStore, lookup};
use crate::crypto::{OpenError, Owner};
use crate::{StoreError, StoreResult};

macro_rules! scope_match {
    () => {
        "stack_id = $1 AND COALESCE(service_id, 0) = $2 \
         AND COALESCE(region, '') = $3 AND COALESCE(rack, '') = $4"
    };
}

/// The owner a config value of this row is sealed for.
pub(crate) fn owner(env: &str, stack: &str, scope: &ConfigScope, key: &str) -> Owner {
    Owner::config(
        env,
        stack,
        scope.service.as_ref().map(|s| s.as_str()),
        scope.region.as_ref().map(|r| r.as_str()),
        scope.rack.as_ref().map(|r| r.as_str()),
        key,
    )
}

/// The error for a value of `key` in `scope` that did not open.
pub(crate) fn open_error(
    e: OpenError,
    env: &str,
    stack: &str,
    scope: &ConfigScope,
    key: &str,
) -> StoreError {
    let flags = match (&scope.region, &scope.rack) {
        (Some(r), _) => format!(" --region {r}"),
        (None, Some(r)) => format!(" --rack {r}"),
        (None, None) => String::new(),
    };
    let (set, unset) = match &scope.service {
        Some(svc) => (
            format!("mesh svc config set {svc}{flags} {key}=..."),
            format!("mesh svc config unset {svc}{flags} {key}"),
        ),
        None => (
            format!("mesh config set{flags} {key}=..."),
            format!("mesh config unset{flags} {key}"),
        ),
    };
    let what = format!(
        "config variable {key:?} of environment {env:?}, stack {stack:?} ({})",
        scope.describe()
    );
    match e {
        OpenError::WrongKey => StoreError::Crypto,
        OpenError::OtherOwner => StoreError::FailedPrecondition(format!(
            "{what} cannot be opened: its value was sealed for a different owner (another \
             environment, stack, scope or key; it was copied from another row) or is damaged; \
             set it again with `{set}` or remove it with `{unset}`"
        )),
        OpenError::Unbound => StoreError::FailedPrecondition(format!(
            "{what} is sealed in the old format that does not name its owner (written by a mesh \
             older than schema version 2); set it again with `{set}` or remove it with `{unset}`"
        )),
    }
}

async fn load(
    store: &SqlStore,
    conn: &mut AnyConnection,
    env: &str,
    stack: &str,
    stack_id: i64,
) -> StoreResult<Vec<ConfigVar>> {
    let rows = sqlx::query(
        "SELECT c.key, c.value, sv.name AS service, c.region, c.rack, c.updated_at \
         FROM config_vars c LEFT JOIN services sv ON sv.id = c.service_id WHERE c.stack_id = $1",
    )
    .bind(stack_id)
    .fetch_all(conn)
    .await?;
    let mut vars = rows
        .iter()
        .map(|row| {
            let key = text(row, "key")?;
            let scope = ConfigScope {
                service: opt_name(row, "service")?,
                region: opt_name(row, "region")?,
                rack: opt_name(row, "rack")?,
            };
            let value = store
                .key()
                .open_str_for(&owner(env, stack, &scope, &key), &blob(row, "value")?)
                .map_err(|e| open_error(e, env, stack, &scope, &key))?;
            Ok(ConfigVar {
                key: ConfigKey::parse(&key).map_err(|e| corrupt(e.to_string()))?,
                value,
                scope,
                updated_at: int(row, "updated_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    vars.sort_by(|a, b| (&a.scope, &a.key).cmp(&(&b.scope, &b.key)));
    Ok(vars)
}

pub(crate) async fn list(store: &SqlStore, env: &str, stack: &str) -> StoreResult<Vec<ConfigVar>> {
    let mut tx = store.read().await?;
    let (_, stack_id) = lookup::stack(&mut tx, env, stack).await?;
    load(store, &mut tx, env, stack, stack_id).await
}

pub(crate) async fn change(
    store: &SqlStore,
    env: &str,
    stack: &str,
    scope: &ConfigScope,
    set: &BTreeMap<ConfigKey, String>,
    unset: &[ConfigKey],
    at: UnixMs,
) -> StoreResult<Vec<ConfigVar>> {
    scope.check().map_err(StoreError::Invalid)?;
    for (key, value) in set {
        check_value(key, value).map_err(StoreError::Invalid)?;
    }
    if let Some(key) = unset.iter().find(|k| set.contains_key(*k)) {
        return Err(StoreError::Invalid(format!(
            "config variable {key} is both set and unset"
        )));
    }
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack).await?;
    let service_id = match &scope.service {
        Some(svc) => Some(lookup::service_in(w.conn(), stack_id, env, stack, svc.as_str()).await?),
        None => None,
    };
    let region = scope.region.as_ref().map_or("", |r| r.as_str());
    let rack = scope.rack.as_ref().map_or("", |r| r.as_str());
    let where_ = || {
        if *scope == ConfigScope::default() {
            format!("stack {stack:?}")
        } else {
            format!("stack {stack:?} ({})", scope.describe())
        }
    };

    for key in unset {
        let done = sqlx::query(concat!(
            "DELETE FROM config_vars WHERE ",
            scope_match!(),
            " AND key = $5"
        ))
        .bind(stack_id)
        .bind(service_id.unwrap_or(0))
        .bind(region)
        .bind(rack)
        .bind(key.as_str())
        .execute(w.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "config variable {:?} of {}",
                key.as_str(),
                where_()
            )));
        }
    }

    for (key, value) in set {
        let sealed = store
            .key()
            .seal_str_for(&owner(env, stack, scope, key.as_str()), value)?;
        let updated = sqlx::query(concat!(
            "UPDATE config_vars SET value = $6, updated_at = $7 WHERE ",
            scope_match!(),
            " AND key = $5"
        ))
        .bind(stack_id)
        .bind(service_id.unwrap_or(0))
        .bind(region)
        .bind(rack)
        .bind(key.as_str())
        .bind(sealed.clone())
        .bind(at)
        .execute(w.conn())
        .await?;
        if updated.rows_affected() > 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO config_vars (stack_id, service_id, region, rack, key, value, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(stack_id)
        .bind(service_id)
        .bind(scope.region.as_ref().map(|r| r.as_str()))
        .bind(scope.rack.as_ref().map(|r| r.as_str()))
        .bind(key.as_str())
        .bind(sealed)
        .bind(at)
        .execute(w.conn())
        .await
        .or_exists(|| {
            format!(
                "config variable {:?} of {} was set concurrently; retry",
                key.as_str(),
                where_()
            )
        })?;
    }

    let row = sqlx::query(concat!(
        "SELECT COUNT(*) AS n FROM config_vars WHERE ",
        scope_match!()
    ))
    .bind(stack_id)
    .bind(service_id.unwrap_or(0))
    .bind(region)
    .bind(rack)
    .fetch_one(w.conn())
    .await?;
    let count = int(&row, "n")?;
    if count > i64::try_from(MAX_VARS_PER_SCOPE).unwrap_or(i64::MAX) {
        return Err(StoreError::Invalid(format!(
            "{} would hold {count} config variables, at most {MAX_VARS_PER_SCOPE} are allowed",
            where_()
        )));
    }
    let vars = load(store, w.conn(), env, stack, stack_id).await?;
    w.commit().await?;
    Ok(vars)
}
