//! What the control plane asks of a builder: turn an unpacked source tree into an image and the
//! process types to run from it. The real builder runs formulas in isolated build containers;
//! [`fake::FakeBuilder`] makes a busybox-based image from the Procfile alone, for tests that are
//! about everything around a build.

pub mod fake;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use mesh_types::Version;
use mesh_types::api::Formula;
use mesh_types::desired::BuiltImage;
use tokio::sync::mpsc::UnboundedSender;

/// One build of one deployment.
#[derive(Debug, Clone)]
pub struct BuildJob {
    pub environment: String,
    pub stack: String,
    pub version: Version,
    pub formula: Formula,
    /// The unpacked source; the builder may change it.
    pub source: PathBuf,
    /// The stack's config (stack-wide values): a buildpack's `ENV_DIR`, a Dockerfile's
    /// declared `ARG`s.
    pub config: BTreeMap<String, String>,
    /// External buildpacks, in order; empty means detect a built-in one.
    pub buildpacks: Vec<String>,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutput {
    pub image: BuiltImage,
    /// Process type to command: the Procfile's entries over the buildpack's defaults. `release`
    /// is the release command.
    pub processes: BTreeMap<String, String>,
}

/// Why a build failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildFailure(pub String);

#[async_trait]
pub trait Builder: Send + Sync + std::fmt::Debug {
    /// Builds `job`, sending every line of output to `lines` as it comes.
    async fn build(
        &self,
        job: &BuildJob,
        lines: UnboundedSender<String>,
    ) -> Result<BuildOutput, BuildFailure>;
}
