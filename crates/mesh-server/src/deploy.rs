//! Deployments: from an uploaded source (or image archive, or an earlier deployment) to a new
//! version serving traffic. Each deployment runs as one task through its steps —
//! build, release, rollout — writing its log to the store as it goes, so
//! `mesh deployments show vN` can follow it from any control plane and read it afterwards.
//!
//! - [`log`]: the deployment's log, buffered into the store.
//! - [`run`]: the steps in order, with their timings.
//! - [`release`]: the release command in a one-off instance.
//! - [`rollout`]: promoting the new version and watching it become healthy, or rolling back.
//! - [`verdict`]: whether a service's new instances took over on every rack.

mod error;
mod import;
mod log;
mod release;
mod rollout;
mod run;
mod verdict;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_build::BlobDir;
use mesh_build::builder::Builder;
use mesh_types::Version;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use error::DeployError;
pub use run::{Job, Source, start};

/// Default largest source or image archive accepted: 512 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// How many uploads this control plane receives and checks at once, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLimits {
    /// Uploads received and checked at the same time; more are answered 429 with `Retry-After`.
    pub slots: usize,
    /// An upload that sends nothing for this long is refused, and its slot given back.
    pub idle_timeout: Duration,
    /// The longest an upload may take to arrive, however steadily it trickles in.
    pub max_duration: Duration,
    /// The `Retry-After` of a 429.
    pub retry_after: Duration,
    /// Largest total size a source archive may unpack to (the upload check and builds alike).
    pub max_unpacked_bytes: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            slots: 4,
            idle_timeout: Duration::from_secs(15),
            max_duration: Duration::from_secs(600),
            retry_after: Duration::from_secs(5),
            max_unpacked_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// How deployments are done on this control plane.
#[derive(Clone)]
pub struct DeployOptions {
    /// Builds sources; `None`: this control plane cannot build (it still deploys images and
    /// rolls back and out).
    pub builder: Option<Arc<dyn Builder>>,
    /// Uploaded sources, image archives and image layers.
    pub blobs: BlobDir,
    /// Scratch space for unpacked sources.
    pub work_dir: PathBuf,
    pub max_upload_bytes: u64,
    pub uploads: UploadLimits,
}

impl std::fmt::Debug for DeployOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployOptions")
            .field("builder", &self.builder.is_some())
            .field("blobs", &self.blobs)
            .field("work_dir", &self.work_dir)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("uploads", &self.uploads)
            .finish()
    }
}

/// The deployments this control plane is running, so a stack runs one at a time, and the
/// upload slots.
pub struct Deploys {
    options: Option<DeployOptions>,
    running: Mutex<HashSet<(String, String)>>,
    upload_slots: Arc<Semaphore>,
}

impl Default for Deploys {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Deploys {
    pub fn new(options: Option<DeployOptions>) -> Self {
        let slots = options
            .as_ref()
            .map(|o| o.uploads.slots)
            .unwrap_or(UploadLimits::default().slots);
        Self {
            options,
            running: Mutex::new(HashSet::new()),
            upload_slots: Arc::new(Semaphore::new(slots)),
        }
    }

    /// A slot to receive and check one upload in; `None` while all are taken.
    pub(crate) fn upload_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.upload_slots.clone().try_acquire_owned().ok()
    }

    pub fn options(&self) -> Option<&DeployOptions> {
        self.options.as_ref()
    }

    /// Claims the stack for one deployment; `None` if one is already running here.
    pub(crate) fn claim(self: &Arc<Self>, env: &str, stack: &str) -> Option<Claim> {
        let key = (env.to_string(), stack.to_string());
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(key.clone()).then(|| Claim {
            deploys: self.clone(),
            key,
        })
    }
}

/// Held while a deployment of one stack runs; released when dropped.
pub struct Claim {
    deploys: Arc<Deploys>,
    key: (String, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self
            .deploys
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.key);
    }
}

/// `v3` of `shop/app`, for log lines and messages.
pub fn label(env: &str, stack: &str, version: Version) -> String {
    format!("{env}/{stack} {version}")
}

/// Marks every deployment left building, releasing or rolling out as failed: run at start, when
/// no deployment can be running on this control plane. (With several control planes sharing a
/// database, one restarting also ends deployments another is running; they are rare and short.)
pub async fn abandon_unfinished(
    store: &dyn mesh_store::Store,
    now: mesh_types::UnixMs,
) -> mesh_store::StoreResult<()> {
    for env in store.list_environments().await? {
        for stack in store.list_stacks(env.name.as_str()).await? {
            for d in store
                .list_deployments(env.name.as_str(), stack.name.as_str())
                .await?
            {
                if d.status.is_finished() {
                    continue;
                }
                store
                    .set_deployment_status(
                        env.name.as_str(),
                        stack.name.as_str(),
                        d.version,
                        mesh_types::api::DeploymentStatus::Failed,
                        Some("the control plane stopped during this deployment; deploy again"),
                        now,
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// What a stack's services run: its current deployment's image, else the built-in image it was
/// given with `mesh stack set-image`, else nothing yet.
pub async fn stack_image(
    store: &dyn mesh_store::Store,
    stack: &mesh_types::api::Stack,
) -> mesh_store::StoreResult<Option<mesh_types::desired::ImageRef>> {
    use mesh_types::desired::ImageRef;
    if let Some(v) = stack.current_deployment {
        let d = store
            .get_deployment(stack.environment.as_str(), stack.name.as_str(), v)
            .await?;
        if let Some(image) = d.image {
            return Ok(Some(ImageRef::Built(image)));
        }
    }
    // An image name the API accepted is always a known one; an unknown one runs nothing.
    Ok(stack.image.as_deref().and_then(|i| ImageRef::parse(i).ok()))
}

/// What a config change did to the stack's deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeploy {
    /// A new deployment with the new config is rolling out.
    Started(Version),
    /// The stack runs no built image, so there is nothing to deploy again.
    NoImage,
    /// A deployment is already running; its rollout picks up the new config.
    AlreadyRunning,
}

/// After a config change: a stack running a deployment gets a new one with the same image and
/// the new config, rolled out as any other (a release without a build). It is made current
/// here, before agents hear of the change, so instances are replaced once, not twice. Nothing
/// happens when the stack runs no built image or a deployment is already running (its rollout
/// picks up the new config). An error means no deployment with the new config started.
pub async fn config_changed(
    state: &crate::AppState,
    who: &str,
    env: &str,
    stack: &str,
    what: &str,
) -> Result<Redeploy, DeployError> {
    let store = state.store();
    let st = store.get_stack(env, stack).await?;
    let Some(current) = st.current_deployment else {
        return Ok(Redeploy::NoImage);
    };
    let d = store.get_deployment(env, stack, current).await?;
    let Some(image) = d.image else {
        return Ok(Redeploy::NoImage);
    };
    let claim = match claim(state, env, stack).await {
        Ok(claim) => claim,
        Err(DeployError::Busy { .. }) => return Ok(Redeploy::AlreadyRunning),
        Err(e) => return Err(e),
    };
    let new = mesh_types::api::NewDeployment {
        formula: d.formula,
        source_digest: d.source_digest,
        created_by: who.to_string(),
        description: format!("config change ({what})"),
        image: Some(image),
        processes: d.processes,
        release_command: d.release_command,
    };
    let now = state.now();
    let created = store.create_deployment(env, stack, &new, now).await?;
    // Made current early only so instances are replaced once; the rollout makes it current
    // anyway. So a failure here must not stop the deployment: it is logged and counted.
    if let Err(e) = store
        .set_current_deployment(env, stack, Some(created.version), now)
        .await
    {
        tracing::warn!(%env, %stack, error = %e, "could not promote a config change deployment early; its rollout will");
        state.metrics().config_redeploy_errors.inc();
    }
    let job = Job {
        env: env.to_string(),
        stack: stack.to_string(),
        version: created.version,
        source: Source::Reuse,
        release: false,
        previous: Some(current),
    };
    start(state.clone(), job, claim);
    Ok(Redeploy::Started(created.version))
}

/// Claims the stack for a new deployment, also against other control planes: a deployment
/// still building, releasing or rolling out in the store keeps it.
pub(crate) async fn claim(
    state: &crate::AppState,
    env: &str,
    stack: &str,
) -> Result<Claim, DeployError> {
    let busy = || DeployError::Busy {
        env: env.to_string(),
        stack: stack.to_string(),
    };
    let claim = state.deploys().claim(env, stack).ok_or_else(busy)?;
    let running = state
        .store()
        .list_deployments(env, stack)
        .await?
        .into_iter()
        .any(|d| !d.status.is_finished());
    if running {
        return Err(busy());
    }
    Ok(claim)
}

#[cfg(test)]
#[path = "deploy/tests.rs"]
mod tests;
