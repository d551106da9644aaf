//! One deployment, step by step: build (or import, or reuse an earlier image), release, rollout.
//! Every step is timed and stored; a failure stops at its step, says why in the deployment's
//! message and log, and leaves the running version as it was.

use std::collections::BTreeMap;

use mesh_build::builder::BuildJob;
use mesh_types::api::{DeploymentBuild, DeploymentStatus, DeploymentStep, Formula};
use mesh_types::config::resolve;
use mesh_types::desired::BuiltImage;
use mesh_types::{UnixMs, Version};

use super::log::DeployLog;
use super::{Claim, label, release, rollout};
use crate::app::AppState;

/// Where a deployment's image comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Build an uploaded source archive with a formula.
    Build { digest: String, formula: Formula },
    /// Import an uploaded OCI or docker image archive.
    Import { digest: String },
    /// The image and processes are already on the deployment (a rollback, a config change).
    Reuse,
}

/// A deployment to carry out.
#[derive(Debug, Clone)]
pub struct Job {
    pub env: String,
    pub stack: String,
    pub version: Version,
    pub source: Source,
    /// Run the release command (not for config changes: their image was released before).
    pub release: bool,
    /// What the stack ran when the deployment was asked for: what a failed rollout returns to.
    pub previous: Option<Version>,
}

/// How a deployment ended badly.
struct Failure {
    status: DeploymentStatus,
    message: String,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        status: DeploymentStatus::Failed,
        message: message.into(),
    }
}

/// Runs `job` in the background; `claim` keeps other deployments of the stack out until done.
pub fn start(state: AppState, job: Job, claim: Claim) {
    tokio::spawn(async move {
        let _claim = claim;
        let (log, writer) = DeployLog::start(
            state.clone(),
            job.env.clone(),
            job.stack.clone(),
            job.version,
        );
        let mut steps = Steps::new(state.clone(), &job);
        let outcome = run(&state, &job, &log, &mut steps).await;
        let (status, message) = match outcome {
            Ok(message) => (DeploymentStatus::Succeeded, message),
            Err(f) => (f.status, f.message),
        };
        steps
            .finish_running(if status == DeploymentStatus::Succeeded {
                "succeeded"
            } else {
                "failed"
            })
            .await;
        let word = match status {
            DeploymentStatus::Succeeded => "-----> Deployed",
            DeploymentStatus::RolledBack => "-----> Rolled back",
            _ => "-----> Failed",
        };
        log.line(format!("{word}: {message}"));
        drop(log);
        writer.finish().await;
        if let Err(e) = state
            .store()
            .set_deployment_status(
                &job.env,
                &job.stack,
                job.version,
                status,
                Some(&message),
                state.now(),
            )
            .await
        {
            tracing::error!(deployment = %label(&job.env, &job.stack, job.version), error = %e, "could not record the end of a deployment");
        }
        state.notify_change();
        tracing::info!(deployment = %label(&job.env, &job.stack, job.version), status = status.as_str(), %message, "deployment ended");
    });
}

async fn run(
    state: &AppState,
    job: &Job,
    log: &DeployLog,
    steps: &mut Steps,
) -> Result<String, Failure> {
    let store = state.store();
    let set = |status| async move {
        store
            .set_deployment_status(&job.env, &job.stack, job.version, status, None, state.now())
            .await
            .map(|_| ())
            .map_err(|e| failed(format!("the store failed: {e}")))
    };
    set(DeploymentStatus::Building).await?;
    steps.begin("build").await;
    let build = match &job.source {
        Source::Build { digest, formula } => build(state, job, digest, *formula, log).await?,
        Source::Import { digest } => import(state, digest, log).await?,
        Source::Reuse => {
            let d = store
                .get_deployment(&job.env, &job.stack, job.version)
                .await
                .map_err(|e| failed(format!("the store failed: {e}")))?;
            let image = d
                .image
                .ok_or_else(|| failed("the deployment to reuse has no image"))?;
            log.line(format!("-----> Reusing image {}", short(&image.digest)));
            DeploymentBuild {
                image,
                processes: d.processes,
                release_command: d.release_command,
            }
        }
    };
    if !matches!(job.source, Source::Reuse) {
        store
            .set_deployment_build(&job.env, &job.stack, job.version, &build)
            .await
            .map_err(|e| failed(format!("the store failed: {e}")))?;
    }
    steps.end("succeeded").await;

    set(DeploymentStatus::Releasing).await?;
    match (&build.release_command, job.release) {
        (Some(command), true) => {
            steps.begin("release").await;
            log.line(format!("-----> Running release command: {command}"));
            release::run(state, &job.env, &job.stack, &build.image, command, log)
                .await
                .map_err(|e| failed(format!("the release command failed: {e}")))?;
            steps.end("succeeded").await;
        }
        _ => steps.skip("release").await,
    }

    set(DeploymentStatus::RollingOut).await?;
    steps.begin("rollout").await;
    log.line("-----> Rolling out");
    rollout::run(state, job, &build, log)
        .await
        .map_err(|e| Failure {
            status: DeploymentStatus::RolledBack,
            message: e.to_string(),
        })
}

/// Unpacks the uploaded source and builds it.
async fn build(
    state: &AppState,
    job: &Job,
    digest: &str,
    formula: Formula,
    log: &DeployLog,
) -> Result<DeploymentBuild, Failure> {
    let opts = state
        .deploys()
        .options()
        .ok_or_else(|| failed("this control plane keeps no uploads"))?;
    let builder = opts.builder.clone().ok_or_else(|| {
        failed("this control plane cannot build sources (it runs with --builder none, or without the root and runc that builds need); deploy a prebuilt image with `mesh deploy --image ARCHIVE`")
    })?;
    let bytes = opts
        .blobs
        .read(digest)
        .map_err(|e| failed(format!("source {digest} is not uploaded: {e}")))?;
    let dir = opts.work_dir.join(format!(
        "{}-{}-{}-{}",
        job.env,
        job.stack,
        job.version,
        state.now()
    ));
    let src = dir.join("src");
    let _ = std::fs::create_dir_all(&dir);
    let limits = mesh_build::Limits {
        max_archive_bytes: opts.max_upload_bytes,
        max_unpacked_bytes: opts.uploads.max_unpacked_bytes,
        ..mesh_build::Limits::default()
    };
    let unpacked = {
        let src = src.clone();
        tokio::task::spawn_blocking(move || mesh_build::unpack(&bytes, &src, &limits)).await
    };
    let stats = match unpacked {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(failed(format!("the source archive was refused: {e}")));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(failed(format!("unpacking the source failed: {e}")));
        }
    };
    log.line(format!(
        "-----> Building {} ({} files) with the {formula} formula",
        short(digest),
        stats.files
    ));
    let stack = state.store().get_stack(&job.env, &job.stack).await;
    let config = state.store().list_config(&job.env, &job.stack).await;
    let (stack, config) = match (stack, config) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), _) | (_, Err(e)) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(failed(format!("the store failed: {e}")));
        }
    };
    let config: BTreeMap<String, String> = resolve(&config, "", "", "")
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect();
    let build_job = BuildJob {
        environment: job.env.clone(),
        stack: job.stack.clone(),
        version: job.version,
        formula,
        source: src,
        config,
        buildpacks: stack.buildpacks.clone(),
    };
    let result = builder.build(&build_job, log.sender()).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut output = result.map_err(|e| failed(format!("the build failed: {e}")))?;
    let release_command = output.processes.remove("release").or(stack.release_command);
    log.line(format!(
        "-----> Built image {} ({} layers)",
        short(&output.image.digest),
        output.image.layers.len()
    ));
    Ok(DeploymentBuild {
        image: output.image,
        processes: output.processes,
        release_command,
    })
}

/// Imports an uploaded image archive.
async fn import(
    state: &AppState,
    digest: &str,
    log: &DeployLog,
) -> Result<DeploymentBuild, Failure> {
    let opts = state
        .deploys()
        .options()
        .ok_or_else(|| failed("this control plane keeps no uploads"))?;
    let path = opts
        .blobs
        .path(digest)
        .filter(|p| p.is_file())
        .ok_or_else(|| failed(format!("image archive {digest} is not uploaded")))?;
    log.line(format!("-----> Importing image archive {}", short(digest)));
    let blobs = opts.blobs.clone();
    let image: BuiltImage =
        tokio::task::spawn_blocking(move || super::import::archive(&path, &blobs))
            .await
            .map_err(|e| failed(format!("importing the image failed: {e}")))?
            .map_err(|e| failed(format!("the image archive was refused: {e}")))?;
    log.line(format!(
        "-----> Imported image {} ({} layers)",
        short(&image.digest),
        image.layers.len()
    ));
    Ok(DeploymentBuild {
        image,
        processes: BTreeMap::new(),
        release_command: None,
    })
}

/// `sha256:0123456789ab`: enough of a digest to recognise it.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// The deployment's steps and their timings, saved as they change.
struct Steps {
    state: AppState,
    env: String,
    stack: String,
    version: Version,
    steps: Vec<DeploymentStep>,
}

impl Steps {
    fn new(state: AppState, job: &Job) -> Self {
        Self {
            state,
            env: job.env.clone(),
            stack: job.stack.clone(),
            version: job.version,
            steps: Vec::new(),
        }
    }

    fn now(&self) -> UnixMs {
        self.state.now()
    }

    async fn save(&self) {
        let _ = self
            .state
            .store()
            .set_deployment_steps(&self.env, &self.stack, self.version, &self.steps)
            .await;
    }

    async fn begin(&mut self, name: &str) {
        let now = self.now();
        self.steps.push(DeploymentStep {
            name: name.into(),
            started_at: now,
            finished_at: None,
            status: "running".into(),
        });
        self.save().await;
    }

    async fn end(&mut self, status: &str) {
        let now = self.now();
        if let Some(s) = self.steps.last_mut() {
            s.finished_at = Some(now);
            s.status = status.into();
        }
        self.save().await;
    }

    async fn skip(&mut self, name: &str) {
        let now = self.now();
        self.steps.push(DeploymentStep {
            name: name.into(),
            started_at: now,
            finished_at: Some(now),
            status: "skipped".into(),
        });
        self.save().await;
    }

    /// Ends the step still running, if any, as `status`.
    async fn finish_running(&mut self, status: &str) {
        if self.steps.last().is_some_and(|s| s.finished_at.is_none()) {
            self.end(status).await;
        }
    }
}
