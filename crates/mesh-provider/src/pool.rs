//! A pool of servers the user already has: which one is free, which host keys were seen, and
//! the state file that keeps both across control plane restarts. The decisions are pure; the
//! file is read and written whole, atomically (temporary file, fsync, rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bootstrap::NetPlan;
use crate::{MadeServer, ProviderError, Result};

/// One server of the pool, as the provider was given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolServer {
    /// `host:port` of its SSH server.
    pub address: String,
    /// Instance networking for its agent, when servers share a kernel or a disk.
    pub net: Option<NetPlan>,
}

impl PoolServer {
    /// The host without the port.
    pub fn host(&self) -> &str {
        host_of(&self.address)
    }
}

/// `host:port` → `host` (IPv6 in brackets loses them).
pub fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => h,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Parses `HOST[:PORT][,net-prefix=P,subnet-pool=CIDR]` (port 22 by default).
pub fn parse_server(spec: &str) -> Result<PoolServer> {
    let bad = |why: &str| {
        ProviderError::Invalid(format!(
            "pool server {spec:?}: {why} (expected HOST[:PORT][,net-prefix=P,subnet-pool=CIDR])"
        ))
    };
    let mut parts = spec.split(',');
    let addr = parts.next().unwrap_or("").trim();
    if addr.is_empty()
        || !addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(bad("the address must be a host name or IP address"));
    }
    let port_ok = |p: &str| matches!(p.parse::<u16>(), Ok(n) if n > 0);
    let address = if let Some(rest) = addr.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, "")) => format!("{addr}:22"),
            Some((_, p)) if p.strip_prefix(':').is_some_and(port_ok) => addr.to_string(),
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        }
    } else {
        match addr.matches(':').count() {
            0 => format!("{addr}:22"),
            1 if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && port_ok(p)) =>
            {
                addr.to_string()
            }
            1 => return Err(bad("the port must be a number from 1 to 65535")),
            _ => format!("[{addr}]:22"),
        }
    };
    let (mut prefix, mut pool) = (None, None);
    for opt in parts {
        match opt.trim().split_once('=') {
            Some(("net-prefix", v))
                if (1..=5).contains(&v.len())
                    && v.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
            {
                prefix = Some(v.to_string())
            }
            Some(("subnet-pool", v))
                if v.ends_with("/16")
                    && v.chars().all(|c| c.is_ascii_digit() || "./".contains(c)) =>
            {
                pool = Some(v.to_string())
            }
            _ => {
                return Err(bad(&format!(
                    "unknown or invalid option {opt:?}: net-prefix is 1-5 lowercase letters or digits, subnet-pool a /16"
                )));
            }
        }
    }
    let net = match (prefix, pool) {
        (Some(net_prefix), Some(subnet_pool)) => Some(NetPlan {
            net_prefix,
            subnet_pool,
        }),
        (None, None) => None,
        _ => return Err(bad("give net-prefix and subnet-pool together")),
    };
    Ok(PoolServer { address, net })
}

/// What the driver remembers: the servers it made (by pool address) and the host keys it has
/// seen (trust on first use).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolState {
    #[serde(default)]
    pub made: BTreeMap<String, MadeServer>,
    /// Pool address → the host key in OpenSSH form (`ssh-ed25519 AAAA...`).
    #[serde(default)]
    pub host_keys: BTreeMap<String, String>,
}

/// The first free pool server for a new server `name` of `rack`.
pub fn pick_free<'a>(
    servers: &'a [PoolServer],
    state: &PoolState,
    rack: &str,
    name: &str,
) -> Result<&'a PoolServer> {
    if let Some(m) = state.made.values().find(|m| m.name == name) {
        return Err(ProviderError::Invalid(format!(
            "server {name:?} already exists on {} (rack {}): delete it first or choose another name",
            m.address, m.rack
        )));
    }
    servers
        .iter()
        .find(|s| !state.made.contains_key(&s.address))
        .ok_or_else(|| {
            let used: Vec<String> = state
                .made
                .values()
                .map(|m| format!("{} ({}/{})", m.address, m.rack, m.name))
                .collect();
            ProviderError::Exhausted(format!(
                "the pool has no free server for {rack}/{name}: all {} are in use: {}; add a server to the provider or delete a server",
                servers.len(),
                used.join(", ")
            ))
        })
}

/// The made server with this name.
pub fn find_made<'a>(state: &'a PoolState, name: &str) -> Result<&'a MadeServer> {
    state
        .made
        .values()
        .find(|m| m.name == name)
        .ok_or_else(|| ProviderError::NotFound(name.to_string()))
}

/// What to do with the host key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key seen before.
    Known,
    /// First contact: trust it and remember it.
    New,
    /// Not the key seen before: refuse.
    Changed { expected: String },
}

pub fn check_host_key(state: &PoolState, address: &str, presented: &str) -> HostKeyCheck {
    match state.host_keys.get(address) {
        None => HostKeyCheck::New,
        Some(k) if k == presented => HostKeyCheck::Known,
        Some(k) => HostKeyCheck::Changed {
            expected: k.clone(),
        },
    }
}

/// The pool's state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    pub path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn err(&self, source: std::io::Error) -> ProviderError {
        ProviderError::State {
            path: self.path.clone(),
            source,
        }
    }

    /// The state, or an empty one when the file does not exist yet.
    pub fn load(&self) -> Result<PoolState> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| self.err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PoolState::default()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Writes the whole state: a crash leaves the old file or the new one, never half.
    pub fn save(&self, state: &PoolState) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(state).expect("the pool state serializes");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.err(e))?;
        f.write_all(&bytes).map_err(|e| self.err(e))?;
        f.sync_all().map_err(|e| self.err(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e))
    }
}

/// The lock of the pool state in `path`, one per file in this process: every change of the
/// pool (pick a server, record it, free it) holds it, so drivers made for concurrent requests
/// on one provider never pick the same server or lose each other's writes.
pub fn lock_for(path: &Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::LazyLock<
        std::sync::Mutex<BTreeMap<PathBuf, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::LazyLock::new(Default::default);
    LOCKS
        .lock()
        .expect("pool locks")
        .entry(path.to_path_buf())
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_on_one_state_file_share_its_lock() {
        let a = lock_for(Path::new("/tmp/wm-pool-a/state.json"));
        let again = lock_for(Path::new("/tmp/wm-pool-a/state.json"));
        let b = lock_for(Path::new("/tmp/wm-pool-b/state.json"));
        assert!(std::sync::Arc::ptr_eq(&a, &again));
        assert!(!std::sync::Arc::ptr_eq(&a, &b));
    }

    fn made(name: &str, address: &str) -> MadeServer {
        MadeServer {
            name: name.into(),
            rack: "east".into(),
            address: address.into(),
            host: host_of(address).into(),
            dir: format!("/var/lib/widemesh/east/{name}"),
            net: None,
        }
    }

    #[test]
    fn pool_servers_parse_with_a_default_port_and_optional_networking() {
        let s = parse_server("10.198.0.2").unwrap();
        assert_eq!(s.address, "10.198.0.2:22");
        assert_eq!(s.host(), "10.198.0.2");
        assert_eq!(s.net, None);
        let s =
            parse_server("box.example.com:2222,net-prefix=pw,subnet-pool=10.237.0.0/16").unwrap();
        assert_eq!(s.address, "box.example.com:2222");
        assert_eq!(s.host(), "box.example.com");
        assert_eq!(s.net.unwrap().net_prefix, "pw");
        assert_eq!(parse_server("[::1]:22").unwrap().host(), "::1");
        for bad in [
            "",
            "a b",
            "h:x",
            "h:0",
            "h;rm -rf /",
            "h,net-prefix=pw",
            "h,net-prefix=TOOLONG,subnet-pool=10.0.0.0/16",
            "h,colour=blue",
        ] {
            let e = parse_server(bad).unwrap_err().to_string();
            assert!(e.contains("HOST[:PORT]"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_free_server_is_the_first_one_not_made() {
        let servers = vec![
            parse_server("10.0.0.2").unwrap(),
            parse_server("10.0.0.3").unwrap(),
        ];
        let mut state = PoolState::default();
        assert_eq!(
            pick_free(&servers, &state, "east", "a").unwrap().address,
            "10.0.0.2:22"
        );
        state
            .made
            .insert("10.0.0.2:22".into(), made("a", "10.0.0.2:22"));
        assert_eq!(
            pick_free(&servers, &state, "east", "b").unwrap().address,
            "10.0.0.3:22"
        );
        let e = pick_free(&servers, &state, "east", "a").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        state
            .made
            .insert("10.0.0.3:22".into(), made("b", "10.0.0.3:22"));
        let e = pick_free(&servers, &state, "east", "c").unwrap_err();
        assert!(matches!(e, ProviderError::Exhausted(_)));
        assert_eq!(
            e.to_string(),
            "the pool has no free server for east/c: all 2 are in use: 10.0.0.2:22 (east/a), 10.0.0.3:22 (east/b); add a server to the provider or delete a server"
        );
        assert_eq!(find_made(&state, "b").unwrap().address, "10.0.0.3:22");
        assert!(matches!(
            find_made(&state, "z"),
            Err(ProviderError::NotFound(_))
        ));
    }

    #[test]
    fn host_keys_are_trusted_on_first_use_and_a_change_is_refused() {
        let mut state = PoolState::default();
        assert_eq!(
            check_host_key(&state, "h:22", "ssh-ed25519 A"),
            HostKeyCheck::New
        );
        state
            .host_keys
            .insert("h:22".into(), "ssh-ed25519 A".into());
        assert_eq!(
            check_host_key(&state, "h:22", "ssh-ed25519 A"),
            HostKeyCheck::Known
        );
        assert_eq!(
            check_host_key(&state, "h:22", "ssh-ed25519 B"),
            HostKeyCheck::Changed {
                expected: "ssh-ed25519 A".into()
            }
        );
    }

    #[test]
    fn the_state_file_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("p/pool.json"));
        assert_eq!(file.load().unwrap(), PoolState::default());
        let mut state = PoolState::default();
        state.made.insert("h:22".into(), made("a", "h:22"));
        state
            .host_keys
            .insert("h:22".into(), "ssh-ed25519 A".into());
        file.save(&state).unwrap();
        assert_eq!(StateFile::new(&file.path).load().unwrap(), state);
        std::fs::write(&file.path, b"{not json").unwrap();
        assert!(file.load().unwrap_err().to_string().contains("pool.json"));
    }
}
