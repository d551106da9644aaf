//! The contract between the agent and whatever runs instances.
//!
//! Async (through `async-trait`, so the agent can hold an `Arc<dyn Runtime>` and swap in
//! [`crate::FakeRuntime`]): every operation runs external programs (`runc` is a Go binary,
//! ~10-50 ms per call) or waits on a clock (`stop`'s grace period, `wait`), and the agent runs
//! many of them concurrently on tokio next to its control-plane connection; blocking threads
//! for that would need a pool sized for the slowest case.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::hostnet::HostNet;
use crate::spec::{
    ExecOutput, ExitStatus, HostEntry, InstanceHandle, InstanceSpec, InstanceState, NetworkInfo,
    NetworkSpec,
};
use nix::sys::signal::Signal;

#[async_trait]
pub trait Runtime: Send + Sync {
    /// Creates the environment's bridge and isolation rules, or checks they are as asked.
    /// Idempotent; a different subnet for an existing network is an error.
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo>;

    /// Removes the environment's bridge and rules. Fails while instances still use it.
    async fn remove_network(&self, environment: &str) -> Result<()>;

    /// Creates and starts an instance; on failure, nothing of it is left behind.
    async fn create(&self, spec: &InstanceSpec) -> Result<InstanceHandle>;

    async fn state(&self, id: &str) -> Result<InstanceState>;

    /// Sends a signal to the instance's init process.
    async fn signal(&self, id: &str, signal: Signal) -> Result<()>;

    /// SIGTERM, up to `grace` for the instance to end, then SIGKILL. Returns how it ended;
    /// an instance that already ended returns its status.
    async fn stop(&self, id: &str, grace: Duration) -> Result<ExitStatus>;

    /// Waits for the instance to end (for as long as it takes; wrap in a timeout to bound it).
    async fn wait(&self, id: &str) -> Result<ExitStatus>;

    /// Runs `args` (exec form) inside the running instance as its user, capturing output.
    async fn exec(&self, id: &str, args: &[String]) -> Result<ExecOutput>;

    /// Replaces the peers in the instance's `/etc/hosts`; running processes see the change.
    async fn update_hosts(&self, id: &str, hosts: &[HostEntry]) -> Result<()>;

    /// Kills the instance if it still runs and removes everything it had: container, writable
    /// layer, mounts, network namespace and veth, cgroups, address, state directory.
    async fn delete(&self, id: &str) -> Result<()>;

    /// Every instance this runtime's state directory knows, running or ended: what an agent
    /// re-adopts after a restart.
    async fn list(&self) -> Result<Vec<InstanceState>>;

    /// The IPv4 routes and addresses the host already has (see [`crate::hostnet`]), so that a
    /// new environment's subnet avoids them ([`crate::pool::choose`]). None by default: a
    /// runtime that does not share the host's network has nothing to avoid.
    async fn host_networks(&self) -> Result<Vec<HostNet>> {
        Ok(Vec::new())
    }

    /// Removes what carries this runtime's names but none of its records owns: what a crashed
    /// or killed agent (or an earlier platform with the same prefix) left behind. Everything the
    /// records name stays, above all the running instances an agent adopts after a restart.
    /// Call it once at start, before creating anything. Returns what was removed.
    async fn sweep(&self) -> Result<Vec<crate::sweep::Leftover>> {
        Ok(Vec::new())
    }
}
