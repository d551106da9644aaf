//! The agent's mutable state, behind one lock: [`Agent::state`] is the only way in, and the only
//! place a poisoned lock is recovered. Hold the guard for a few map operations, never across an
//! `.await` (the agent's futures are spawned, so a guard kept across one would not compile).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, MutexGuard};

use mesh_runtime::HostEntry;
use mesh_types::UnixMs;
use tokio::sync::watch;

use super::{Agent, InFlight};
use crate::networks::Subnets;
use crate::supervise::Record;

pub(crate) struct State {
    /// The /24 of each environment, kept on disk.
    pub subnets: Subnets,
    /// What this agent knows of each instance it started or adopted, by id.
    pub records: HashMap<String, Record>,
    /// Environments whose network is set up.
    pub networks: BTreeSet<String>,
    /// Each environment's `/etc/hosts` entries, as last written into its instances.
    pub hosts: HashMap<String, Vec<HostEntry>>,
    /// Stops each environment's DNS responder.
    pub dns: HashMap<String, watch::Sender<bool>>,
    /// When each cron job (`<environment>/<hostname>`) is next due.
    pub next_runs: HashMap<String, UnixMs>,
    /// The output files to ship.
    pub log_sources: Vec<crate::logship::Source>,
    /// Requests the rack's router has in flight to an instance, when a router runs here.
    pub in_flight: Option<InFlight>,
    /// Environments a one-off run is using right now: their network stays even when the
    /// desired state this server last saw does not place them here (yet).
    pub pinned: HashMap<String, usize>,
    /// Instances being created right now (the runtime lists them before their record exists):
    /// a reconcile must not take a one-off among them for one an earlier agent left behind.
    pub creating: HashSet<String>,
}

impl State {
    pub fn new(subnets: Subnets) -> Self {
        State {
            subnets,
            records: HashMap::new(),
            networks: BTreeSet::new(),
            hosts: HashMap::new(),
            dns: HashMap::new(),
            next_runs: HashMap::new(),
            log_sources: Vec::new(),
            in_flight: None,
            pinned: HashMap::new(),
            creating: HashSet::new(),
        }
    }
}

impl Agent {
    /// The state, even if a panicking thread poisoned its lock: every update is whole, and a
    /// stuck agent is worse than a retried action.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Held while a one-off run uses an environment's network.
pub(crate) struct NetworkPin {
    agent: Arc<Agent>,
    env: String,
}

impl NetworkPin {
    pub fn new(agent: &Arc<Agent>, env: &str) -> Self {
        *agent.state().pinned.entry(env.to_string()).or_default() += 1;
        NetworkPin {
            agent: agent.clone(),
            env: env.to_string(),
        }
    }
}

impl Drop for NetworkPin {
    fn drop(&mut self) {
        let mut state = self.agent.state();
        if let Some(n) = state.pinned.get_mut(&self.env) {
            *n -= 1;
            if *n == 0 {
                state.pinned.remove(&self.env);
            }
        }
    }
}

/// An instance on the agent's `creating` list for as long as this lives.
pub(super) struct Creating<'a> {
    agent: &'a Agent,
    id: String,
}

impl<'a> Creating<'a> {
    pub fn new(agent: &'a Agent, id: &str) -> Self {
        agent.state().creating.insert(id.to_string());
        Self {
            agent,
            id: id.to_string(),
        }
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.agent.state().creating.remove(&self.id);
    }
}
