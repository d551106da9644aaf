//! Deployments: numbered builds and releases of a stack.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Formula;
use crate::desired::BuiltImage;
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
    /// What it is: `build`, `image import`, `config change`, `rollback to v2`.
    #[serde(default)]
    pub description: String,
    /// The image it runs, once built or imported.
    #[serde(default)]
    pub image: Option<BuiltImage>,
    /// Process type to command (the Procfile's, or the buildpack's default `web`).
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
    /// What ran before the rollout, if anything.
    #[serde(default)]
    pub release_command: Option<String>,
    /// Each step with its timing, in order.
    #[serde(default)]
    pub steps: Vec<DeploymentStep>,
}

/// One step of a deployment: `upload`, `build`, `release`, `rollout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStep {
    pub name: String,
    pub started_at: UnixMs,
    pub finished_at: Option<UnixMs>,
    /// `running`, `succeeded`, `failed` or `skipped`.
    pub status: String,
}

impl DeploymentStep {
    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// What the store needs to open a deployment; the version is assigned by the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeployment {
    pub formula: Formula,
    pub source_digest: Option<String>,
    pub created_by: String,
    #[serde(default)]
    pub description: String,
    /// Known up front for a rollback, a config change or an imported image.
    #[serde(default)]
    pub image: Option<BuiltImage>,
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
    #[serde(default)]
    pub release_command: Option<String>,
}

/// What a deployment produced, saved once the build or import is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentBuild {
    pub image: BuiltImage,
    pub processes: BTreeMap<String, String>,
    pub release_command: Option<String>,
}

/// `POST .../deployments`: deploy an uploaded source archive or image archive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateDeployment {
    /// Digest of a source archive uploaded with `PUT /v1/sources/{digest}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Digest of an OCI or docker image archive uploaded the same way (`mesh deploy --image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_archive: Option<String>,
    /// Overrides the stack's formula (and is kept on the stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<Formula>,
}

/// `POST .../rollback`: a new deployment running an earlier one's image and processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The version to return to; the one before the current when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

/// The answer to `PUT /v1/sources/{digest}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUploaded {
    pub digest: String,
    pub size: u64,
    /// Files in the archive (0 for an image archive, which is checked when deployed).
    pub files: u64,
}
