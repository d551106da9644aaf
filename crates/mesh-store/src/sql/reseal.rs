//! Schema version 2: reseals config values from format 1 (bound to their purpose only) to
//! format 2 (bound to environment, stack, scope and key; see [`crate::crypto`]).
//!
//! SQL alone cannot do it, so this step runs as a migration written in Rust: inside the
//! migration's transaction, under its lock, together with its row in `schema_migrations`. It is
//! therefore applied once and whole, and a control plane older than version 2, which would write
//! unbound values, refuses to open the database afterwards. Values already in format 2 are left
//! as they are, so a partial run (which the transaction rules out anyway) could be repeated.

use mesh_types::config::ConfigScope;
use sqlx::AnyConnection;

use super::config::owner;
use super::rows::{blob, int, opt_name, text};
use crate::crypto::{MasterKey, Purpose};
use crate::{StoreError, StoreResult};

/// Reseals every format-1 config value; returns how many it resealed.
pub(crate) async fn config_values(conn: &mut AnyConnection, key: &MasterKey) -> StoreResult<u64> {
    let rows = sqlx::query(
        "SELECT c.id, e.name AS environment, st.name AS stack, sv.name AS service, c.region, \
         c.rack, c.key, c.value \
         FROM config_vars c JOIN stacks st ON st.id = c.stack_id \
         JOIN environments e ON e.id = st.environment_id \
         LEFT JOIN services sv ON sv.id = c.service_id \
         ORDER BY c.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut resealed = 0u64;
    for row in &rows {
        let sealed = blob(row, "value")?;
        if !MasterKey::is_format_v1(&sealed) {
            continue;
        }
        let env = text(row, "environment")?;
        let stack = text(row, "stack")?;
        let var = text(row, "key")?;
        let scope = ConfigScope {
            service: opt_name(row, "service")?,
            region: opt_name(row, "region")?,
            rack: opt_name(row, "rack")?,
        };
        let plain = key.open(Purpose::Config, &sealed).map_err(|_| {
            StoreError::FailedPrecondition(format!(
                "cannot reseal config variable {var:?} of environment {env:?}, stack {stack:?} \
                 ({}) for schema version 2: it does not open with this master key; start with \
                 the master key this database was written with (or, if the value is damaged, \
                 delete its row from config_vars and set it again)",
                scope.describe()
            ))
        })?;
        let bound = key.seal_for(&owner(&env, &stack, &scope, &var), &plain)?;
        sqlx::query("UPDATE config_vars SET value = $1 WHERE id = $2")
            .bind(bound)
            .bind(int(row, "id")?)
            .execute(&mut *conn)
            .await?;
        resealed += 1;
    }
    if resealed > 0 {
        tracing::info!(resealed, "resealed config values bound to their owner");
    }
    Ok(resealed)
}
