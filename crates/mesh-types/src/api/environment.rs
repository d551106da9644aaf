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
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

/// One environment with what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDetails {
    #[serde(flatten)]
    pub environment: Environment,
    pub stacks: Vec<Stack>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoint>,
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
}

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
