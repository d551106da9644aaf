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
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Ssh => "ssh",
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
            other => Err(format!(
                "provider kind {other:?} is not supported; use local or ssh"
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rack {
    pub name: Name,
    pub provider: Name,
    pub region: Name,
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
}

/// A new rack and the token its agents join with; the token is shown only once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedRack {
    pub rack: Rack,
    pub join_token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResizeRack {
    pub size: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Ready,
    Draining,
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
    pub last_heartbeat: Option<UnixMs>,
    pub created_at: UnixMs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// A rack's agents: the agent gateway of that rack only.
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub rack: Option<Name>,
    pub created_at: UnixMs,
    pub last_used_at: Option<UnixMs>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateToken {
    pub name: Name,
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
