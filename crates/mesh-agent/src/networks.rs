//! One /24 per environment on this server, from the agent's pool, remembered across restarts so
//! an environment keeps its subnet (and instances their addresses' neighbourhood).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use mesh_runtime::Ipv4Net;

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

    /// The environment's subnet, allocating the lowest free one.
    pub fn get_or_assign(&mut self, env: &str) -> std::io::Result<Ipv4Net> {
        if let Some(n) = self.assigned.get(env) {
            return Ok(*n);
        }
        let base = u32::from(self.pool.network());
        let count = 1u32 << (24 - u32::from(self.pool.prefix()).min(24));
        for i in 0..count {
            let net =
                Ipv4Net::new(Ipv4Addr::from(base + (i << 8)), 24).map_err(std::io::Error::other)?;
            if !self.assigned.values().any(|n| n == &net) {
                self.assigned.insert(env.to_string(), net);
                self.save()?;
                return Ok(net);
            }
        }
        Err(std::io::Error::other(format!(
            "the subnet pool {}/{} is full",
            self.pool.network(),
            self.pool.prefix()
        )))
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

    #[test]
    fn subnets_are_distinct_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Ipv4Net::new(Ipv4Addr::new(10, 231, 0, 0), 16).unwrap();
        let mut s = Subnets::open(dir.path(), pool).unwrap();
        let a = s.get_or_assign("shop").unwrap();
        let b = s.get_or_assign("blog").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.prefix(), 24);
        assert_eq!(s.get_or_assign("shop").unwrap(), a);
        let mut again = Subnets::open(dir.path(), pool).unwrap();
        assert_eq!(again.get_or_assign("blog").unwrap(), b);
        again.release("shop").unwrap();
        assert_eq!(
            again.get_or_assign("new").unwrap(),
            a,
            "a released subnet is reused"
        );
    }
}
