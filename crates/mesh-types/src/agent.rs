//! What agents and the control plane say to each other, under `/v1/agent`.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::api::Instance;
use crate::desired::ImageRef;
use crate::size::SizeLimits;
use crate::{Name, UnixMs};

/// An agent announces its server when it starts, and again as a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterServer {
    pub name: Name,
    pub address: String,
    pub cpus: f64,
    pub memory_mb: u64,
    /// The mesh version the agent runs.
    #[serde(default)]
    pub version: Option<String>,
    /// Where the server's edge router takes plain HTTP (`ip:port`), if it runs one: a rack an
    /// environment is leaving forwards its hosts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
}

/// Every instance on one server, as observed now. Replaces the server's previous report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub server: Name,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Lines the platform writes about an instance (started, crashed, OOM-killed, ...).
    System,
}

/// One line of an instance's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: UnixMs,
    pub environment: Name,
    pub stack: Name,
    pub service: Name,
    pub instance: String,
    pub stream: LogStream,
    pub text: String,
    /// Byte position just past the line in its instance's output on this stream (so at least
    /// 1), increasing per instance and stream: the control plane drops lines at or below the
    /// last position it kept for that instance and stream, so an agent may resend after a
    /// restart without duplicating anything.
    pub offset: u64,
    /// The rack whose agent shipped it: set by the control plane from the agent's join token
    /// (whatever the agent sent), so `mesh logs` can say where each line came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Name>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    pub lines: Vec<LogLine>,
}

/// How the control plane answered a log batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAck {
    pub accepted: u64,
    pub duplicates: u64,
}

/// Work the control plane hands one server's agent, on its watch stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// A one-off instance of a stack's image with its config, run to its end.
    Run {
        id: String,
        server: Name,
        environment: Name,
        stack: Name,
        /// The instance's id, so its output can be followed while it runs.
        instance: String,
        image: ImageRef,
        command: String,
        env: BTreeMap<String, String>,
        limits: SizeLimits,
    },
    /// A command inside a running instance.
    Exec {
        id: String,
        server: Name,
        environment: Name,
        instance: String,
        command: Vec<String>,
    },
}

impl Task {
    pub fn id(&self) -> &str {
        match self {
            Task::Run { id, .. } | Task::Exec { id, .. } => id,
        }
    }

    pub fn server(&self) -> &Name {
        match self {
            Task::Run { server, .. } | Task::Exec { server, .. } => server,
        }
    }
}

/// How a task ended, as the agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The exit code; none if it could not run or ended without one.
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    /// Why it could not run, if it could not.
    #[serde(default)]
    pub error: Option<String>,
}

/// The id of a one-off instance (`mesh run`, a release command): `<stack>-<what>-x<hex>`, with
/// the first 8 hex digits of the task id. Agents never plan or reap such an instance; its task
/// removes it.
pub fn oneoff_instance_id(stack: &str, what: &str, task_id: &str) -> String {
    let short: String = stack.chars().take(40).collect();
    let hex: String = task_id.chars().take(8).collect();
    format!("{}-{what}-x{hex}", short.trim_end_matches('-'))
}

/// Whether an instance id is a one-off's (see [`oneoff_instance_id`]).
pub fn is_oneoff_instance(id: &str) -> bool {
    id.rsplit('-').next().is_some_and(|s| {
        s.starts_with('x') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// `GET /v1/agent/rack`: the join token's rack, as its agents need it: what runs its
/// instances and, for a Kubernetes rack, the cluster's kubeconfig. Secret (the kubeconfig).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRack {
    pub name: Name,
    pub runtime: crate::api::RackRuntime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

/// `PUT /v1/agent/kubeconfig`: the made cluster the control plane took for the rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTaken {
    pub rack: Name,
    /// The cluster's Kubernetes version.
    pub version: String,
}

impl std::fmt::Debug for AgentRack {
    // Keeps the cluster's credentials out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRack")
            .field("name", &self.name)
            .field("runtime", &self.runtime)
            .field(
                "kubeconfig",
                &self
                    .kubeconfig
                    .as_ref()
                    .map(|k| format!("{} bytes", k.len())),
            )
            .finish()
    }
}
