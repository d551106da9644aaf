//! The builder of a control plane that can run containers: every step of a build runs in an
//! isolated build container (runc, its own CPU, memory, pid and time limits, see
//! [`mesh_runtime::build`]) apart from running instances.
//!
//! Buildpack formula, per build:
//! 1. the buildpack: a built-in one detected from the source, or the stack's external ones;
//! 2. the runtime layer: the built-in buildpack's Debian packages apt-installed over the base
//!    image, made once per package set and reused ([`runtime`]);
//! 3. compile: `bin/compile /app /cache /env` of each buildpack with the source at `/app`, the
//!    stack's build cache at `/cache` and its config at `/env`;
//! 4. the app layer: `/app` packed, owned by the instances' user;
//! 5. the processes: the buildpack's defaults under the Procfile's.
//!
//! Dockerfile formula: buildah in its own cgroup and namespaces with the same limits, its
//! storage (layer cache) per environment ([`crate::dockerfile`]).
//!
//! Every step's network is its own namespace whose only way out is the egress proxy
//! ([`mesh_runtime::build::netns`]): registries on the internet, nothing of the platform.

mod buildpack;
mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use mesh_runtime::build::{BuildLimits, BuildNetwork, EgressConfig};
use mesh_types::api::Formula;
use tokio::sync::mpsc::UnboundedSender;

use crate::blobs::BlobDir;
use crate::builder::{BuildFailure, BuildJob, BuildOutput, Builder};
use crate::procfile::Procfile;

/// A builder keeping its caches under one directory.
#[derive(Debug, Clone)]
pub struct LocalBuilder {
    root: PathBuf,
    blobs: BlobDir,
    limits: BuildLimits,
    /// Every build step's network: its own namespace, out only through the egress proxy.
    network: Arc<EgressConfig>,
    /// One runtime layer is made at a time: two builds needing the same one wait for it.
    runtime_lock: Arc<tokio::sync::Mutex<()>>,
}

impl LocalBuilder {
    /// `root` holds the base image, runtime layers, build caches and buildah's storage.
    pub fn new(
        root: impl Into<PathBuf>,
        blobs: BlobDir,
        limits: BuildLimits,
        network: EgressConfig,
    ) -> Self {
        Self {
            root: root.into(),
            blobs,
            limits,
            network: Arc::new(network),
            runtime_lock: Arc::default(),
        }
    }

    /// The network of every build container.
    fn network(&self) -> BuildNetwork {
        BuildNetwork::Egress(self.network.clone())
    }

    fn cache_dir(&self, job: &BuildJob) -> PathBuf {
        self.root
            .join("cache")
            .join(&job.environment)
            .join(&job.stack)
    }

    /// A build id: unique, a container id and a cgroup name.
    fn build_id(job: &BuildJob, step: &str) -> String {
        let seed = format!(
            "{}/{}/{}/{}/{:?}",
            job.environment,
            job.stack,
            job.version,
            step,
            std::time::SystemTime::now()
        );
        let hex = crate::blobs::digest_of(seed.as_bytes());
        format!("wm-build-{}-{}", step, &hex[7..19])
    }

    /// The base OS image's root filesystem, made once.
    async fn base(&self) -> Result<PathBuf, BuildFailure> {
        let image = mesh_runtime::base_image(
            &self.root.join("base").join("debian"),
            &mesh_runtime::BaseImageOptions::default(),
        )
        .await
        .map_err(|e| BuildFailure(format!("making the base image: {e}")))?;
        image
            .layers
            .first()
            .cloned()
            .ok_or_else(|| BuildFailure("the base image has no layers".into()))
    }
}

#[async_trait]
impl Builder for LocalBuilder {
    async fn build(
        &self,
        job: &BuildJob,
        lines: UnboundedSender<String>,
    ) -> Result<BuildOutput, BuildFailure> {
        match job.formula {
            Formula::Buildpack => buildpack::build(self, job, lines).await,
            Formula::Dockerfile => dockerfile(self, job, lines).await,
        }
    }
}

async fn dockerfile(
    b: &LocalBuilder,
    job: &BuildJob,
    lines: UnboundedSender<String>,
) -> Result<BuildOutput, BuildFailure> {
    let file = job.source.join(crate::detect::DOCKERFILE);
    if !file.is_file() {
        return Err(BuildFailure(
            "the stack builds with the dockerfile formula but the source has no Dockerfile at its root; add one, or deploy with --buildpack".into(),
        ));
    }
    let _ = lines.send("-----> Building the Dockerfile with buildah".into());
    let build = crate::dockerfile::DockerfileBuild {
        context: job.source.clone(),
        dockerfile: file,
        config: job.config.clone(),
        id: LocalBuilder::build_id(job, "docker"),
        // Per environment: no environment reuses (or poisons) another's cached layers.
        storage: b.root.join("buildah").join(&job.environment),
        limits: b.limits,
        network: Some(b.network.clone()),
    };
    let image = crate::dockerfile::build_dockerfile(&build, &b.blobs, lines)
        .await
        .map_err(|e| BuildFailure(e.to_string()))?;
    Ok(BuildOutput {
        image,
        processes: procfile_processes(&job.source, BTreeMap::new())?,
    })
}

/// `defaults` with the Procfile's process types over them.
fn procfile_processes(
    source: &Path,
    defaults: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildFailure> {
    let mut processes = defaults;
    if let Some(p) = Procfile::read(source).map_err(|e| BuildFailure(format!("Procfile: {e}")))? {
        for e in p.entries {
            processes.insert(e.name.to_string(), e.command);
        }
    }
    Ok(processes)
}
