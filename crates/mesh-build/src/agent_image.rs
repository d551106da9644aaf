//! The image a Kubernetes rack's agent runs in its cluster (`mesh rack agent-manifest`): the
//! built-in Debian base and one layer holding the control plane's own `mesh` at
//! [`AGENT_BINARY`] and the control plane's CA certificates at [`CA_BUNDLE`] (the base has
//! none, and the agent's HTTP client needs them even to start), served by the registry API as
//! [`AGENT_REPOSITORY`] (a name no environment can have: environment names have no dots).
//!
//! The layer is packed once per executable ([`crate::layer::pack_layer`]: owner root, times at
//! 0, so the same files give the same digest) and remembered in `<dir>/agent.layer.json` by a
//! fingerprint of the files (path, size, modification time, and [`AGENT_IMAGE_FORMAT`]): a
//! control plane upgraded in place packs its new executable on the next pull.

use std::io;
use std::path::{Path, PathBuf};

use mesh_types::desired::{BuiltImage, ImageConfig};
use thiserror::Error;

use crate::base_layer::{remember, remembered};
use crate::blobs::{BlobDir, digest_of};
use crate::distribution::{DistributionError, LayerInfo, layer_info};
use crate::image::seal;
use crate::layer::{LayerError, PackOptions, pack_layer};

/// The registry API's repository of the agent image: `<registry>/widemesh.system/agent:<tag>`.
pub const AGENT_REPOSITORY: (&str, &str) = ("widemesh.system", "agent");
/// Where the executable is in the image.
pub const AGENT_BINARY: &str = "/usr/local/bin/mesh";
/// Where the CA certificates are, in the image and on a Debian control plane's machine.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The built-in base under it (the executable links against glibc).
pub const AGENT_BASE: &str = "debian";
/// Bumped when the image's making changes.
pub const AGENT_IMAGE_FORMAT: u32 = 2;
/// The name the layer is remembered under in the bases directory.
const REMEMBERED: &str = "agent";

#[derive(Debug, Error)]
pub enum AgentImageError {
    #[error("reading this control plane's executable {}: {source}", path.display())]
    Executable { path: PathBuf, source: io::Error },
    #[error("packing this control plane's executable into the agent image: {0}")]
    Pack(#[from] LayerError),
    #[error("reading the agent image's layer: {0}")]
    Read(#[from] DistributionError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What identifies the files of the image without reading them whole.
pub fn fingerprint(exe: &Path, ca_bundle: Option<&Path>) -> Result<String, AgentImageError> {
    let mut seed = format!("widemesh agent image {AGENT_IMAGE_FORMAT}\n");
    for file in std::iter::once(exe).chain(ca_bundle) {
        let meta = std::fs::metadata(file).map_err(|source| AgentImageError::Executable {
            path: file.to_path_buf(),
            source,
        })?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        seed.push_str(&format!("{}\n{}\n{modified}\n", file.display(), meta.len()));
    }
    Ok(digest_of(seed.as_bytes()))
}

/// Places `from` at `to` (absolute, in the image) under `tree`: a hard link, else a copy.
fn place(tree: &Path, from: &Path, to: &str) -> Result<(), AgentImageError> {
    let dest = tree.join(to.trim_start_matches('/'));
    let parent = dest.parent().expect("an image path has a directory");
    std::fs::create_dir_all(parent).map_err(|source| AgentImageError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    if std::fs::hard_link(from, &dest).is_err() {
        std::fs::copy(from, &dest).map_err(|source| AgentImageError::Executable {
            path: from.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Packs `exe` as [`AGENT_BINARY`] and `ca_bundle` as [`CA_BUNDLE`] into a layer blob of
/// `blobs` (blocking), working in `dir`.
pub fn pack_agent(
    dir: &Path,
    exe: &Path,
    ca_bundle: Option<&Path>,
    blobs: &BlobDir,
) -> Result<LayerInfo, AgentImageError> {
    std::fs::create_dir_all(dir).map_err(|source| AgentImageError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tree = tempfile::tempdir_in(dir).map_err(|source| AgentImageError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    place(tree.path(), exe, AGENT_BINARY)?;
    if let Some(ca) = ca_bundle {
        place(tree.path(), ca, CA_BUNDLE)?;
    }
    let opts = PackOptions {
        owner: Some((0, 0)),
        ..PackOptions::default()
    };
    let digest = pack_layer(tree.path(), &opts, blobs)?;
    Ok(layer_info(blobs, "the agent image", &digest)?)
}

/// The image of `layer` (the executable's): on the Debian base, running `mesh`.
pub fn image_of(layer: &LayerInfo) -> BuiltImage {
    let config = ImageConfig {
        entrypoint: vec![AGENT_BINARY.to_string()],
        cmd: vec!["agent".to_string()],
        env: [(
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        )]
        .into(),
        workdir: None,
        profile_dir: None,
    };
    seal(
        Some(AGENT_BASE.to_string()),
        vec![layer.digest.clone()],
        config,
    )
}

/// The agent image of the executable `exe` (and the CA certificates `ca_bundle`), its layer
/// packed the first time and remembered in `dir` after (blocking). Callers keep one call at a
/// time (two would both pack).
pub fn agent_image(
    dir: &Path,
    exe: &Path,
    ca_bundle: Option<&Path>,
    blobs: &BlobDir,
) -> Result<BuiltImage, AgentImageError> {
    let fp = fingerprint(exe, ca_bundle)?;
    let layer = match remembered(dir, REMEMBERED, &fp, blobs) {
        Some(layer) => layer,
        None => {
            let layer = pack_agent(dir, exe, ca_bundle, blobs)?;
            remember(dir, REMEMBERED, &fp, &layer).map_err(|e| AgentImageError::Io {
                path: dir.to_path_buf(),
                source: io::Error::other(e.to_string()),
            })?;
            layer
        }
    };
    Ok(image_of(&layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_executable_gives_the_same_image_and_is_packed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(tmp.path().join("blobs"));
        let exe = tmp.path().join("mesh");
        std::fs::write(&exe, b"#!/bin/sh\necho pretend mesh\n").unwrap();
        let bases = tmp.path().join("bases");
        let ca = tmp.path().join("ca.crt");
        std::fs::write(&ca, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        let a = agent_image(&bases, &exe, Some(&ca), &blobs).unwrap();
        assert_eq!(a.base.as_deref(), Some("debian"));
        assert_eq!(a.config.entrypoint, [AGENT_BINARY]);
        assert_eq!(a.layers.len(), 1);
        // Remembered: the blob is not packed again (its file stays the same one).
        let blob = blobs.path(&a.layers[0]).unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&blob);
        assert_eq!(agent_image(&bases, &exe, Some(&ca), &blobs).unwrap(), a);
        assert_eq!(inode(&blob), before);
        // Packed afresh elsewhere, the same executable gives the same layer.
        let other = BlobDir::new(tmp.path().join("other"));
        let again = pack_agent(&tmp.path().join("work"), &exe, Some(&ca), &other).unwrap();
        assert_eq!(again.digest, a.layers[0]);
        // A changed executable is a new image.
        std::fs::write(&exe, b"#!/bin/sh\necho newer mesh, longer\n").unwrap();
        let b = agent_image(&bases, &exe, Some(&ca), &blobs).unwrap();
        assert_ne!(b.digest, a.digest);
        // Both files are in the layer, where the image wants them.
        let layer = std::fs::read(blobs.path(&b.layers[0]).unwrap()).unwrap();
        let mut names = Vec::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&layer[..]));
        for e in tar.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert!(
            names.contains(&"usr/local/bin/mesh".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"etc/ssl/certs/ca-certificates.crt".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn a_missing_executable_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(tmp.path().join("blobs"));
        let err = agent_image(tmp.path(), &tmp.path().join("nope"), None, &blobs).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
