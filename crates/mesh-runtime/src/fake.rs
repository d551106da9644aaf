//! [`FakeRuntime`]: an in-memory [`Runtime`] for the agent's unit tests. It keeps networks,
//! addresses and instances in memory with the same rules as the native runtime (ids are
//! unique, a network must exist first, addresses are never shared, a network in use cannot be
//! removed) and lets a test end an instance (`exit`) or make the next create fail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::hostnet::HostNet;
use crate::ipam::Ipam;
use crate::runtime::Runtime;
use crate::spec::{
    ExecOutput, ExitStatus, HostEntry, InstanceHandle, InstanceSpec, InstanceState, LogPaths,
    NetworkInfo, NetworkSpec, Status,
};
use crate::sweep::Leftover;

#[derive(Debug)]
struct Instance {
    spec: InstanceSpec,
    address: std::net::Ipv4Addr,
    status: Status,
}

#[derive(Debug, Default)]
struct State {
    networks: BTreeMap<String, (NetworkSpec, Ipam)>,
    instances: BTreeMap<String, Instance>,
    calls: Vec<String>,
    next_pid: u32,
    fail_next_create: Option<String>,
    exec_output: Option<ExecOutput>,
    host_networks: Vec<HostNet>,
    leftovers: Vec<Leftover>,
}

#[derive(Debug, Default, Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, as `<method> <argument>` lines.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Ends a running instance as if its process had exited with `status`.
    pub fn exit(&self, id: &str, status: ExitStatus) {
        if let Some(i) = self.lock().instances.get_mut(id) {
            i.status = Status::Exited(status);
        }
    }

    pub fn fail_next_create(&self, message: impl Into<String>) {
        self.lock().fail_next_create = Some(message.into());
    }

    /// What `exec` returns (default: exit code 0, no output).
    pub fn set_exec_output(&self, out: ExecOutput) {
        self.lock().exec_output = Some(out);
    }

    /// What `host_networks` returns: routes and addresses a test pretends the host has.
    pub fn set_host_networks(&self, nets: Vec<HostNet>) {
        self.lock().host_networks = nets;
    }

    /// What the next `sweep` returns as removed.
    pub fn set_leftovers(&self, leftovers: Vec<Leftover>) {
        self.lock().leftovers = leftovers;
    }

    fn logs(id: &str) -> LogPaths {
        LogPaths {
            stdout: PathBuf::from(format!("/fake/{id}/stdout.log")),
            stderr: PathBuf::from(format!("/fake/{id}/stderr.log")),
        }
    }

    fn call(st: &mut State, what: String) {
        st.calls.push(what);
    }
}

fn view(i: &Instance) -> InstanceState {
    InstanceState {
        id: i.spec.id.clone(),
        environment: i.spec.environment.clone(),
        hostname: i.spec.hostname.clone(),
        address: i.address,
        status: i.status.clone(),
        logs: FakeRuntime::logs(&i.spec.id),
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo> {
        let mut st = self.lock();
        let egress = if spec.egress { " egress" } else { "" };
        Self::call(
            &mut st,
            format!("ensure_network {}{egress}", spec.environment),
        );
        if let Some((existing, _)) = st.networks.get(&spec.environment)
            && existing.subnet != spec.subnet
        {
            return Err(Error::NetworkConflict {
                environment: spec.environment.clone(),
                reason: format!("it exists with subnet {}", existing.subnet),
            });
        }
        st.networks
            .entry(spec.environment.clone())
            .or_insert_with(|| (spec.clone(), Ipam::new(spec.subnet)));
        Ok(NetworkInfo {
            environment: spec.environment.clone(),
            bridge: format!("fake-{}", spec.environment),
            subnet: spec.subnet,
            gateway: spec.subnet.gateway(),
        })
    }

    async fn remove_network(&self, environment: &str) -> Result<()> {
        let mut st = self.lock();
        Self::call(&mut st, format!("remove_network {environment}"));
        if let Some((_, ipam)) = st.networks.get(environment)
            && !ipam.is_empty()
        {
            return Err(Error::NetworkInUse {
                environment: environment.into(),
                instances: ipam.len(),
            });
        }
        st.networks.remove(environment);
        Ok(())
    }

    async fn create(&self, spec: &InstanceSpec) -> Result<InstanceHandle> {
        spec.validate()?;
        let mut st = self.lock();
        Self::call(&mut st, format!("create {}", spec.id));
        if let Some(message) = st.fail_next_create.take() {
            return Err(Error::StartFailed {
                id: spec.id.clone(),
                message,
            });
        }
        if st.instances.contains_key(&spec.id) {
            return Err(Error::AlreadyExists(spec.id.clone()));
        }
        let (_, ipam) = st
            .networks
            .get_mut(&spec.environment)
            .ok_or_else(|| Error::NoNetwork(spec.environment.clone()))?;
        let address = match spec.address {
            Some(a) => ipam.reserve(a, &spec.id).map(|_| a),
            None => ipam.allocate(&spec.id),
        }
        .map_err(|e| Error::Address {
            environment: spec.environment.clone(),
            address: spec.address.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            reason: format!("{e:?}"),
        })?;
        st.next_pid += 1;
        let pid = 1000 + st.next_pid;
        st.instances.insert(
            spec.id.clone(),
            Instance {
                spec: spec.clone(),
                address,
                status: Status::Running { pid },
            },
        );
        Ok(InstanceHandle {
            id: spec.id.clone(),
            pid,
            address,
            logs: Self::logs(&spec.id),
        })
    }

    async fn state(&self, id: &str) -> Result<InstanceState> {
        let st = self.lock();
        st.instances
            .get(id)
            .map(view)
            .ok_or_else(|| Error::NotFound(id.into()))
    }

    async fn signal(&self, id: &str, signal: Signal) -> Result<()> {
        let mut st = self.lock();
        Self::call(&mut st, format!("signal {id} {}", signal.as_str()));
        let i = st
            .instances
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.into()))?;
        if !i.status.is_running() {
            return Err(Error::NotRunning(id.into()));
        }
        if matches!(signal, Signal::SIGKILL | Signal::SIGTERM) {
            i.status = Status::Exited(ExitStatus {
                code: Some(128 + signal as i32),
                signal: Some(signal as i32),
                oom_killed: false,
            });
        }
        Ok(())
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<ExitStatus> {
        match self.signal(id, Signal::SIGTERM).await {
            Ok(()) | Err(Error::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.wait(id).await
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus> {
        loop {
            if let Status::Exited(st) = self.state(id).await?.status {
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn exec(&self, id: &str, args: &[String]) -> Result<ExecOutput> {
        let mut st = self.lock();
        Self::call(&mut st, format!("exec {id} {}", args.join(" ")));
        match st.instances.get(id) {
            None => return Err(Error::NotFound(id.into())),
            Some(i) if !i.status.is_running() => return Err(Error::NotRunning(id.into())),
            Some(_) => {}
        }
        Ok(st.exec_output.clone().unwrap_or(ExecOutput {
            code: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }))
    }

    async fn update_hosts(&self, id: &str, hosts: &[HostEntry]) -> Result<()> {
        let mut st = self.lock();
        Self::call(&mut st, format!("update_hosts {id} {}", hosts.len()));
        let i = st
            .instances
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.into()))?;
        i.spec.hosts = hosts.to_vec();
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        Self::call(&mut st, format!("delete {id}"));
        let i = st
            .instances
            .remove(id)
            .ok_or_else(|| Error::NotFound(id.into()))?;
        if let Some((_, ipam)) = st.networks.get_mut(&i.spec.environment) {
            ipam.release(id);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<InstanceState>> {
        Ok(self.lock().instances.values().map(view).collect())
    }

    async fn host_networks(&self) -> Result<Vec<HostNet>> {
        Ok(self.lock().host_networks.clone())
    }

    async fn sweep(&self) -> Result<Vec<Leftover>> {
        let mut st = self.lock();
        Self::call(&mut st, "sweep".into());
        Ok(std::mem::take(&mut st.leftovers))
    }
}

#[cfg(test)]
mod tests;
