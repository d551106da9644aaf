//! Peers by name: what each environment's `/etc/hosts` lists and what its DNS answers.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use mesh_runtime::{HostEntry, InstanceState};

use super::{is_oneoff, is_run};
use crate::supervise::Record;

/// `<stack>-<service>` names, per environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    /// What DNS answers: every name of a running service, with the addresses of its healthy
    /// instances (none while none is healthy).
    pub dns: HashMap<String, BTreeMap<String, Vec<Ipv4Addr>>>,
    /// What `/etc/hosts` lists: each name once, at the first running instance's address.
    pub hosts: HashMap<String, Vec<HostEntry>>,
}

/// The names of the running long-lived instances in `listed` (cron runs and one-offs have none);
/// `records` says which are healthy.
pub fn names(listed: &[InstanceState], records: &HashMap<String, Record>) -> Names {
    let mut out = Names::default();
    for inst in listed
        .iter()
        .filter(|i| i.status.is_running() && !is_run(&i.id) && !is_oneoff(&i.id))
    {
        let healthy = records.get(&inst.id).is_some_and(|r| r.healthy);
        let e = out.hosts.entry(inst.environment.clone()).or_default();
        if !e.iter().any(|h| h.hostname == inst.hostname) {
            e.push(HostEntry::new(inst.hostname.clone(), inst.address));
        }
        let addrs = out
            .dns
            .entry(inst.environment.clone())
            .or_default()
            .entry(inst.hostname.clone())
            .or_default();
        if healthy {
            addrs.push(inst.address);
        }
    }
    out
}
