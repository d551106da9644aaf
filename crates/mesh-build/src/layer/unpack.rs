use std::path::Path;

use super::{LayerError, LayerStats, UnpackLimits};
use crate::untar::{self, Input, Rules};

/// [`unpack_layer_with`] under the default [`UnpackLimits`].
pub fn unpack_layer(blob: &Path, dest: &Path) -> Result<LayerStats, LayerError> {
    unpack_layer_with(blob, dest, &UnpackLimits::default())
}

/// Unpacks the layer at `blob` (gzip'd or plain tar) into `dest`, which must not exist, under
/// [`Rules::LAYER`].
///
/// Kept: directories, files, symlinks (any target: they resolve inside the container's root),
/// hard links to files of this layer, modes and owners (owners only when run as root).
/// `.wh.<name>` becomes an overlayfs whiteout (character device 0:0, as does a 0:0 device
/// entry) and `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute of its directory; both
/// need root. Left out: other device nodes and fifos. Refused: absolute paths, `..`, anything
/// below a symlink of the layer, hard links leaving the tree, more than `limits` allow (see
/// [`crate::untar`] for all the rules). Everything is written into a temporary directory beside
/// `dest` and renamed at the end, so a refusal or a crash never leaves a half layer at `dest`.
pub fn unpack_layer_with(
    blob: &Path,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<LayerStats, LayerError> {
    Ok(untar::unpack(
        &Input::File(blob),
        dest,
        &Rules::LAYER,
        &limits.into(),
    )?)
}
