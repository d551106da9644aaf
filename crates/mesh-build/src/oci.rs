//! Importing a prebuilt image (`mesh deploy --image ARCHIVE`): an OCI image layout, as a tar
//! (`buildah push IMG oci-archive:x.tar`, `skopeo copy ... oci-archive:`) or a directory
//! (`oci:dir`), or a Docker archive (`docker save`, `buildah push IMG docker-archive:x.tar`,
//! possibly gzip'd).
//!
//! Every layer is copied into the blob directory as a gzip'd tar (plain tars are compressed),
//! every digest the archive states is checked, and the image config's `Entrypoint`, `Cmd`,
//! `Env` and `WorkingDir` become the [`ImageConfig`]. An archive holding several images is
//! imported by its first manifest (OCI: the first entry of `index.json`, following nested
//! indexes; Docker: the first entry of `manifest.json`), and a log line says so.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use mesh_types::desired::{BuiltImage, ImageConfig};
use serde::Deserialize;
use thiserror::Error;

use crate::blobs::BlobDir;
use crate::image::seal;

mod docker;
mod layout;
mod source;
mod store;

use source::Source;

/// Largest JSON document (index, manifest, config) read from an archive.
pub const MAX_JSON_BYTES: u64 = 8 << 20;

#[derive(Debug, Error)]
pub enum OciError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{}: not an image archive: {reason} (expected an OCI image layout, as a tar or a directory, or a docker-archive tar)",
        path.display()
    )]
    NotAnImage { path: PathBuf, reason: String },
    #[error("the archive has no {0}")]
    Missing(String),
    #[error("{name}: content hashes to {actual}, but the archive says {expected}")]
    DigestMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("storing a layer: {0}")]
    Store(io::Error),
    /// The archive's tar broke a rule or limit of [`crate::untar`]: which entry, which one.
    #[error(transparent)]
    Refused(#[from] crate::untar::UntarError),
}

impl OciError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| OciError::Io { path, source }
    }

    pub(crate) fn malformed(what: &str, reason: impl ToString) -> Self {
        OciError::Malformed {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Imports the image archive at `path` (a tar file or a directory) into `blobs`.
pub fn import_archive(path: &Path, blobs: &BlobDir) -> Result<BuiltImage, OciError> {
    let source = Source::open(path)?;
    let (layers, config) = if source.has("oci-layout") || source.has("index.json") {
        layout::import(&source, blobs)?
    } else if source.has("manifest.json") {
        docker::import(&source, blobs)?
    } else {
        return Err(OciError::NotAnImage {
            path: path.to_path_buf(),
            reason: "it has neither index.json nor manifest.json".into(),
        });
    };
    Ok(seal(None, layers, config.into_image_config()))
}

/// The part of an image config the platform honours.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ConfigFile {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, OciError> {
        serde_json::from_slice(bytes).map_err(|e| OciError::malformed("the image config", e))
    }

    pub(crate) fn diff_ids(&self) -> &[String] {
        self.rootfs
            .as_ref()
            .map(|r| r.diff_ids.as_slice())
            .unwrap_or(&[])
    }

    fn into_image_config(self) -> ImageConfig {
        let c = self.config.unwrap_or_default();
        let env: BTreeMap<String, String> = c
            .env
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
                (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
            })
            .collect();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env,
            workdir: c.working_dir.filter(|w| !w.is_empty()),
            profile_dir: None,
        }
    }
}

#[cfg(test)]
mod tests;
