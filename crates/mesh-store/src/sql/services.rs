//! Services. Kind, hostname and status are derived when read, never stored, so they cannot
//! drift from the schedule, the routes and the instances they come from.

use mesh_types::api::{HealthCheck, Service, ServiceKind, ServiceStatus};
use mesh_types::name::service_hostname;
use mesh_types::{Schedule, UnixMs};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::rows::{OrExists, corrupt, int, int_as, name, opt_text, text};
use super::{SqlStore, lookup};
use crate::{ServiceSpec, StoreError, StoreResult};

// The instance states counted as running must match InstanceState's wire names.
macro_rules! select {
    () => {
        "SELECT e.name AS environment, st.name AS stack, s.name, s.command, s.schedule, s.port, \
         s.instances, s.size, s.health_path, s.health_grace_s, s.created_at, s.updated_at, \
         (SELECT COUNT(*) FROM routes r WHERE r.service_id = s.id) AS routes, \
         (SELECT COUNT(*) FROM instances i WHERE i.service_id = s.id \
            AND i.state IN ('running', 'healthy')) AS running, \
         (SELECT COUNT(*) FROM instances i WHERE i.service_id = s.id \
            AND i.state = 'healthy') AS healthy \
         FROM services s JOIN stacks st ON st.id = s.stack_id \
         JOIN environments e ON e.id = st.environment_id"
    };
}

fn service(row: &AnyRow) -> StoreResult<Service> {
    let schedule = opt_text(row, "schedule")?
        .map(|s| Schedule::parse(&s).map_err(corrupt))
        .transpose()?;
    let kind = if schedule.is_some() {
        ServiceKind::Cron
    } else if int(row, "routes")? > 0 {
        ServiceKind::Web
    } else {
        ServiceKind::Worker
    };
    let stack = name(row, "stack")?;
    let service = name(row, "name")?;
    let instances = int_as(row, "instances")?;
    Ok(Service {
        environment: name(row, "environment")?,
        hostname: service_hostname(stack.as_str(), service.as_str()),
        stack,
        name: service,
        kind,
        command: opt_text(row, "command")?,
        schedule,
        port: int_as(row, "port")?,
        instances,
        size: text(row, "size")?.parse().map_err(corrupt)?,
        health: HealthCheck {
            http_path: opt_text(row, "health_path")?,
            grace_s: int_as(row, "health_grace_s")?,
        },
        status: ServiceStatus {
            desired: instances,
            running: int_as(row, "running")?,
            healthy: int_as(row, "healthy")?,
        },
        created_at: int(row, "created_at")?,
        updated_at: int(row, "updated_at")?,
    })
}

async fn load(conn: &mut AnyConnection, service_id: i64) -> StoreResult<Service> {
    let row = sqlx::query(concat!(select!(), " WHERE s.id = $1"))
        .bind(service_id)
        .fetch_one(conn)
        .await?;
    service(&row)
}

pub(crate) async fn create(
    store: &SqlStore,
    env: &str,
    stack: &str,
    spec: &ServiceSpec,
    at: UnixMs,
) -> StoreResult<Service> {
    let svc = spec.name.as_str();
    let exists =
        || format!("service {svc:?} already exists in stack {stack:?} of environment {env:?}");
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack).await?;
    if lookup::found(lookup::service_in(w.conn(), stack_id, env, stack, svc).await)?.is_some() {
        return Err(StoreError::AlreadyExists(exists()));
    }
    let row = sqlx::query(
        "INSERT INTO services (stack_id, name, command, schedule, port, instances, size, \
         health_path, health_grace_s, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(stack_id)
    .bind(svc)
    .bind(spec.command.as_deref())
    .bind(spec.schedule.as_ref().map(Schedule::as_str))
    .bind(i64::from(spec.port))
    .bind(i64::from(spec.instances))
    .bind(spec.size.as_str())
    .bind(spec.health.http_path.as_deref())
    .bind(i64::from(spec.health.grace_s))
    .bind(at)
    .fetch_one(w.conn())
    .await
    .or_exists(exists)?;
    let created = load(w.conn(), int(&row, "id")?).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn list(
    store: &SqlStore,
    env: &str,
    stack: Option<&str>,
) -> StoreResult<Vec<Service>> {
    let mut tx = store.read().await?;
    let rows = match stack {
        Some(stack) => {
            let (_, stack_id) = lookup::stack(&mut tx, env, stack).await?;
            sqlx::query(concat!(select!(), " WHERE s.stack_id = $1"))
                .bind(stack_id)
                .fetch_all(&mut *tx)
                .await?
        }
        None => {
            let env_id = lookup::environment(&mut tx, env).await?;
            sqlx::query(concat!(select!(), " WHERE st.environment_id = $1"))
                .bind(env_id)
                .fetch_all(&mut *tx)
                .await?
        }
    };
    let mut services = rows.iter().map(service).collect::<StoreResult<Vec<_>>>()?;
    services.sort_by(|a, b| (&a.stack, &a.name).cmp(&(&b.stack, &b.name)));
    Ok(services)
}

pub(crate) async fn get(
    store: &SqlStore,
    env: &str,
    stack: &str,
    svc: &str,
) -> StoreResult<Service> {
    let mut tx = store.read().await?;
    let (_, stack_id) = lookup::stack(&mut tx, env, stack).await?;
    let id = lookup::service_in(&mut tx, stack_id, env, stack, svc).await?;
    load(&mut tx, id).await
}

pub(crate) async fn update(
    store: &SqlStore,
    env: &str,
    stack: &str,
    spec: &ServiceSpec,
    at: UnixMs,
) -> StoreResult<Service> {
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack).await?;
    let id = lookup::service_in(w.conn(), stack_id, env, stack, spec.name.as_str()).await?;
    sqlx::query(
        "UPDATE services SET command = $1, schedule = $2, port = $3, instances = $4, size = $5, \
         health_path = $6, health_grace_s = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(spec.command.as_deref())
    .bind(spec.schedule.as_ref().map(Schedule::as_str))
    .bind(i64::from(spec.port))
    .bind(i64::from(spec.instances))
    .bind(spec.size.as_str())
    .bind(spec.health.http_path.as_deref())
    .bind(i64::from(spec.health.grace_s))
    .bind(at)
    .bind(id)
    .execute(w.conn())
    .await?;
    let updated = load(w.conn(), id).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn delete(store: &SqlStore, env: &str, stack: &str, svc: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let (_, stack_id) = lookup::stack(w.conn(), env, stack).await?;
    let id = lookup::service_in(w.conn(), stack_id, env, stack, svc).await?;
    // Its config overrides, routes and instances go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM services WHERE id = $1")
        .bind(id)
        .execute(w.conn())
        .await?;
    w.commit().await
}
