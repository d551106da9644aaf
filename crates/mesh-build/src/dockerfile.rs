//! The Dockerfile formula: `buildah bud` in a sandbox with the build's limits, then the image
//! imported into the blob directory like any archive.
//!
//! - The Dockerfile is checked first: `RUN --mount` (host-reaching bind and cache mounts in
//!   buildah 1.28), `RUN --network` and `RUN --security` are refused with a clear error.
//! - Only config variables the Dockerfile declares with `ARG` reach the build, as
//!   `--build-arg NAME` with the value in buildah's environment: never on a command line.
//!   Names that would steer buildah or the linker (`PATH`, `LD_*`, `BUILDAH_*`, proxies...) are
//!   skipped with a note ([`args::reserved_arg`]).
//! - Every buildah command (`bud`, `push`, `rmi`) runs through [`run_limited`]: its own cgroup
//!   with the build's limits, and its own PID (fresh `/proc`), mount, IPC, UTS and network
//!   namespaces. `--isolation chroot` keeps `RUN` steps as buildah's children, inside that
//!   sandbox and cgroup; buildah never sets up a container network of its own (netavark would
//!   switch on the host's `ip_forward`). `RUN` steps run without `CAP_MKNOD`,
//!   `CAP_SYS_CHROOT`, `CAP_NET_RAW` and `CAP_AUDIT_WRITE`, and with no_new_privs (set on
//!   the whole sandbox by [`run_limited`]; buildah 1.28 has no option for it).
//! - The network is the build's [`BuildNet`]: its own namespace whose only way out is the
//!   egress proxy; buildah passes the proxy variables to `RUN` steps (`--http-proxy`, its
//!   default) and uses them for its own image pulls.
//! - `--layers` with buildah's storage (`--root`, `--runroot`, overlay driver) under
//!   `storage`, one per environment, kept between builds, so unchanged steps come from the
//!   cache and no environment reuses another's layers.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use mesh_runtime::build::{BuildLimits, BuildNet, BuildOutcome, EgressConfig, run_limited};
use mesh_types::desired::BuiltImage;
use thiserror::Error;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::blobs::BlobDir;
use crate::oci::{OciError, import_archive};

mod args;

pub use args::{check_dockerfile, declared_args, reserved_arg};

/// Capabilities `RUN` steps lose (beyond buildah's defaults): device nodes, a second `chroot`
/// (the classic way out of a chroot), raw sockets, audit writes.
const DROPPED_CAPS: [&str; 4] = [
    "CAP_MKNOD",
    "CAP_SYS_CHROOT",
    "CAP_NET_RAW",
    "CAP_AUDIT_WRITE",
];

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
    /// buildah's storage, kept between builds for its layer cache; one per environment.
    pub storage: PathBuf,
    pub limits: BuildLimits,
    /// The build's network: the egress proxy's, or (`None`) nothing but loopback.
    pub network: Option<Arc<EgressConfig>>,
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
    #[error("the Dockerfile cannot be built: {0}")]
    Refused(String),
    #[error("setting up the build's network: {0}")]
    Network(mesh_runtime::Error),
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
    check_dockerfile(&text).map_err(DockerfileError::Refused)?;
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
    let mut net = match &b.network {
        Some(cfg) => Some(
            BuildNet::create(cfg, &b.id, Some(lines.clone()))
                .await
                .map_err(DockerfileError::Network)?,
        ),
        None => None,
    };
    let result = build_in(b, &declared, work.path(), net.as_ref(), blobs, lines).await;
    if let Some(n) = net.as_mut() {
        n.remove().await;
    }
    result
}

async fn build_in(
    b: &DockerfileBuild,
    declared: &std::collections::BTreeSet<String>,
    work: &Path,
    net: Option<&BuildNet>,
    blobs: &BlobDir,
    lines: UnboundedSender<String>,
) -> Result<BuiltImage, DockerfileError> {
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
    let mut env = vec![("TMPDIR".to_string(), work.to_string_lossy().into_owned())];
    if let Some(n) = net {
        env.extend(n.env());
    }

    let mut bud = common.clone();
    bud.extend(
        [
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--format",
            "oci",
        ]
        .map(String::from),
    );
    for cap in DROPPED_CAPS {
        bud.push("--cap-drop".into());
        bud.push(cap.into());
    }
    bud.push("-t".into());
    bud.push(tag.clone());
    bud.push("-f".into());
    bud.push(b.dockerfile.to_string_lossy().into_owned());
    let mut build_env = env.clone();
    for (k, v) in b.config.iter().filter(|(k, _)| declared.contains(*k)) {
        if reserved_arg(k) {
            let _ = lines.send(format!(
                "-----> Not passing {k} as a build argument: the name is reserved (it would steer the builder)"
            ));
            continue;
        }
        // The value travels in buildah's environment; `--build-arg NAME` takes it from there.
        bud.push("--build-arg".into());
        bud.push(k.clone());
        build_env.push((k.clone(), v.clone()));
    }
    bud.push(b.context.to_string_lossy().into_owned());
    let netns = net.map(|n| n.netns_path());
    let netns = netns.as_deref();
    let built = step("buildah bud", &bud, &build_env, netns, b, lines.clone()).await;

    let layout = work.join("image");
    let result = match built {
        Ok(()) => {
            let mut push = common.clone();
            push.extend(["push".to_string(), tag.clone()]);
            push.push(format!("oci:{}", layout.display()));
            match step("buildah push", &push, &env, netns, b, lines.clone()).await {
                Ok(()) => import_archive(&layout, blobs).map_err(DockerfileError::from),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    // The tag only; the layer cache stays. In the sandbox too, quietly.
    common.extend(["rmi".to_string(), tag]);
    let (quiet, _drop) = unbounded_channel();
    let _ = run_limited(
        "buildah", &common, &env, &b.context, &b.id, &b.limits, netns, quiet,
    )
    .await;
    result
}

/// Runs one buildah command under the build's limits, forwarding its lines and keeping the
/// last ones for the error.
async fn step(
    name: &'static str,
    args: &[String],
    env: &[(String, String)],
    netns: Option<&Path>,
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
    let outcome = run_limited(
        "buildah", args, env, &b.context, &b.id, &b.limits, netns, tx,
    )
    .await;
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
