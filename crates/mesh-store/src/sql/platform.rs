//! Providers and racks: the infrastructure environments are placed on (servers: `servers.rs`).

use std::collections::BTreeMap;

use mesh_types::UnixMs;
use mesh_types::api::{CreateProvider, Provider, Rack, RackRuntime};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{
    OrExists, blob, corrupt, domain, enum_of, int, is_foreign_key_violation, name, text, wire,
};
use super::{SqlStore, lookup};
use crate::crypto::Purpose;
use crate::{StoreError, StoreResult};

macro_rules! select_rack {
    () => {
        "SELECT r.name, p.name AS provider, r.region, r.size, r.domain, r.address, r.state, \
         r.created_at, r.runtime FROM racks r JOIN providers p ON p.id = r.provider_id"
    };
}

fn rack(row: &AnyRow) -> StoreResult<Rack> {
    Ok(Rack {
        name: name(row, "name")?,
        provider: name(row, "provider")?,
        region: name(row, "region")?,
        size: text(row, "size")?,
        domain: domain(row, "domain")?,
        address: text(row, "address")?,
        state: enum_of(row, "state")?,
        created_at: int(row, "created_at")?,
        runtime: RackRuntime::parse(&text(row, "runtime")?).map_err(corrupt)?,
    })
}

async fn provider_by_name(conn: &mut AnyConnection, provider: &str) -> StoreResult<Provider> {
    let row = sqlx::query("SELECT id, name, kind, created_at FROM providers WHERE name = $1")
        .bind(provider)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("provider {provider:?}")))?;
    let keys = sqlx::query("SELECT key FROM provider_secrets WHERE provider_id = $1")
        .bind(int(&row, "id")?)
        .fetch_all(&mut *conn)
        .await?;
    let mut secret_keys = keys
        .iter()
        .map(|k| text(k, "key"))
        .collect::<StoreResult<Vec<_>>>()?;
    secret_keys.sort();
    Ok(Provider {
        name: name(&row, "name")?,
        kind: enum_of(&row, "kind")?,
        secret_keys,
        created_at: int(&row, "created_at")?,
    })
}

pub(crate) async fn create_provider(
    store: &SqlStore,
    provider: &CreateProvider,
    at: UnixMs,
) -> StoreResult<Provider> {
    let exists = || format!("provider {:?} already exists", provider.name.as_str());
    let mut w = store.write().await?;
    if lookup::found(lookup::provider(w.conn(), provider.name.as_str()).await)?.is_some() {
        return Err(StoreError::AlreadyExists(exists()));
    }
    let row = sqlx::query(
        "INSERT INTO providers (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(provider.name.as_str())
    .bind(provider.kind.as_str())
    .bind(at)
    .fetch_one(w.conn())
    .await
    .or_exists(exists)?;
    let id = int(&row, "id")?;
    for (key, value) in &provider.secrets {
        let sealed = store.key().seal_str(Purpose::ProviderSecret, value)?;
        sqlx::query("INSERT INTO provider_secrets (provider_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(key.as_str())
            .bind(sealed)
            .execute(w.conn())
            .await?;
    }
    let created = provider_by_name(w.conn(), provider.name.as_str()).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn list_providers(store: &SqlStore) -> StoreResult<Vec<Provider>> {
    let mut tx = store.read().await?;
    let rows = sqlx::query("SELECT name FROM providers")
        .fetch_all(&mut *tx)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(provider_by_name(&mut tx, &text(&row, "name")?).await?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) async fn get_provider(store: &SqlStore, provider: &str) -> StoreResult<Provider> {
    provider_by_name(&mut *store.read().await?, provider).await
}

pub(crate) async fn provider_secrets(
    store: &SqlStore,
    provider: &str,
) -> StoreResult<BTreeMap<String, String>> {
    let mut tx = store.read().await?;
    let id = lookup::provider(&mut tx, provider).await?;
    let rows = sqlx::query("SELECT key, value FROM provider_secrets WHERE provider_id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter()
        .map(|row| {
            let value = store
                .key()
                .open_str(Purpose::ProviderSecret, &blob(row, "value")?)?;
            Ok((text(row, "key")?, value))
        })
        .collect()
}

pub(crate) async fn delete_provider(store: &SqlStore, provider: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let id = lookup::provider(w.conn(), provider).await?;
    let users = lookup::names(
        w.conn(),
        sqlx::query("SELECT name FROM racks WHERE provider_id = $1").bind(id),
    )
    .await?;
    if !users.is_empty() {
        return Err(StoreError::FailedPrecondition(format!(
            "provider {provider:?} is still used by racks: {}",
            users.join(", ")
        )));
    }
    sqlx::query("DELETE FROM providers WHERE id = $1")
        .bind(id)
        .execute(w.conn())
        .await
        .map_err(|e| in_use(e, || format!("provider {provider:?} is used by a new rack")))?;
    w.commit().await
}

async fn rack_by_name(conn: &mut AnyConnection, rack_name: &str) -> StoreResult<Rack> {
    let row = sqlx::query(concat!(select_rack!(), " WHERE r.name = $1"))
        .bind(rack_name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("rack {rack_name:?}")))?;
    rack(&row)
}

pub(crate) async fn create_rack(
    store: &SqlStore,
    new: &Rack,
    kubeconfig: Option<&str>,
) -> StoreResult<Rack> {
    let sealed = kubeconfig
        .map(|k| store.key().seal_str(Purpose::Kubeconfig, k))
        .transpose()?;
    let exists = || format!("rack {:?} already exists", new.name.as_str());
    let mut w = store.write().await?;
    let provider_id = lookup::provider(w.conn(), new.provider.as_str()).await?;
    if lookup::found(lookup::rack(w.conn(), new.name.as_str()).await)?.is_some() {
        return Err(StoreError::AlreadyExists(exists()));
    }
    sqlx::query(
        "INSERT INTO racks (name, provider_id, region, size, domain, address, state, created_at, \
         runtime, kubeconfig_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new.name.as_str())
    .bind(provider_id)
    .bind(new.region.as_str())
    .bind(new.size.as_str())
    .bind(new.domain.as_str())
    .bind(new.address.as_str())
    .bind(wire(&new.state)?)
    .bind(new.created_at)
    .bind(new.runtime.as_str())
    .bind(sealed)
    .execute(w.conn())
    .await
    .or_exists(exists)?;
    let created = rack_by_name(w.conn(), new.name.as_str()).await?;
    w.commit().await?;
    Ok(created)
}

/// A Kubernetes rack's kubeconfig (None for a native rack).
pub(crate) async fn rack_kubeconfig(
    store: &SqlStore,
    rack_name: &str,
) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT kubeconfig_sealed FROM racks WHERE name = $1")
        .bind(rack_name)
        .fetch_optional(&mut *store.read().await?)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("rack {rack_name:?}")))?;
    let sealed: Option<Vec<u8>> = sqlx::Row::try_get(&row, "kubeconfig_sealed")?;
    sealed
        .map(|b| store.key().open_str(Purpose::Kubeconfig, &b))
        .transpose()
}

pub(crate) async fn set_rack_kubeconfig(
    store: &SqlStore,
    rack_name: &str,
    kubeconfig: &str,
) -> StoreResult<bool> {
    let sealed = store.key().seal_str(Purpose::Kubeconfig, kubeconfig)?;
    let mut w = store.write().await?;
    let rack = rack_by_name(w.conn(), rack_name).await?;
    if rack.runtime != mesh_types::api::RackRuntime::Kubernetes {
        return Err(StoreError::FailedPrecondition(format!(
            "rack {rack_name:?} runs the {} runtime: only a Kubernetes rack has a kubeconfig",
            rack.runtime
        )));
    }
    let set = sqlx::query(
        "UPDATE racks SET kubeconfig_sealed = $1 WHERE name = $2 AND kubeconfig_sealed IS NULL",
    )
    .bind(sealed)
    .bind(rack_name)
    .execute(w.conn())
    .await?
    .rows_affected();
    w.commit().await?;
    Ok(set == 1)
}

pub(crate) async fn list_racks(store: &SqlStore) -> StoreResult<Vec<Rack>> {
    let rows = sqlx::query(select_rack!())
        .fetch_all(&mut *store.read().await?)
        .await?;
    let mut racks = rows.iter().map(rack).collect::<StoreResult<Vec<_>>>()?;
    racks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(racks)
}

pub(crate) async fn get_rack(store: &SqlStore, rack_name: &str) -> StoreResult<Rack> {
    rack_by_name(&mut *store.read().await?, rack_name).await
}

pub(crate) async fn update_rack(store: &SqlStore, changed: &Rack) -> StoreResult<Rack> {
    let mut w = store.write().await?;
    let id = lookup::rack(w.conn(), changed.name.as_str()).await?;
    let provider_id = lookup::provider(w.conn(), changed.provider.as_str()).await?;
    sqlx::query(
        "UPDATE racks SET provider_id = $1, region = $2, size = $3, domain = $4, address = $5, \
         state = $6 WHERE id = $7",
    )
    .bind(provider_id)
    .bind(changed.region.as_str())
    .bind(changed.size.as_str())
    .bind(changed.domain.as_str())
    .bind(changed.address.as_str())
    .bind(wire(&changed.state)?)
    .bind(id)
    .execute(w.conn())
    .await?;
    let updated = rack_by_name(w.conn(), changed.name.as_str()).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn delete_rack(store: &SqlStore, rack_name: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let id = lookup::rack(w.conn(), rack_name).await?;
    let users = lookup::names(
        w.conn(),
        sqlx::query(
            "SELECT e.name FROM environment_racks er \
             JOIN environments e ON e.id = er.environment_id WHERE er.rack_id = $1 \
             UNION SELECT e.name FROM environment_leaving_racks lr \
             JOIN environments e ON e.id = lr.environment_id WHERE lr.rack_id = $1",
        )
        .bind(id),
    )
    .await?;
    if !users.is_empty() {
        return Err(StoreError::FailedPrecondition(format!(
            "rack {rack_name:?} still hosts environments: {}",
            users.join(", ")
        )));
    }
    // Its servers, agent tokens and alias endpoints go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM racks WHERE id = $1")
        .bind(id)
        .execute(w.conn())
        .await
        .map_err(|e| {
            in_use(e, || {
                format!("rack {rack_name:?} is used by a new environment")
            })
        })?;
    w.commit().await
}

/// The foreign key refused the delete: something started using it after the check above
/// (another control plane, on PostgreSQL).
fn in_use(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    if is_foreign_key_violation(&e) {
        StoreError::FailedPrecondition(message())
    } else {
        StoreError::Database(e)
    }
}
