//! TLS certificates of an environment. The private key is sealed; the chain is public.

use mesh_types::api::Certificate;
use sqlx::any::AnyRow;

use super::rows::{OrExists, blob, corrupt, enum_of, int, name, text, wire};
use super::{SqlStore, lookup};
use crate::crypto::Purpose;
use crate::{CertificateRecord, StoreError, StoreResult};

macro_rules! select {
    () => {
        "SELECT e.name AS environment, c.fingerprint, c.domains, c.source, c.state, c.issuer, \
         c.not_before, c.not_after, c.chain_pem, c.key_sealed, c.created_at \
         FROM certificates c JOIN environments e ON e.id = c.environment_id"
    };
}

fn certificate(row: &AnyRow) -> StoreResult<Certificate> {
    let domains = text(row, "domains")?;
    Ok(Certificate {
        environment: name(row, "environment")?,
        fingerprint: text(row, "fingerprint")?,
        domains: serde_json::from_str(&domains)
            .map_err(|e| corrupt(format!("column domains: {e}")))?,
        source: enum_of(row, "source")?,
        state: enum_of(row, "state")?,
        issuer: text(row, "issuer")?,
        not_before: int(row, "not_before")?,
        not_after: int(row, "not_after")?,
        created_at: int(row, "created_at")?,
    })
}

fn not_found(env: &str, fingerprint: &str) -> StoreError {
    StoreError::NotFound(format!(
        "certificate {fingerprint:?} in environment {env:?}"
    ))
}

pub(crate) async fn add(store: &SqlStore, record: &CertificateRecord) -> StoreResult<Certificate> {
    let cert = &record.certificate;
    let env = cert.environment.as_str();
    let exists = || {
        format!(
            "certificate {:?} already exists in environment {env:?}",
            cert.fingerprint
        )
    };
    let domains = serde_json::to_string(&cert.domains)
        .map_err(|e| StoreError::Invalid(format!("certificate domains: {e}")))?;
    let key_sealed = store
        .key()
        .seal_str(Purpose::CertificateKey, &record.key_pem)?;
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let taken =
        sqlx::query("SELECT id FROM certificates WHERE environment_id = $1 AND fingerprint = $2")
            .bind(env_id)
            .bind(cert.fingerprint.as_str())
            .fetch_optional(w.conn())
            .await?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(exists()));
    }
    sqlx::query(
        "INSERT INTO certificates (environment_id, fingerprint, domains, source, state, issuer, \
         not_before, not_after, chain_pem, key_sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(env_id)
    .bind(cert.fingerprint.as_str())
    .bind(domains)
    .bind(wire(&cert.source)?)
    .bind(wire(&cert.state)?)
    .bind(cert.issuer.as_str())
    .bind(cert.not_before)
    .bind(cert.not_after)
    .bind(record.chain_pem.as_str())
    .bind(key_sealed)
    .bind(cert.created_at)
    .execute(w.conn())
    .await
    .or_exists(exists)?;
    let row = sqlx::query(concat!(
        select!(),
        " WHERE c.environment_id = $1 AND c.fingerprint = $2"
    ))
    .bind(env_id)
    .bind(cert.fingerprint.as_str())
    .fetch_one(w.conn())
    .await?;
    let stored = certificate(&row)?;
    w.commit().await?;
    Ok(stored)
}

pub(crate) async fn list(store: &SqlStore, env: &str) -> StoreResult<Vec<Certificate>> {
    let mut tx = store.read().await?;
    let env_id = lookup::environment(&mut tx, env).await?;
    let rows = sqlx::query(concat!(
        select!(),
        " WHERE c.environment_id = $1 ORDER BY c.id"
    ))
    .bind(env_id)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(certificate).collect()
}

pub(crate) async fn get(
    store: &SqlStore,
    env: &str,
    fingerprint: &str,
) -> StoreResult<CertificateRecord> {
    let mut tx = store.read().await?;
    let env_id = lookup::environment(&mut tx, env).await?;
    let row = sqlx::query(concat!(
        select!(),
        " WHERE c.environment_id = $1 AND c.fingerprint = $2"
    ))
    .bind(env_id)
    .bind(fingerprint)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found(env, fingerprint))?;
    Ok(CertificateRecord {
        certificate: certificate(&row)?,
        chain_pem: text(&row, "chain_pem")?,
        key_pem: store
            .key()
            .open_str(Purpose::CertificateKey, &blob(&row, "key_sealed")?)?,
    })
}

pub(crate) async fn delete(store: &SqlStore, env: &str, fingerprint: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let done =
        sqlx::query("DELETE FROM certificates WHERE environment_id = $1 AND fingerprint = $2")
            .bind(env_id)
            .bind(fingerprint)
            .execute(w.conn())
            .await?;
    if done.rows_affected() == 0 {
        return Err(not_found(env, fingerprint));
    }
    w.commit().await
}
