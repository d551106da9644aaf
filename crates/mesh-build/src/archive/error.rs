use std::io;
use std::path::PathBuf;

use thiserror::Error;

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
    #[error("archive entry {entry:?} refused: {reason}")]
    Refused { entry: String, reason: String },
    #[error("archive is {size} bytes, at most {max} are allowed")]
    ArchiveTooLarge { size: u64, max: u64 },
    #[error("archive unpacks to more than {max} bytes")]
    UnpackedTooLarge { max: u64 },
    #[error("archive has more than {max} entries")]
    TooManyFiles { max: u64 },
    #[error("archive is damaged: {0}")]
    Corrupt(io::Error),
    #[error("destination {} already exists", .0.display())]
    DestinationExists(PathBuf),
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn refused(entry: &str, reason: impl Into<String>) -> Self {
        Self::Refused {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}
