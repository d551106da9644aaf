//! Providers, racks, servers, API tokens and the audit log.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Domain, Name, UnixMs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// This machine.
    Local,
    /// Servers you already own, reached over SSH.
    Ssh,
    /// Amazon EC2: servers made with the AWS API.
    Aws,
    /// Hetzner Cloud: servers made with its HTTP API.
    Hetzner,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Ssh => "ssh",
            ProviderKind::Aws => "aws",
            ProviderKind::Hetzner => "hetzner",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(ProviderKind::Local),
            "ssh" => Ok(ProviderKind::Ssh),
            "aws" => Ok(ProviderKind::Aws),
            "hetzner" => Ok(ProviderKind::Hetzner),
            other => Err(format!(
                "provider kind {other:?} is not supported; use local, ssh, aws or hetzner"
            )),
        }
    }
}

/// A provider as the API shows it: secret values never leave the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub name: Name,
    pub kind: ProviderKind,
    /// Names of the secrets stored (encrypted) for this provider.
    pub secret_keys: Vec<String>,
    pub created_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateProvider {
    pub name: Name,
    pub kind: ProviderKind,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RackState {
    Ready,
    Upgrading,
    Resizing,
}

/// What runs a rack's instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RackRuntime {
    /// One server; the agent runs instances with runc.
    #[default]
    Native,
    /// An existing Kubernetes cluster; the agent reconciles into its objects.
    Kubernetes,
}

impl RackRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            RackRuntime::Native => "native",
            RackRuntime::Kubernetes => "kubernetes",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(RackRuntime::Native),
            "kubernetes" => Ok(RackRuntime::Kubernetes),
            other => Err(format!(
                "runtime {other:?} is unknown; use native (runc on one server) or kubernetes (an existing cluster)"
            )),
        }
    }
}

impl fmt::Display for RackRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rack {
    pub name: Name,
    pub provider: Name,
    pub region: Name,
    /// What runs its instances (`native` when left out, as racks made before runtimes).
    #[serde(default)]
    pub runtime: RackRuntime,
    /// Server size, in the provider's own words (`local` for this machine).
    pub size: String,
    /// Base domain of platform aliases: an environment answers on `<env>.<domain>`.
    pub domain: Domain,
    /// The public address of the rack's edge router: the target of custom domains' DNS records.
    pub address: String,
    pub state: RackState,
    pub created_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRack {
    pub name: Name,
    pub provider: Name,
    pub region: Name,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub domain: Option<Domain>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub runtime: Option<RackRuntime>,
    /// The cluster of a Kubernetes rack (its kubeconfig's text). Secret: sealed at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// How many servers the provider makes: 1 for a native rack; a Kubernetes rack's cluster
    /// of N (the first runs its server). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<u32>,
}

/// A new rack and the token its agents join with; the token is shown only once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedRack {
    pub rack: Rack,
    pub join_token: String,
    /// The servers the provider made for the rack, in order (none when its agents are started
    /// by hand).
    #[serde(default)]
    pub servers: Vec<CreatedServer>,
}

/// A server a rack's provider made (`GET /v1/racks/{rack}/made-servers`, `mesh rack show`), and
/// how far it is: its agent joined (a native rack) or its node (a Kubernetes rack's cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeServer {
    pub name: String,
    /// Where the provider says it is.
    pub address: String,
    pub state: MadeServerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MadeServerState {
    /// Made; its agent has not joined yet (or, a cluster's server, it is no node of the
    /// cluster yet, or the cluster has not been handed over).
    Joining,
    /// Its agent is ready, or its node is Ready.
    Ready,
    /// Its node is not Ready.
    NotReady,
    /// Its agent sends no heartbeat.
    Lost,
    /// Its cluster does not answer.
    Unknown,
}

impl MadeServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            MadeServerState::Joining => "joining",
            MadeServerState::Ready => "ready",
            MadeServerState::NotReady => "not_ready",
            MadeServerState::Lost => "lost",
            MadeServerState::Unknown => "unknown",
        }
    }
}

/// A server made for a new rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedServer {
    pub name: String,
    /// Where the provider says it is.
    pub address: String,
}

/// `mesh rack resize`: replace the rack's server with one of `size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResizeRack {
    pub size: String,
    #[serde(default, flatten)]
    pub replace: ReplaceOptions,
}

/// `mesh rack upgrade`: replace the rack's server with one running mesh `version` (the control
/// plane's, which is the only one it installs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeRack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, flatten)]
    pub replace: ReplaceOptions,
}

/// How a server replacement goes: how long the old server's router forwards to the new one
/// (while DNS caches still send visitors to its address), and how long the new server may take
/// to run the rack's instances healthy before the replacement is undone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_grace_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// Where a server replacement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplacementPhase {
    /// The provider makes the new server and starts its agent.
    Making,
    /// The new server's agent starts the rack's instances; the old server serves.
    Starting,
    /// The rack's address is the new server's; the old server's router forwards to it for the
    /// drain grace.
    Forwarding,
    /// The old server is being deleted.
    Removing,
    /// The new server never became healthy: it is being deleted; the old one serves on.
    Undoing,
}

impl ReplacementPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplacementPhase::Making => "making",
            ReplacementPhase::Starting => "starting",
            ReplacementPhase::Forwarding => "forwarding",
            ReplacementPhase::Removing => "removing",
            ReplacementPhase::Undoing => "undoing",
        }
    }
}

/// A rack's server being replaced by a new one (`mesh rack upgrade` / `mesh rack resize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    pub rack: Name,
    /// The server being replaced.
    pub old_server: Name,
    /// The server replacing it.
    pub new_server: Name,
    /// The new server's size (the rack's size once done).
    pub size: String,
    /// The mesh version the new server runs.
    pub version: String,
    pub phase: ReplacementPhase,
    pub since: UnixMs,
    /// When the current phase began.
    pub phase_since: UnixMs,
    pub drain_grace_ms: UnixMs,
    /// How long the new server may take to run the rack's instances healthy.
    pub timeout_ms: UnixMs,
    /// What the replacement waits for, or why it is being undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Ready,
    Draining,
    /// No heartbeat for longer than the control plane's `--server-lost-after`: its instances
    /// show as `unknown` and one-off work goes elsewhere; its next heartbeat makes it ready.
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub name: Name,
    pub rack: Name,
    pub address: String,
    pub cpus: f64,
    pub memory_mb: u64,
    pub state: ServerState,
    /// The last registration or status report of its agent.
    pub last_heartbeat: Option<UnixMs>,
    pub created_at: UnixMs,
    /// The mesh version its agent runs, as it registered; none for agents older than that.
    #[serde(default)]
    pub version: Option<String>,
    /// How many instances its agent last reported.
    #[serde(default)]
    pub instances: u64,
    /// Where its edge router takes plain HTTP (`ip:port`), as it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Deploys, config (secret values included), services, endpoints, certificates, logs and
    /// `run`/`exec` in the environments the token names; nothing of the platform.
    Developer,
    /// Reads the environments the token names: no config values, no changes, no `run`/`exec`.
    Viewer,
    /// A rack's agents: the agent gateway of that rack only.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "developer" => Ok(Role::Developer),
            "viewer" => Ok(Role::Viewer),
            "agent" => Ok(Role::Agent),
            _ => Err(format!(
                "role {s:?} is unknown; use admin, developer or viewer"
            )),
        }
    }
}

/// The longest a token may be made to last: ten years.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 366 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub rack: Option<Name>,
    /// The environments a developer or viewer token reaches (empty for admin and agent).
    #[serde(default)]
    pub environments: Vec<Name>,
    /// When the token stops working; none: never.
    #[serde(default)]
    pub expires_at: Option<UnixMs>,
    pub created_at: UnixMs,
    pub last_used_at: Option<UnixMs>,
}

/// `POST /v1/tokens`. The role must be said: an admin token is made only on request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateToken {
    pub name: Name,
    /// admin, developer or viewer; required.
    #[serde(default)]
    pub role: Option<Role>,
    /// The environments a developer or viewer token reaches; at least one, and none for admin.
    #[serde(default)]
    pub environments: Vec<Name>,
    /// Seconds from now until the token stops working (1 to ten years); none: never.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A new token; the secret is shown only once and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: Token,
    pub secret: String,
}

/// Who the presented token belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub token: String,
    pub role: Role,
    #[serde(default)]
    pub environments: Vec<Name>,
    #[serde(default)]
    pub expires_at: Option<UnixMs>,
    pub server_version: String,
}

/// One entry of the audit log: who changed what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub at: UnixMs,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}
