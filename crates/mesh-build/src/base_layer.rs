//! The built-in bases (`busybox`, `debian`) as layer blobs, so the registry API can serve the
//! images built on them ([`crate::distribution`]): native agents make these bases themselves
//! ([`mesh_runtime::busybox_image`], [`mesh_runtime::base_image`]), a containerd pulls them
//! as the first layer of the image's manifest.
//!
//! - The root filesystem is the one the control plane itself makes with the same functions,
//!   under `<dir>/<name>` (the Debian base is hard-linked from the machine's cache,
//!   `/var/cache/widemesh/base-bookworm`, when it can be; busybox comes from the host's
//!   static busybox).
//! - It is packed deterministically by [`pack_layer`]: entries sorted by name, numeric owners
//!   (busybox's forced to root: that tree is entirely the platform's), modes kept, every
//!   modification time and the gzip header's at 0; device nodes, sockets, fifos and overlayfs
//!   whiteouts are left out (a container runtime makes `/dev` itself). The same tree gives the
//!   same digest.
//! - The result is written once into the blob store and remembered in `<dir>/<name>.layer.json`
//!   with the base's fingerprint (the digest of its image record, which changes whenever the
//!   base is remade, and of [`BASE_LAYER_FORMAT`]): later calls, after restarts too, read that
//!   file instead of packing again, as long as the fingerprint matches and the blob is there.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use mesh_types::desired::BUILTIN_IMAGES;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::blobs::{BlobDir, digest_hex, digest_of};
use crate::distribution::{DistributionError, LAYER_GZIP_MEDIA_TYPE, LayerInfo, layer_info};
use crate::layer::{LayerError, PackOptions, pack_layer};

/// Bumped when packing a base changes, so layers remembered by an older control plane are
/// packed again.
pub const BASE_LAYER_FORMAT: u32 = 1;

#[derive(Debug, Error)]
pub enum BaseLayerError {
    #[error("{0:?} is not a built-in base; the built-in bases are busybox and debian")]
    Unknown(String),
    #[error(
        "the control plane could not make the built-in base {name:?} to serve it as a layer: \
         {reason}"
    )]
    Rootfs { name: String, reason: String },
    #[error("packing the built-in base {name:?} from {}: {source}", rootfs.display())]
    Pack {
        name: String,
        rootfs: PathBuf,
        source: LayerError,
    },
    #[error("reading the packed built-in base {name:?}: {source}")]
    Read {
        name: String,
        source: DistributionError,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What `<dir>/<name>.layer.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    fingerprint: String,
    digest: String,
    size: u64,
    diff_id: String,
}

/// The file remembering base `name`'s layer.
pub fn remembered_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.layer.json"))
}

fn check_name(name: &str) -> Result<(), BaseLayerError> {
    if BUILTIN_IMAGES.contains(&name) {
        Ok(())
    } else {
        Err(BaseLayerError::Unknown(name.to_string()))
    }
}

/// The root filesystem of base `name` under `dir/<name>`, made if it is not there yet (busybox
/// in milliseconds, Debian with debootstrap in about 45 s unless the machine's cache has it),
/// and its fingerprint.
pub async fn base_rootfs(dir: &Path, name: &str) -> Result<(PathBuf, String), BaseLayerError> {
    check_name(name)?;
    let dest = dir.join(name);
    let made = match name {
        "busybox" => mesh_runtime::busybox_image(&dest).await,
        _ => mesh_runtime::base_image(&dest, &mesh_runtime::BaseImageOptions::default()).await,
    };
    let rootfs_err = |reason: String| BaseLayerError::Rootfs {
        name: name.to_string(),
        reason,
    };
    let image = made.map_err(|e| rootfs_err(e.to_string()))?;
    let rootfs = image
        .layers
        .first()
        .cloned()
        .ok_or_else(|| rootfs_err("the image has no root filesystem".into()))?;
    let record_path = mesh_runtime::image::record_path(&dest);
    let record = std::fs::read(&record_path).map_err(|source| BaseLayerError::Io {
        path: record_path,
        source,
    })?;
    let mut seed = format!("widemesh base layer {BASE_LAYER_FORMAT} {name}\n").into_bytes();
    seed.extend_from_slice(&record);
    Ok((rootfs, digest_of(&seed)))
}

/// Packs the root filesystem of base `name` at `rootfs` into a layer blob in `blobs`
/// (blocking; the same tree always gives the same digest) and reads its diff id.
pub fn pack_base(rootfs: &Path, name: &str, blobs: &BlobDir) -> Result<LayerInfo, BaseLayerError> {
    check_name(name)?;
    let opts = PackOptions {
        // The busybox tree is the platform's own, made by whoever runs the control plane.
        owner: (name == "busybox").then_some((0, 0)),
        ..PackOptions::default()
    };
    let digest = pack_layer(rootfs, &opts, blobs).map_err(|source| BaseLayerError::Pack {
        name: name.to_string(),
        rootfs: rootfs.to_path_buf(),
        source,
    })?;
    layer_info(blobs, &format!("base {name}"), &digest).map_err(|source| BaseLayerError::Read {
        name: name.to_string(),
        source,
    })
}

/// The layer remembered as `name` with `fingerprint`, if its blob is still in the store.
pub(crate) fn remembered(
    dir: &Path,
    name: &str,
    fingerprint: &str,
    blobs: &BlobDir,
) -> Option<LayerInfo> {
    let bytes = std::fs::read(remembered_path(dir, name)).ok()?;
    let r: Remembered = serde_json::from_slice(&bytes).ok()?;
    let size = blobs
        .path(&r.digest)
        .and_then(|p| std::fs::metadata(p).ok())?
        .len();
    let fresh = r.fingerprint == fingerprint && size == r.size && digest_hex(&r.diff_id).is_some();
    fresh.then_some(LayerInfo {
        digest: r.digest,
        size: r.size,
        media_type: LAYER_GZIP_MEDIA_TYPE,
        diff_id: r.diff_id,
    })
}

/// Remembers `layer` as `name` with `fingerprint` (`<dir>/<name>.layer.json`, replaced whole).
pub(crate) fn remember(
    dir: &Path,
    name: &str,
    fingerprint: &str,
    layer: &LayerInfo,
) -> Result<(), BaseLayerError> {
    let path = remembered_path(dir, name);
    let io_err = |source| BaseLayerError::Io {
        path: path.clone(),
        source,
    };
    let r = Remembered {
        fingerprint: fingerprint.to_string(),
        digest: layer.digest.clone(),
        size: layer.size,
        diff_id: layer.diff_id.clone(),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
    tmp.write_all(&serde_json::to_vec_pretty(&r).expect("a record serializes"))
        .map_err(io_err)?;
    tmp.persist(&path).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// Base `name` as a layer in `blobs`: made (root filesystem, then packed, off the async
/// threads) the first time, then read from `<dir>/<name>.layer.json` while the base's
/// fingerprint is unchanged. Callers keep one call per base at a time (two would both pack).
pub async fn base_layer(
    dir: &Path,
    blobs: &BlobDir,
    name: &str,
) -> Result<LayerInfo, BaseLayerError> {
    let (rootfs, fingerprint) = base_rootfs(dir, name).await?;
    if let Some(layer) = remembered(dir, name, &fingerprint, blobs) {
        return Ok(layer);
    }
    let (name_owned, blobs_owned) = (name.to_string(), blobs.clone());
    let layer = tokio::task::spawn_blocking(move || pack_base(&rootfs, &name_owned, &blobs_owned))
        .await
        .map_err(|e| BaseLayerError::Rootfs {
            name: name.to_string(),
            reason: format!("the packing task failed: {e}"),
        })??;
    remember(dir, name, &fingerprint, &layer)?;
    Ok(layer)
}

#[cfg(test)]
mod tests;
