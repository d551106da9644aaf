//! Deployments: numbered builds and releases of a stack.

use serde::{Deserialize, Serialize};

use super::Formula;
use crate::{Name, UnixMs, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Pending,
    Building,
    Releasing,
    RollingOut,
    Succeeded,
    Failed,
    RolledBack,
}

impl DeploymentStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Succeeded | DeploymentStatus::Failed | DeploymentStatus::RolledBack
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Pending => "pending",
            DeploymentStatus::Building => "building",
            DeploymentStatus::Releasing => "releasing",
            DeploymentStatus::RollingOut => "rolling_out",
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::RolledBack => "rolled_back",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub environment: Name,
    pub stack: Name,
    pub version: Version,
    pub status: DeploymentStatus,
    pub formula: Formula,
    /// SHA-256 of the uploaded source archive.
    pub source_digest: Option<String>,
    /// Why it failed or what it did, in one line.
    pub message: Option<String>,
    pub created_by: String,
    pub created_at: UnixMs,
    pub finished_at: Option<UnixMs>,
}

/// What the store needs to open a deployment; the version is assigned by the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeployment {
    pub formula: Formula,
    pub source_digest: Option<String>,
    pub created_by: String,
}
