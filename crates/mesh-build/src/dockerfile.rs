//! The Dockerfile formula: `buildah bud` in a cgroup with the build's limits, then the image
//! imported into the blob directory like any archive.
//!
//! - Only config variables the Dockerfile declares with `ARG` reach the build (as
//!   `--build-arg NAME=value`; values therefore appear on buildah's command line, readable
//!   by the host's users while it runs); everything else stays out of it.
//! - `--isolation chroot`: `RUN` steps run as buildah's own children, so they stay inside the
//!   cgroup of [`run_limited`], and buildah never sets up a container network: its default
//!   network (netavark) would switch on the host's `ip_forward` and add firewall chains.
//!   buildah 1.28 refuses `--network none` with chroot isolation, so `RUN` steps share the
//!   host's network, as a build container with `BuildNetwork::Host` does (registries must be
//!   reachable); see `mesh_runtime::build` for that trade-off.
//! - `--layers` with buildah's storage (`--root`, `--runroot`, overlay driver) under
//!   `storage`, kept between builds, so unchanged steps come from the cache.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use mesh_runtime::build::{BuildLimits, BuildOutcome, run_limited};
use mesh_types::desired::BuiltImage;
use thiserror::Error;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::blobs::BlobDir;
use crate::oci::{OciError, import_archive};

mod args;

pub use args::declared_args;

/// Lines of output kept for an error message.
pub const TAIL_LINES: usize = 20;
/// How long the output forwarder may run on after buildah ended.
const FORWARD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileBuild {
    /// The build context (the unpacked source).
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    /// All of the stack's config; only the names the Dockerfile declares as `ARG` are passed.
    pub config: BTreeMap<String, String>,
    /// Names the build's cgroup and its temporary tag; a build id (lowercase letters, digits,
    /// `-`).
    pub id: String,
    /// buildah's storage, kept between builds for its layer cache.
    pub storage: PathBuf,
    pub limits: BuildLimits,
}

#[derive(Debug, Error)]
pub enum DockerfileError {
    #[error("reading the Dockerfile {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{step} could not run: {source}")]
    Start {
        step: &'static str,
        source: mesh_runtime::Error,
    },
    #[error("{step} {outcome}; last lines:\n{}", tail.join("\n"))]
    Failed {
        step: &'static str,
        outcome: BuildOutcome,
        tail: Vec<String>,
    },
    #[error("importing the built image: {0}")]
    Import(#[from] OciError),
    #[error("preparing buildah's storage {}: {source}", path.display())]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the Dockerfile and stores the image's layers in `blobs`. Output of every step goes to
/// `lines`; a failure names the step (`buildah bud`, `buildah push`) and its last lines.
pub async fn build_dockerfile(
    b: &DockerfileBuild,
    blobs: &BlobDir,
    lines: UnboundedSender<String>,
) -> Result<BuiltImage, DockerfileError> {
    let text = std::fs::read_to_string(&b.dockerfile).map_err(|source| DockerfileError::Read {
        path: b.dockerfile.clone(),
        source,
    })?;
    let declared = declared_args(&text);
    let storage_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DockerfileError::Storage { path, source }
    };
    let tmp_root = b.storage.join("tmp");
    std::fs::create_dir_all(&tmp_root).map_err(storage_err(&tmp_root))?;
    let work = tempfile::Builder::new()
        .prefix(&format!("{}-", b.id))
        .tempdir_in(&tmp_root)
        .map_err(storage_err(&tmp_root))?;
    let tag = format!("localhost/widemesh-build/{}:latest", b.id);
    let store = |sub: &str| b.storage.join(sub).to_string_lossy().into_owned();
    let mut common = vec![
        "--root".to_string(),
        store("root"),
        "--runroot".into(),
        store("runroot"),
        "--storage-driver".into(),
        "overlay".into(),
    ];
    let env = vec![(
        "TMPDIR".to_string(),
        work.path().to_string_lossy().into_owned(),
    )];

    let mut bud = common.clone();
    bud.extend(
        [
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--format",
            "oci",
            "-t",
        ]
        .map(String::from),
    );
    bud.push(tag.clone());
    bud.push("-f".into());
    bud.push(b.dockerfile.to_string_lossy().into_owned());
    for (k, v) in b.config.iter().filter(|(k, _)| declared.contains(*k)) {
        bud.push("--build-arg".into());
        bud.push(format!("{k}={v}"));
    }
    bud.push(b.context.to_string_lossy().into_owned());
    let built = step("buildah bud", &bud, &env, b, lines.clone()).await;

    let layout = work.path().join("image");
    let result = match built {
        Ok(()) => {
            let mut push = common.clone();
            push.extend(["push".to_string(), tag.clone()]);
            push.push(format!("oci:{}", layout.display()));
            match step("buildah push", &push, &env, b, lines.clone()).await {
                Ok(()) => import_archive(&layout, blobs).map_err(DockerfileError::from),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    // The tag only; the layer cache stays.
    common.extend(["rmi".to_string(), tag]);
    let _ = tokio::process::Command::new("buildah")
        .args(&common)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    result
}

/// Runs one buildah command under the build's limits, forwarding its lines and keeping the
/// last ones for the error.
async fn step(
    name: &'static str,
    args: &[String],
    env: &[(String, String)],
    b: &DockerfileBuild,
    lines: UnboundedSender<String>,
) -> Result<(), DockerfileError> {
    let (tx, mut rx) = unbounded_channel::<String>();
    let forward = tokio::spawn(async move {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        while let Some(l) = rx.recv().await {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(l.clone());
            let _ = lines.send(l);
        }
        Vec::from(tail)
    });
    let outcome = run_limited("buildah", args, env, &b.context, &b.id, &b.limits, tx).await;
    // The forwarder ends with the last sender; a reader left blocked must not hang us.
    let tail = match tokio::time::timeout(FORWARD_WAIT, forward).await {
        Ok(Ok(tail)) => tail,
        _ => Vec::new(),
    };
    let outcome = outcome.map_err(|source| DockerfileError::Start { step: name, source })?;
    if outcome.success() {
        Ok(())
    } else {
        Err(DockerfileError::Failed {
            step: name,
            outcome,
            tail,
        })
    }
}

#[cfg(test)]
mod tests;
