//! One /24 per environment on this server, from the agent's pool, remembered across restarts so
//! an environment keeps its subnet (and instances their addresses' neighbourhood).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_runtime::Ipv4Net;
use mesh_runtime::hostnet::HostNet;
use mesh_runtime::pool::{self, Choice, PoolError};

#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("cannot save the environments' subnets to {path}: {source}")]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Subnets {
    path: PathBuf,
    pool: Ipv4Net,
    assigned: BTreeMap<String, Ipv4Net>,
}

impl Subnets {
    /// `pool` must be a /16 to /23; each environment gets a /24 of it.
    pub fn open(dir: &Path, pool: Ipv4Net) -> std::io::Result<Self> {
        let path = dir.join("subnets.json");
        let assigned = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            pool,
            assigned,
        })
    }

    /// The environment's subnet, if it has one here.
    pub fn get(&self, env: &str) -> Option<Ipv4Net> {
        self.assigned.get(env).copied()
    }

    /// The environment's subnet: the one it has, or the lowest free /24 of the pool that the
    /// host does not already route or have an address in (`host`; see [`pool::choose`]). The
    /// choice says which /24s were passed over and why, for the log.
    pub fn get_or_assign(&mut self, env: &str, host: &[HostNet]) -> Result<Choice, SubnetError> {
        if let Some(n) = self.assigned.get(env) {
            return Ok(Choice {
                subnet: *n,
                skipped: Vec::new(),
            });
        }
        let choice = pool::choose(self.pool, &self.assigned, host)?;
        self.assigned.insert(env.to_string(), choice.subnet);
        if let Err(e) = self.save() {
            self.assigned.remove(env);
            return Err(SubnetError::Save {
                path: self.path.clone(),
                source: e,
            });
        }
        Ok(choice)
    }

    pub fn release(&mut self, env: &str) -> std::io::Result<()> {
        if self.assigned.remove(env).is_some() {
            self.save()?;
        }
        Ok(())
    }

    pub fn assigned(&self) -> impl Iterator<Item = &String> {
        self.assigned.keys()
    }

    fn save(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&self.assigned).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_runtime::hostnet::HostNetKind;
    use std::net::Ipv4Addr;

    #[test]
    fn subnets_are_distinct_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Ipv4Net::new(Ipv4Addr::new(10, 231, 0, 0), 16).unwrap();
        let mut s = Subnets::open(dir.path(), pool).unwrap();
        let a = s.get_or_assign("shop", &[]).unwrap().subnet;
        let b = s.get_or_assign("blog", &[]).unwrap().subnet;
        assert_ne!(a, b);
        assert_eq!(a.prefix(), 24);
        assert_eq!(s.get_or_assign("shop", &[]).unwrap().subnet, a);
        let mut again = Subnets::open(dir.path(), pool).unwrap();
        assert_eq!(again.get_or_assign("blog", &[]).unwrap().subnet, b);
        again.release("shop").unwrap();
        assert_eq!(
            again.get_or_assign("new", &[]).unwrap().subnet,
            a,
            "a released subnet is reused"
        );
    }

    #[test]
    fn a_subnet_the_host_uses_is_skipped_but_a_held_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Ipv4Net::new(Ipv4Addr::new(10, 214, 0, 0), 16).unwrap();
        let mut s = Subnets::open(dir.path(), pool).unwrap();
        let shop = s.get_or_assign("shop", &[]).unwrap().subnet;
        assert_eq!(shop.to_string(), "10.214.0.0/24");
        // A VPN comes up over the next two /24s.
        let vpn = HostNet {
            network: Ipv4Addr::new(10, 214, 0, 0),
            prefix: 23,
            dev: "tun0".into(),
            kind: HostNetKind::Route,
        };
        let blog = s.get_or_assign("blog", std::slice::from_ref(&vpn)).unwrap();
        assert_eq!(blog.subnet.to_string(), "10.214.2.0/24");
        assert_eq!(
            blog.skipped[0].to_string(),
            "10.214.1.0/24 (the host has route 10.214.0.0/23 dev tun0)"
        );
        // An environment keeps the subnet it has: moving it would break its instances.
        let again = s.get_or_assign("shop", &[vpn]).unwrap();
        assert_eq!(again.subnet, shop);
        assert!(again.skipped.is_empty());
    }

    #[test]
    fn a_full_pool_is_an_error_that_names_it_and_assigns_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Ipv4Net::new(Ipv4Addr::new(10, 214, 0, 0), 23).unwrap();
        let mut s = Subnets::open(dir.path(), pool).unwrap();
        s.get_or_assign("shop", &[]).unwrap();
        let docker = HostNet {
            network: Ipv4Addr::new(10, 214, 1, 1),
            prefix: 24,
            dev: "docker0".into(),
            kind: HostNetKind::Address,
        };
        let e = s.get_or_assign("blog", &[docker]).unwrap_err().to_string();
        assert!(e.contains("the subnet pool 10.214.0.0/23 is full"), "{e}");
        assert!(
            e.contains("(shop)") && e.contains("address 10.214.1.1/24 on docker0"),
            "{e}"
        );
        assert_eq!(s.get("blog"), None);
    }
}
