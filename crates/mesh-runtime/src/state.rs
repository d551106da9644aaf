//! The runtime's data directory, the one source of truth an agent restart starts from:
//!
//! ```text
//! <root>/runc/                          runc --root (container state)
//! <root>/networks/<environment>.json    NetworkRecord: spec, bridge, address allocations
//! <root>/instances/<id>/instance.json   InstanceRecord: the spec and what was derived from it
//!                       hosts resolv.conf hostname    bind-mounted read-only
//!                       stdout.log stderr.log         the container's stdio (appended)
//!                       layer/upper layer/work        the writable layer (thrown away)
//!                       bundle/config.json bundle/rootfs (the overlay mount point)
//!                       container.pid exit.json runc.log shim.log
//! ```

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::ipam::Ipam;
use crate::spec::{InstanceSpec, LogPaths, NetworkSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn runc_root(&self) -> PathBuf {
        self.root.join("runc")
    }

    pub fn networks(&self) -> PathBuf {
        self.root.join("networks")
    }

    pub fn network(&self, environment: &str) -> PathBuf {
        self.networks().join(format!("{environment}.json"))
    }

    pub fn instances(&self) -> PathBuf {
        self.root.join("instances")
    }

    pub fn instance(&self, id: &str) -> InstanceDir {
        InstanceDir(self.instances().join(id))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDir(pub PathBuf);

impl InstanceDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
    pub fn record(&self) -> PathBuf {
        self.join("instance.json")
    }
    pub fn hosts(&self) -> PathBuf {
        self.join("hosts")
    }
    pub fn resolv(&self) -> PathBuf {
        self.join("resolv.conf")
    }
    pub fn hostname(&self) -> PathBuf {
        self.join("hostname")
    }
    pub fn layer(&self) -> PathBuf {
        self.join("layer")
    }
    pub fn upper(&self) -> PathBuf {
        self.join("layer/upper")
    }
    pub fn work(&self) -> PathBuf {
        self.join("layer/work")
    }
    pub fn bundle(&self) -> PathBuf {
        self.join("bundle")
    }
    pub fn config(&self) -> PathBuf {
        self.join("bundle/config.json")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.join("bundle/rootfs")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.join("container.pid")
    }
    pub fn exit_file(&self) -> PathBuf {
        self.join("exit.json")
    }
    pub fn runc_log(&self) -> PathBuf {
        self.join("runc.log")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.join("shim.log")
    }
    pub fn logs(&self) -> LogPaths {
        LogPaths {
            stdout: self.join("stdout.log"),
            stderr: self.join("stderr.log"),
        }
    }
}

/// What `create` derived from a spec, kept so that `delete` (maybe by a later agent) undoes
/// exactly what was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub spec: InstanceSpec,
    pub address: Ipv4Addr,
    pub netns: String,
    pub host_veth: String,
    pub bridge: String,
    pub cgroups_path: String,
    /// The writable layer is a size-capped tmpfs mounted at `layer/`.
    pub tmpfs_layer: bool,
    pub created_at_ms: i64,
    /// The kernel's boot id at create: an instance from an earlier boot cannot be running,
    /// whatever runc's on-disk state says.
    #[serde(default)]
    pub boot_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub spec: NetworkSpec,
    pub bridge: String,
    pub ipam: Ipam,
}

/// Writes JSON to a temporary file and renames it over `path`, so a crash leaves the old or
/// the new record, never half of one.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(value).context(|| format!("encoding {}", path.display()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("renaming {} into place", tmp.display()))
}

/// `None` if the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("reading {}", path.display())),
    }
}

/// The names of the entries of a directory (none if it does not exist), sorted.
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(|| format!("listing {}", dir.display())),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.context(|| format!("listing {}", dir.display()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests;
