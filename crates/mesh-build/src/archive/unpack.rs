use std::path::Path;

use super::{ArchiveError, Limits, UnpackStats};
use crate::untar::{self, Input, Rules};

/// Unpacks an untrusted source archive (gzip'd tar bytes) into `dest`, which must not exist yet,
/// under [`Rules::SOURCE`]: see [`crate::untar`] for what is accepted.
///
/// Everything is written to a staging directory beside `dest` and renamed into place only when
/// the whole archive was accepted, so a refused archive leaves nothing behind.
pub fn unpack(bytes: &[u8], dest: &Path, limits: &Limits) -> Result<UnpackStats, ArchiveError> {
    let size = bytes.len() as u64;
    if size > limits.max_archive_bytes {
        return Err(ArchiveError::ArchiveTooLarge {
            size,
            max: limits.max_archive_bytes,
        });
    }
    let stats = untar::unpack(&Input::Gzip(bytes), dest, &Rules::SOURCE, &limits.into())?;
    Ok(stats.into())
}
