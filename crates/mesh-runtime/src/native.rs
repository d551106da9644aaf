//! [`NativeRuntime`]: the [`Runtime`] of a Linux server, driving `runc`, overlayfs, `ip` and
//! `nft` through the [`host`](crate::host) traits.
//!
//! Concurrency: calls for different instances run concurrently. Network records (bridge,
//! address allocations, the nft table) change under one async mutex; cgroup parents are
//! removed under a write lock that container starts hold for reading, so a parent is never
//! removed between runc creating it and runc creating the instance's cgroup inside it.
//! One runtime per data directory: two agents on one directory would race.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use tokio::sync::{Mutex, RwLock};

use crate::cgroup::CgroupMounts;
use crate::error::{Error, IoContext, Result};
use crate::host::{CommandRunner, RealRunner, RealSys, Sys};
use crate::names::Names;
use crate::runc::Runc;
use crate::runtime::Runtime;
use crate::shim::ShimCommand;
use crate::spec::{
    ExecOutput, ExitStatus, HostEntry, InstanceHandle, InstanceSpec, InstanceState, NetworkInfo,
    NetworkSpec,
};
use crate::state::{InstanceDir, InstanceRecord, Layout, read_json};

mod create;
mod lifecycle;
mod networks;
mod sweep;
mod teardown;

/// Where the instance's writable layer lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritableLayer {
    /// Directories in the data directory: no size cap beyond the disk's.
    #[default]
    Disk,
    /// A tmpfs of this size per instance: writes beyond it fail with ENOSPC, and its pages
    /// count against the instance's memory limit (tmpfs is charged to the writer's cgroup).
    Tmpfs { size_mb: u32 },
}

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The data directory (see [`crate::state`]); created if missing.
    pub root: PathBuf,
    /// Prefix of every interface and network namespace the runtime creates (1-5 lowercase
    /// letters or digits). Default `wm`.
    pub prefix: String,
    /// The runtime's nftables table (family `inet`). Default `widemesh`.
    pub nft_table: String,
    /// The parent cgroup of every instance, under each hierarchy. Default `widemesh`.
    pub cgroup_parent: String,
    /// The runc program; looked up in `PATH` unless a path. Default `runc`.
    pub runc: PathBuf,
    /// The shim to start instances with; `None` finds `mesh-runtime-shim` (see
    /// [`ShimCommand::locate`]).
    pub shim: Option<ShimCommand>,
    /// `RLIMIT_NOFILE` of instances, lowered to the agent's own hard limit if above it.
    pub nofile: u64,
    pub writable_layer: WritableLayer,
}

impl RuntimeOptions {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RuntimeOptions {
            root: root.into(),
            prefix: "wm".into(),
            nft_table: "widemesh".into(),
            cgroup_parent: "widemesh".into(),
            runc: "runc".into(),
            shim: None,
            nofile: 16_384,
            writable_layer: WritableLayer::Disk,
        }
    }
}

/// Cheap to clone: clones share state and locks.
#[derive(Debug, Clone)]
pub struct NativeRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: RuntimeOptions,
    names: Names,
    layout: Layout,
    runc: Runc,
    shim: ShimCommand,
    nofile: u64,
    /// The running kernel's version, for the seccomp profile.
    kernel: crate::oci::seccomp::KernelVersion,
    runner: Arc<dyn CommandRunner>,
    sys: Arc<dyn Sys>,
    net_lock: Mutex<()>,
    cgroup_lock: RwLock<()>,
}

impl NativeRuntime {
    /// The real runtime. Fails early if runc or the shim cannot be found.
    pub fn new(opts: RuntimeOptions) -> Result<Self> {
        if find_program(&opts.runc).is_none() {
            return Err(Error::MissingTool {
                program: opts.runc.display().to_string(),
            });
        }
        let shim = match &opts.shim {
            Some(s) => s.clone(),
            None => ShimCommand::locate()?,
        };
        Self::with_host(opts, shim, Arc::new(RealRunner), Arc::new(RealSys))
    }

    /// Over any [`CommandRunner`] and [`Sys`]: the fakes in unit tests, or a runner that
    /// runs everything in another network namespace ([`crate::host::InNetns`]).
    pub fn with_host(
        mut opts: RuntimeOptions,
        shim: ShimCommand,
        runner: Arc<dyn CommandRunner>,
        sys: Arc<dyn Sys>,
    ) -> Result<Self> {
        let names = Names::new(&opts.prefix, &opts.nft_table, &opts.cgroup_parent)?;
        std::fs::create_dir_all(&opts.root)
            .context(|| format!("creating data directory {}", opts.root.display()))?;
        opts.root = std::fs::canonicalize(&opts.root)
            .context(|| format!("resolving {}", opts.root.display()))?;
        let layout = Layout::new(&opts.root);
        for d in [layout.instances(), layout.networks(), layout.runc_root()] {
            std::fs::create_dir_all(&d).context(|| format!("creating {}", d.display()))?;
        }
        let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(_, hard)| hard)
            .unwrap_or(opts.nofile);
        let runc = Runc {
            program: opts.runc.clone(),
            root: layout.runc_root(),
        };
        let kernel = crate::oci::seccomp::KernelVersion::running()?;
        Ok(NativeRuntime {
            inner: Arc::new(Inner {
                nofile: opts.nofile.min(hard),
                kernel,
                opts,
                names,
                layout,
                runc,
                shim,
                runner,
                sys,
                net_lock: Mutex::new(()),
                cgroup_lock: RwLock::new(()),
            }),
        })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.inner.opts
    }

    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// The state directory of an instance (whether or not it exists).
    pub fn instance_dir(&self, id: &str) -> InstanceDir {
        self.inner.layout.instance(id)
    }

    /// The network namespace path of an instance, for running host tools inside it.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        PathBuf::from(crate::network::netns_path(&self.inner.names.netns(id)))
    }

    /// The directory of an instance's cgroup for `controller` (`memory`, `cpu`, `pids`...).
    pub fn cgroup_dir(&self, controller: &str, id: &str) -> Result<Option<PathBuf>> {
        Ok(self
            .inner
            .cgroups()?
            .dir(controller, &self.inner.names.cgroups_path(id)))
    }

    /// Removes everything this runtime made, found by record and by name: every instance
    /// (killed), every network, the nft table, the cgroup parents. For tests and resets;
    /// the agent never calls it in normal operation.
    pub async fn purge(&self) -> Result<()> {
        teardown::purge(&self.inner).await
    }
}

impl Inner {
    fn cgroups(&self) -> Result<CgroupMounts> {
        let text = self
            .sys
            .read_file(Path::new("/proc/self/mountinfo"))
            .context(|| "reading /proc/self/mountinfo".to_string())?;
        Ok(CgroupMounts::parse(&text))
    }

    /// The current boot's id; empty where the kernel does not say.
    fn boot_id(&self) -> String {
        self.sys
            .read_file(Path::new("/proc/sys/kernel/random/boot_id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    fn record(&self, id: &str) -> Result<InstanceRecord> {
        crate::spec::check_label("instance id", id)?;
        read_json(&self.layout.instance(id).record())?.ok_or_else(|| Error::NotFound(id.into()))
    }
}

fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[async_trait]
impl Runtime for NativeRuntime {
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo> {
        networks::ensure(&self.inner, spec).await
    }

    async fn remove_network(&self, environment: &str) -> Result<()> {
        networks::remove(&self.inner, environment).await
    }

    async fn create(&self, spec: &InstanceSpec) -> Result<InstanceHandle> {
        create::create(&self.inner, spec).await
    }

    async fn state(&self, id: &str) -> Result<InstanceState> {
        lifecycle::state(&self.inner, id).await
    }

    async fn signal(&self, id: &str, signal: Signal) -> Result<()> {
        lifecycle::signal(&self.inner, id, signal).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<ExitStatus> {
        lifecycle::stop(&self.inner, id, grace).await
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus> {
        lifecycle::wait(&self.inner, id).await
    }

    async fn exec(&self, id: &str, args: &[String]) -> Result<ExecOutput> {
        lifecycle::exec(&self.inner, id, args).await
    }

    async fn update_hosts(&self, id: &str, hosts: &[HostEntry]) -> Result<()> {
        lifecycle::update_hosts(&self.inner, id, hosts).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let record = self.inner.record(id)?;
        teardown::teardown(&self.inner, &record).await
    }

    async fn list(&self) -> Result<Vec<InstanceState>> {
        lifecycle::list(&self.inner).await
    }

    async fn host_networks(&self) -> Result<Vec<crate::hostnet::HostNet>> {
        crate::hostnet::read(self.inner.runner.as_ref()).await
    }

    async fn sweep(&self) -> Result<Vec<crate::sweep::Leftover>> {
        sweep::sweep(&self.inner).await
    }
}

#[cfg(test)]
mod tests;
