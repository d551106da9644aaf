//! Address management for one environment's subnet on this server.
//!
//! Next-fit: allocation continues after the last address handed out and wraps around, so a
//! freed address is reused as late as possible (peers' caches and connections forget it
//! first). An address is never handed out while its owner holds it; allocating again for the
//! same owner returns its address, so a retried `create` does not leak one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::subnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    subnet: Ipv4Net,
    /// Index (see [`Ipv4Net::instance_address`]) where the next search starts.
    next: u32,
    /// address -> owning instance id.
    allocated: BTreeMap<Ipv4Addr, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamError {
    Exhausted,
    OutsideSubnet,
    InUse { owner: String },
}

impl Ipam {
    pub fn new(subnet: Ipv4Net) -> Self {
        Ipam {
            subnet,
            next: 0,
            allocated: BTreeMap::new(),
        }
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    pub fn len(&self) -> usize {
        self.allocated.len()
    }

    pub fn is_empty(&self) -> bool {
        self.allocated.is_empty()
    }

    pub fn owner(&self, addr: Ipv4Addr) -> Option<&str> {
        self.allocated.get(&addr).map(String::as_str)
    }

    pub fn address_of(&self, owner: &str) -> Option<Ipv4Addr> {
        self.allocated
            .iter()
            .find(|(_, o)| *o == owner)
            .map(|(a, _)| *a)
    }

    /// Every address handed out, with its owner.
    pub fn allocations(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> {
        self.allocated.iter().map(|(a, o)| (*a, o.as_str()))
    }

    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(a) = self.address_of(owner) {
            return Ok(a);
        }
        let cap = self.subnet.instance_capacity();
        for step in 0..cap {
            let i = (self.next + step) % cap;
            let addr = self
                .subnet
                .instance_address(i)
                .expect("index below capacity");
            if let std::collections::btree_map::Entry::Vacant(slot) = self.allocated.entry(addr) {
                slot.insert(owner.to_string());
                self.next = (i + 1) % cap;
                return Ok(addr);
            }
        }
        Err(IpamError::Exhausted)
    }

    /// Claims a specific address (one the control plane chose).
    pub fn reserve(&mut self, addr: Ipv4Addr, owner: &str) -> Result<(), IpamError> {
        if self.subnet.instance_index(addr).is_none() {
            return Err(IpamError::OutsideSubnet);
        }
        match self.allocated.get(&addr) {
            Some(o) if o == owner => Ok(()),
            Some(o) => Err(IpamError::InUse { owner: o.clone() }),
            None => {
                if let Some(old) = self.address_of(owner) {
                    self.allocated.remove(&old);
                }
                self.allocated.insert(addr, owner.to_string());
                Ok(())
            }
        }
    }

    /// Frees whatever `owner` holds; returns it.
    pub fn release(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let addr = self.address_of(owner)?;
        self.allocated.remove(&addr);
        Some(addr)
    }
}

#[cfg(test)]
mod tests;
