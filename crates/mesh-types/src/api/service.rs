//! Services and their instances.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{InstanceSize, Name, Schedule, UnixMs, Version};

/// What a service is, derived from its definition: a schedule makes it a cron job, a route on an
/// endpoint makes it a web service, anything else is a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Web,
    Worker,
    Cron,
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::Web => "web",
            ServiceKind::Worker => "worker",
            ServiceKind::Cron => "cron",
        })
    }
}

/// How the agent decides an instance is healthy: a TCP connect to the port, or an HTTP GET of
/// `http_path` answering 2xx/3xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(default)]
    pub http_path: Option<String>,
    /// Seconds a new instance gets to become healthy.
    pub grace_s: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            http_path: None,
            grace_s: 30,
        }
    }
}

/// Desired, running and healthy instance counts, as the agents last reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub environment: Name,
    pub stack: Name,
    pub name: Name,
    pub kind: ServiceKind,
    /// Run through `/bin/sh -c`; none runs the image's default command.
    pub command: Option<String>,
    pub schedule: Option<Schedule>,
    /// The port web traffic reaches; `PORT` in the instance's environment.
    pub port: u16,
    pub instances: u32,
    pub size: InstanceSize,
    pub health: HealthCheck,
    /// `<stack>-<service>`, resolvable inside the environment.
    pub hostname: String,
    pub status: ServiceStatus,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// The port a service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 5000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateService {
    pub name: Name,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub instances: Option<u32>,
    #[serde(default)]
    pub size: Option<InstanceSize>,
    #[serde(default)]
    pub health_path: Option<String>,
}

/// A partial update: absent fields are left as they are; an empty `command`, `schedule` or
/// `health_path` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateService {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScaleService {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<InstanceSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Starting,
    Running,
    Healthy,
    Crashed,
    BackingOff,
    Stopped,
    OomKilled,
    /// Its server is lost (no heartbeat): whether it still runs is not known.
    Unknown,
}

/// One running copy of a service, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub environment: Name,
    pub stack: Name,
    pub service: Name,
    pub deployment: Option<Version>,
    pub server: Option<Name>,
    /// The rack of its server, filled in by the control plane when it lists instances (agents
    /// do not send it).
    #[serde(default)]
    pub rack: Option<Name>,
    pub state: InstanceState,
    pub address: Option<String>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub started_at: Option<UnixMs>,
    pub updated_at: UnixMs,
}

/// `mesh run -- CMD`: a one-off instance of the stack with its config (and a service's, if
/// named), on the environment's first healthy rack unless `rack` names one of its racks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub command: String,
    #[serde(default)]
    pub service: Option<Name>,
    #[serde(default)]
    pub size: Option<InstanceSize>,
    #[serde(default)]
    pub rack: Option<Name>,
}

/// One line of a run's answer stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    Started {
        instance: String,
    },
    Output {
        line: crate::agent::LogLine,
    },
    Exit {
        code: Option<i32>,
        error: Option<String>,
    },
}

/// `mesh exec INSTANCE -- CMD`: a command inside a running instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub command: Vec<String>,
}
