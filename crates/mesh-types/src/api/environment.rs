//! Environments and stacks.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Endpoint, Service};
use crate::{Name, UnixMs, Version};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub name: Name,
    /// The racks the environment is placed on, in order: the last one is the newest.
    pub racks: Vec<Name>,
    /// Racks it is leaving (`mesh env update --rack` without them): each keeps serving until
    /// the remaining racks are healthy, then forwards the environment's hosts to them for its
    /// drain grace, then stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaving: Vec<LeavingRack>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// A rack an environment is leaving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeavingRack {
    pub rack: Name,
    /// When it was taken out of the environment's racks.
    pub since: UnixMs,
    /// How long its router forwards the environment's hosts once the remaining racks are
    /// healthy, for DNS caches that still point at it.
    pub drain_grace_ms: UnixMs,
    /// When the remaining racks were first all healthy: forwarding started.
    #[serde(default)]
    pub forwarding_since: Option<UnixMs>,
}

impl LeavingRack {
    /// When its forwarding ends and its instances stop, once forwarding started.
    pub fn until(&self) -> Option<UnixMs> {
        self.forwarding_since
            .map(|t| t.saturating_add(self.drain_grace_ms))
    }
}

/// Where an environment stands on one rack, as `mesh env show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RackPlacement {
    pub rack: Name,
    pub state: PlacementState,
    /// Why it is not healthy, or until when it forwards.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// For a rack that forwards: when it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<UnixMs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementState {
    /// Every service runs its instance count healthy there.
    Healthy,
    /// Not yet.
    Starting,
    /// Its server is lost.
    Lost,
    /// Leaving, still serving: the remaining racks are not all healthy yet.
    Leaving,
    /// Leaving: its router forwards the environment's hosts to the remaining racks until the
    /// drain grace ends.
    Forwarding,
}

impl PlacementState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementState::Healthy => "healthy",
            PlacementState::Starting => "starting",
            PlacementState::Lost => "lost",
            PlacementState::Leaving => "leaving",
            PlacementState::Forwarding => "forwarding",
        }
    }
}

/// One environment with what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDetails {
    #[serde(flatten)]
    pub environment: Environment,
    pub stacks: Vec<Stack>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoint>,
    /// Where it stands on each of its racks, then on each rack it is leaving.
    #[serde(default)]
    pub placement: Vec<RackPlacement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateEnvironment {
    pub name: Name,
    /// Empty: the platform's default rack.
    #[serde(default)]
    pub racks: Vec<Name>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateEnvironment {
    pub racks: Vec<Name>,
    /// For racks taken out: how long their routers forward to the remaining racks once those
    /// are healthy, in seconds (default [`DEFAULT_DRAIN_GRACE_S`], at most
    /// [`MAX_DRAIN_GRACE_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_grace_s: Option<u64>,
}

/// Five minutes: long enough for most DNS caches.
pub const DEFAULT_DRAIN_GRACE_S: u64 = 300;
/// One day.
pub const MAX_DRAIN_GRACE_S: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Formula {
    #[default]
    Buildpack,
    Dockerfile,
}

impl Formula {
    pub fn as_str(self) -> &'static str {
        match self {
            Formula::Buildpack => "buildpack",
            Formula::Dockerfile => "dockerfile",
        }
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Formula {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "buildpack" => Ok(Formula::Buildpack),
            "dockerfile" => Ok(Formula::Dockerfile),
            other => Err(format!(
                "formula {other:?} is unknown; use buildpack or dockerfile"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub environment: Name,
    pub name: Name,
    pub formula: Formula,
    /// Runs in a one-off instance on every deployment before the rollout.
    pub release_command: Option<String>,
    /// The buildpack builder image, recorded as given.
    pub builder: Option<String>,
    /// A prebuilt image the stack's services run (`busybox`, `debian`) until builds exist.
    pub image: Option<String>,
    /// The deployment the services run now.
    pub current_deployment: Option<Version>,
    /// External buildpacks run in order instead of detection (a directory, `.tgz` URL or git
    /// URL with `#ref`).
    #[serde(default)]
    pub buildpacks: Vec<String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateStack {
    pub name: Name,
    #[serde(default)]
    pub formula: Option<Formula>,
}

/// A partial update: absent fields are left as they are; an empty `release_command`,
/// `builder` or `image` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<Formula>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Replaces the list of external buildpacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildpacks: Option<Vec<String>>,
}
