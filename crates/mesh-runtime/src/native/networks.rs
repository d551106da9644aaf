//! Environment networks: the bridge, the address pool and the shared nft table.

use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::network::{apply_nft, delete_link, ensure_bridge};
use crate::nft::{NftNetwork, render};
use crate::spec::{NetworkInfo, NetworkSpec, check_label};
use crate::state::{NetworkRecord, list_dir, read_json, write_json};

use super::Inner;

pub(super) async fn ensure(rt: &Inner, spec: &NetworkSpec) -> Result<NetworkInfo> {
    check_label("environment", &spec.environment)?;
    let _guard = rt.net_lock.lock().await;
    let path = rt.layout.network(&spec.environment);
    let bridge = rt.names.bridge(&spec.environment);
    let record = match read_json::<NetworkRecord>(&path)? {
        Some(r) if r.spec.subnet != spec.subnet => {
            return Err(Error::NetworkConflict {
                environment: spec.environment.clone(),
                reason: format!(
                    "it exists with subnet {}, not {}; remove it first",
                    r.spec.subnet, spec.subnet
                ),
            });
        }
        Some(mut r) => {
            r.spec = spec.clone();
            r
        }
        None => {
            for other in all(rt)? {
                if other.spec.subnet.overlaps(&spec.subnet) {
                    return Err(Error::NetworkConflict {
                        environment: spec.environment.clone(),
                        reason: format!(
                            "subnet {} overlaps {} of environment {:?}",
                            spec.subnet, other.spec.subnet, other.spec.environment
                        ),
                    });
                }
            }
            NetworkRecord {
                spec: spec.clone(),
                bridge: bridge.clone(),
                ipam: Ipam::new(spec.subnet),
            }
        }
    };
    ensure_bridge(rt.runner.as_ref(), &record.bridge, spec.subnet).await?;
    write_json(&path, &record)?;
    apply_rules(rt).await?;
    Ok(NetworkInfo {
        environment: spec.environment.clone(),
        bridge: record.bridge,
        subnet: spec.subnet,
        gateway: spec.subnet.gateway(),
    })
}

pub(super) async fn remove(rt: &Inner, environment: &str) -> Result<()> {
    check_label("environment", environment)?;
    let _guard = rt.net_lock.lock().await;
    let path = rt.layout.network(environment);
    let Some(record) = read_json::<NetworkRecord>(&path)? else {
        return Ok(());
    };
    if !record.ipam.is_empty() {
        return Err(Error::NetworkInUse {
            environment: environment.into(),
            instances: record.ipam.len(),
        });
    }
    delete_link(rt.runner.as_ref(), &record.bridge).await?;
    std::fs::remove_file(&path).map_err(|e| Error::Io {
        context: format!("removing {}", path.display()),
        source: e,
    })?;
    apply_rules(rt).await
}

/// Every network record, by environment name.
pub(super) fn all(rt: &Inner) -> Result<Vec<NetworkRecord>> {
    let mut out = Vec::new();
    for name in list_dir(&rt.layout.networks())? {
        if let Some(env) = name.strip_suffix(".json")
            && let Some(r) = read_json::<NetworkRecord>(&rt.layout.network(env))?
        {
            out.push(r);
        }
    }
    Ok(out)
}

/// Re-renders the table from the records; called with the network lock held.
pub(super) async fn apply_rules(rt: &Inner) -> Result<()> {
    let nets: Vec<NftNetwork> = all(rt)?
        .into_iter()
        .map(|r| NftNetwork {
            bridge: r.bridge,
            subnet: r.spec.subnet,
            egress: r.spec.egress,
            dns: r.spec.dns,
        })
        .collect();
    let text = render(rt.names.table(), &rt.names.bridge_glob(), &nets);
    apply_nft(rt.runner.as_ref(), &text).await
}

/// Takes an address for `id` (the asked one, or the next free one) in its environment.
pub(super) async fn claim_address(
    rt: &Inner,
    environment: &str,
    id: &str,
    asked: Option<std::net::Ipv4Addr>,
) -> Result<NetworkRecord> {
    let _guard = rt.net_lock.lock().await;
    let path = rt.layout.network(environment);
    let mut record =
        read_json::<NetworkRecord>(&path)?.ok_or_else(|| Error::NoNetwork(environment.into()))?;
    let result = match asked {
        Some(a) => record.ipam.reserve(a, id).map(|_| a),
        None => record.ipam.allocate(id),
    };
    if let Err(e) = result {
        use crate::ipam::IpamError;
        return Err(match e {
            IpamError::Exhausted => Error::AddressesExhausted {
                environment: environment.into(),
                subnet: record.spec.subnet.to_string(),
            },
            IpamError::OutsideSubnet => Error::Address {
                environment: environment.into(),
                address: asked.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                reason: format!("it is not an instance address of {}", record.spec.subnet),
            },
            IpamError::InUse { owner } => Error::Address {
                environment: environment.into(),
                address: asked.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                reason: format!("instance {owner:?} has it"),
            },
        });
    }
    write_json(&path, &record)?;
    Ok(record)
}

pub(super) async fn release_address(rt: &Inner, environment: &str, id: &str) -> Result<()> {
    let _guard = rt.net_lock.lock().await;
    let path = rt.layout.network(environment);
    if let Some(mut record) = read_json::<NetworkRecord>(&path)?
        && record.ipam.release(id).is_some()
    {
        write_json(&path, &record)?;
    }
    Ok(())
}
