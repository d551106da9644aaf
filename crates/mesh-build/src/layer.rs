//! Image layers: gzip'd tars of a filesystem tree, as in an OCI image.
//!
//! [`pack_layer`] turns a directory (a build's writable layer, an app tree) into a
//! deterministic layer blob: entries sorted by name, fixed modification times, a fixed gzip
//! header, so an unchanged tree gives the same digest and agents reuse what they fetched.
//! [`unpack_layer`] turns a layer blob from anywhere (an imported image) into a directory that
//! overlayfs can stack: OCI whiteouts become overlayfs whiteouts, and anything that could write
//! outside the directory is refused; device nodes are left out. The reading itself, limits and
//! path checks included, is [`crate::untar`]'s under [`Rules::LAYER`](crate::untar::Rules::LAYER).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::untar::UntarError;

mod pack;
mod unpack;

pub use pack::pack_layer;
pub use unpack::{unpack_layer, unpack_layer_with};

/// The OCI whiteout prefix: `.wh.<name>` deletes `<name>` of the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque marker: the directory holding it hides the lower layers' contents.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// overlayfs's opaque directory attribute.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Modification time of every packed entry.
pub const PACK_MTIME: u64 = 0;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// Place the tree under this directory of the image (`app` → `/app/...`).
    pub prefix: Option<String>,
    /// Owner and group of every entry, instead of the files' own.
    pub owner: Option<(u32, u32)>,
    /// Paths relative to the tree (`node_modules/.cache`, `tmp`) left out with all below them.
    pub exclude: Vec<String>,
    /// Keep overlayfs whiteouts (char 0:0) and opaque directories as OCI `.wh.` entries, so
    /// the layer deletes what the build deleted. Off by default: they are skipped, and the
    /// layer only adds and changes files.
    pub keep_whiteouts: bool,
}

/// Bounds on what [`unpack_layer_with`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Total size of file contents (and of the decompressed stream, plus headers).
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    /// 8 GiB, a million entries: far above real images, far below a full disk.
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

impl From<&UnpackLimits> for crate::untar::Limits {
    fn from(l: &UnpackLimits) -> Self {
        crate::untar::Limits {
            max_bytes: l.max_bytes,
            max_entries: l.max_entries,
        }
    }
}

/// What [`unpack_layer`] wrote.
pub type LayerStats = crate::untar::Stats;

#[derive(Debug, Error)]
pub enum LayerError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Unpacking refused the layer: which entry, which rule or limit.
    #[error(transparent)]
    Unpack(#[from] UntarError),
    #[error("invalid pack option: {0}")]
    InvalidOption(String),
    #[error("storing the layer: {0}")]
    Store(io::Error),
}

impl LayerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| LayerError::Io { path, source }
    }
}

#[cfg(test)]
mod tests;
