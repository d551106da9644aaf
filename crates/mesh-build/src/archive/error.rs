use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::untar::UntarError;

/// Packing and unpacking failures; entry names are given as they appear in the tree or archive.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("walking the source tree: {0}")]
    Walk(#[from] ignore::Error),
    #[error("symlink {link:?} to {target:?} is refused: {reason}")]
    LinkRefused {
        link: String,
        target: String,
        reason: &'static str,
    },
    #[error("{path:?} is not a regular file, directory or symlink")]
    UnsupportedFile { path: String },
    #[error("archive is {size} bytes, at most {max} are allowed")]
    ArchiveTooLarge { size: u64, max: u64 },
    /// Kept apart from [`ArchiveError::Unpack`] because the server answers it with its own
    /// status (payload too large) and advice.
    #[error("archive unpacks to more than {max} bytes")]
    UnpackedTooLarge { max: u64 },
    /// Any other refusal of the unpacker: which entry, which rule or limit.
    #[error(transparent)]
    Unpack(UntarError),
}

impl From<UntarError> for ArchiveError {
    fn from(e: UntarError) -> Self {
        match e {
            UntarError::TooLarge { max, .. } => ArchiveError::UnpackedTooLarge { max },
            e => ArchiveError::Unpack(e),
        }
    }
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
