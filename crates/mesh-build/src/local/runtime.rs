//! Runtime layers: a built-in buildpack's Debian packages apt-installed over the base image in a
//! build container, packed as a layer (shipped to agents) and unpacked beside it (the lower
//! layer of later build containers). Made once per package set and base: the key covers both.

use std::path::{Path, PathBuf};

use mesh_runtime::build::{BuildSpec, run_build, upper_dir};
use tokio::sync::mpsc::UnboundedSender;

use super::LocalBuilder;
use crate::builder::{BuildFailure, BuildJob};
use crate::layer::{PackOptions, pack_layer, unpack_layer};

/// What apt leaves behind that no instance needs.
const EXCLUDE: [&str; 6] = [
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    "tmp",
    "root",
    "var/cache/debconf",
];

/// A ready runtime layer: its blob digest and its unpacked directory.
#[derive(Debug, Clone)]
pub struct RuntimeLayer {
    pub digest: String,
    pub dir: PathBuf,
}

fn key(base: &Path, packages: &[&str]) -> String {
    let record = std::fs::read_to_string(base.parent().unwrap_or(base).join("image.json"))
        .unwrap_or_default();
    let seed = format!("{record}\n{}", packages.join(" "));
    crate::blobs::digest_of(seed.as_bytes())[7..23].to_string()
}

pub async fn layer(
    b: &LocalBuilder,
    job: &BuildJob,
    base: &Path,
    packages: &[&str],
    lines: &UnboundedSender<String>,
) -> Result<RuntimeLayer, BuildFailure> {
    let key = key(base, packages);
    let root = b.root.join("runtime");
    let dir = root.join(&key);
    let digest_file = root.join(format!("{key}.digest"));
    let _guard = b.runtime_lock.lock().await;
    if let (true, Ok(digest)) = (dir.is_dir(), std::fs::read_to_string(&digest_file))
        && b.blobs.contains(digest.trim())
    {
        {
            let _ = lines.send(format!(
                "-----> Using the cached runtime ({})",
                packages.join(" ")
            ));
            return Ok(RuntimeLayer {
                digest: digest.trim().to_string(),
                dir,
            });
        }
    }
    let _ = lines.send(format!(
        "-----> Installing the runtime: {}",
        packages.join(" ")
    ));
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&root).map_err(|e| BuildFailure(format!("{}: {e}", root.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix(".runtime-")
        .tempdir_in(&root)
        .map_err(|e| BuildFailure(format!("{}: {e}", root.display())))?;
    let script = format!(
        "set -e; export DEBIAN_FRONTEND=noninteractive; \
         apt-get -o APT::Sandbox::User=root update -qq; \
         apt-get -o APT::Sandbox::User=root install -y -qq --no-install-recommends {} >/dev/null; \
         apt-get clean",
        packages.join(" ")
    );
    let mut env = vec![
        ("PATH".to_string(), super::buildpack::PATH.to_string()),
        ("HOME".into(), "/root".into()),
    ];
    let mounts = super::buildpack::host_ca(&mut env).into_iter().collect();
    let spec = BuildSpec {
        id: LocalBuilder::build_id(job, "rt"),
        layers: vec![base.to_path_buf()],
        scratch: scratch.path().to_path_buf(),
        mounts,
        args: vec!["/bin/sh".into(), "-c".into(), script],
        env,
        cwd: "/".into(),
        limits: b.limits,
        network: b.network(),
    };
    let outcome = run_build(&spec, lines.clone())
        .await
        .map_err(|e| BuildFailure(format!("installing the runtime could not start: {e}")))?;
    if !outcome.success() {
        return Err(BuildFailure(format!(
            "installing the runtime ({}) {outcome}",
            packages.join(" ")
        )));
    }
    let upper = upper_dir(scratch.path());
    let blobs = b.blobs.clone();
    let (dir2, digest_file2) = (dir.clone(), digest_file.clone());
    let digest = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let opts = PackOptions {
            exclude: EXCLUDE.iter().map(|s| s.to_string()).collect(),
            ..PackOptions::default()
        };
        let digest = pack_layer(&upper, &opts, &blobs).map_err(|e| e.to_string())?;
        let blob = blobs.path(&digest).ok_or("bad digest")?;
        let _ = std::fs::remove_dir_all(&dir2);
        unpack_layer(&blob, &dir2).map_err(|e| e.to_string())?;
        std::fs::write(&digest_file2, &digest).map_err(|e| e.to_string())?;
        Ok(digest)
    })
    .await
    .map_err(|e| BuildFailure(format!("packing the runtime layer: {e}")))?
    .map_err(|e| BuildFailure(format!("packing the runtime layer: {e}")))?;
    let _ = lines.send(format!(
        "-----> Runtime installed in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(RuntimeLayer { digest, dir })
}
