//! Endpoints and their routes. A custom domain's DNS records are derived from the addresses of
//! the environment's racks when read, so they follow the racks without being rewritten.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use mesh_types::api::{DnsRecord, Endpoint, EndpointKind, Route, check_route_path};
use mesh_types::{Domain, Name, UnixMs};
use sqlx::AnyConnection;

use super::environments::check_domain_free;
use super::rows::{OrExists, domain, enum_of, int, name, opt_name, text, wire};
use super::{SqlStore, lookup};
use crate::{StoreError, StoreResult};

/// Every endpoint of an environment, sorted by domain.
async fn load_all(conn: &mut AnyConnection, env_id: i64) -> StoreResult<Vec<Endpoint>> {
    let env = sqlx::query("SELECT name FROM environments WHERE id = $1")
        .bind(env_id)
        .fetch_one(&mut *conn)
        .await?;
    let environment = name(&env, "name")?;
    let mut routes: BTreeMap<i64, Vec<Route>> = BTreeMap::new();
    let route_rows = sqlx::query(
        "SELECT rt.endpoint_id, rt.path, st.name AS stack, sv.name AS service FROM routes rt \
         JOIN endpoints p ON p.id = rt.endpoint_id \
         JOIN services sv ON sv.id = rt.service_id JOIN stacks st ON st.id = sv.stack_id \
         WHERE p.environment_id = $1 ORDER BY rt.endpoint_id, rt.position",
    )
    .bind(env_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &route_rows {
        routes
            .entry(int(row, "endpoint_id")?)
            .or_default()
            .push(Route {
                path: text(row, "path")?,
                stack: name(row, "stack")?,
                service: name(row, "service")?,
            });
    }
    let addresses = rack_addresses(conn, env_id).await?;
    let rows = sqlx::query(
        "SELECT p.id, p.domain, p.kind, r.name AS rack, p.https_redirect, p.created_at \
         FROM endpoints p \
         LEFT JOIN racks r ON r.id = p.rack_id WHERE p.environment_id = $1",
    )
    .bind(env_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut endpoints = rows
        .iter()
        .map(|row| {
            let domain = domain(row, "domain")?;
            let kind: EndpointKind = enum_of(row, "kind")?;
            let dns = match kind {
                EndpointKind::Alias => Vec::new(),
                EndpointKind::Custom => dns_records(&domain, &addresses),
            };
            Ok(Endpoint {
                environment: environment.clone(),
                kind,
                rack: opt_name(row, "rack")?,
                routes: routes.remove(&int(row, "id")?).unwrap_or_default(),
                dns,
                https_redirect: int(row, "https_redirect")? != 0,
                created_at: int(row, "created_at")?,
                domain,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    endpoints.sort_by(|a, b| a.domain.cmp(&b.domain));
    Ok(endpoints)
}

/// The distinct addresses of the environment's racks, in rack order.
async fn rack_addresses(conn: &mut AnyConnection, env_id: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT r.address FROM environment_racks er JOIN racks r ON r.id = er.rack_id \
         WHERE er.environment_id = $1 ORDER BY er.position",
    )
    .bind(env_id)
    .fetch_all(conn)
    .await?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for row in &rows {
        let address = text(row, "address")?;
        if !address.is_empty() && seen.insert(address.clone()) {
            out.push(address);
        }
    }
    Ok(out)
}

fn dns_records(domain: &Domain, addresses: &[String]) -> Vec<DnsRecord> {
    addresses
        .iter()
        .map(|address| DnsRecord {
            record_type: match address.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => "A",
                Ok(IpAddr::V6(_)) => "AAAA",
                Err(_) => "CNAME",
            }
            .to_string(),
            name: domain.to_string(),
            value: address.clone(),
        })
        .collect()
}

async fn load_one(
    conn: &mut AnyConnection,
    env_id: i64,
    env: &str,
    domain: &str,
) -> StoreResult<Endpoint> {
    load_all(conn, env_id)
        .await?
        .into_iter()
        .find(|e| e.domain.as_str() == domain)
        .ok_or_else(|| endpoint_not_found(env, domain))
}

fn endpoint_not_found(env: &str, domain: &str) -> StoreError {
    StoreError::NotFound(format!("endpoint {domain:?} in environment {env:?}"))
}

/// `(environment id, endpoint id, normalized domain)`.
async fn find(
    conn: &mut AnyConnection,
    env: &str,
    domain: &str,
) -> StoreResult<(i64, i64, String)> {
    let env_id = lookup::environment(conn, env).await?;
    // Domains are stored normalized; a string that is no domain names no endpoint.
    let normalized = Domain::parse(domain).map_err(|_| endpoint_not_found(env, domain))?;
    let row = sqlx::query("SELECT id FROM endpoints WHERE environment_id = $1 AND domain = $2")
        .bind(env_id)
        .bind(normalized.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| endpoint_not_found(env, domain))?;
    Ok((env_id, int(&row, "id")?, normalized.to_string()))
}

pub(crate) async fn create(
    store: &SqlStore,
    env: &str,
    domain: &Domain,
    kind: EndpointKind,
    rack: Option<&Name>,
    at: UnixMs,
) -> StoreResult<Endpoint> {
    match (kind, rack) {
        (EndpointKind::Alias, None) => {
            return Err(StoreError::Invalid(format!(
                "alias endpoint {:?} needs the rack whose domain it lies under",
                domain.as_str()
            )));
        }
        (EndpointKind::Custom, Some(_)) => {
            return Err(StoreError::Invalid(format!(
                "custom endpoint {:?} cannot belong to a rack",
                domain.as_str()
            )));
        }
        _ => {}
    }
    let mut w = store.write().await?;
    let env_id = lookup::environment(w.conn(), env).await?;
    let rack_id = match rack {
        Some(r) => Some(lookup::rack(w.conn(), r.as_str()).await?),
        None => None,
    };
    check_domain_free(w.conn(), domain.as_str()).await?;
    sqlx::query(
        "INSERT INTO endpoints (environment_id, domain, kind, rack_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(env_id)
    .bind(domain.as_str())
    .bind(wire(&kind)?)
    .bind(rack_id)
    .bind(at)
    .execute(w.conn())
    .await
    .or_exists(|| format!("endpoint {:?} already exists", domain.as_str()))?;
    let created = load_one(w.conn(), env_id, env, domain.as_str()).await?;
    w.commit().await?;
    Ok(created)
}

pub(crate) async fn list(store: &SqlStore, env: &str) -> StoreResult<Vec<Endpoint>> {
    let mut tx = store.read().await?;
    let env_id = lookup::environment(&mut tx, env).await?;
    load_all(&mut tx, env_id).await
}

pub(crate) async fn get(store: &SqlStore, env: &str, domain: &str) -> StoreResult<Endpoint> {
    let mut tx = store.read().await?;
    let (env_id, _, normalized) = find(&mut tx, env, domain).await?;
    load_one(&mut tx, env_id, env, &normalized).await
}

pub(crate) async fn set_https_redirect(
    store: &SqlStore,
    env: &str,
    domain: &str,
    on: bool,
) -> StoreResult<Endpoint> {
    let mut w = store.write().await?;
    let (env_id, id, normalized) = find(w.conn(), env, domain).await?;
    sqlx::query("UPDATE endpoints SET https_redirect = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(id)
        .execute(w.conn())
        .await?;
    let updated = load_one(w.conn(), env_id, env, &normalized).await?;
    w.commit().await?;
    Ok(updated)
}

pub(crate) async fn delete(store: &SqlStore, env: &str, domain: &str) -> StoreResult<()> {
    let mut w = store.write().await?;
    let (_, id, _) = find(w.conn(), env, domain).await?;
    sqlx::query("DELETE FROM endpoints WHERE id = $1")
        .bind(id)
        .execute(w.conn())
        .await?;
    w.commit().await
}

pub(crate) async fn set_routes(
    store: &SqlStore,
    env: &str,
    domain: &str,
    routes: &[Route],
) -> StoreResult<Endpoint> {
    let mut paths = HashSet::new();
    for route in routes {
        check_route_path(&route.path).map_err(StoreError::Invalid)?;
        if !paths.insert(route.path.as_str()) {
            return Err(StoreError::AlreadyExists(format!(
                "route {:?} already exists on endpoint {domain:?}",
                route.path
            )));
        }
    }
    let mut w = store.write().await?;
    let (env_id, endpoint_id, normalized) = find(w.conn(), env, domain).await?;
    let mut targets = Vec::with_capacity(routes.len());
    for route in routes {
        let (stack, service) = (route.stack.as_str(), route.service.as_str());
        let (_, stack_id) = lookup::stack(w.conn(), env, stack).await?;
        targets.push(lookup::service_in(w.conn(), stack_id, env, stack, service).await?);
    }
    sqlx::query("DELETE FROM routes WHERE endpoint_id = $1")
        .bind(endpoint_id)
        .execute(w.conn())
        .await?;
    for (position, (route, service_id)) in routes.iter().zip(targets).enumerate() {
        sqlx::query(
            "INSERT INTO routes (endpoint_id, position, path, service_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(endpoint_id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(route.path.as_str())
        .bind(service_id)
        .execute(w.conn())
        .await
        .or_exists(|| {
            format!(
                "route {:?} already exists on endpoint {domain:?}",
                route.path
            )
        })?;
    }
    let updated = load_one(w.conn(), env_id, env, &normalized).await?;
    w.commit().await?;
    Ok(updated)
}
