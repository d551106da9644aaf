use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why an archive was not (wholly) read. `what` names the kind of archive ("archive", "layer",
/// "tarball", "image archive"), `entry` the entry as it appears in the archive.
#[derive(Debug, Error)]
pub enum UntarError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{what} entry {entry:?} refused: {reason}")]
    Refused {
        what: &'static str,
        entry: String,
        reason: String,
    },
    #[error(
        "{what} unpacks to more than {max} bytes; make it smaller or raise the limit where it is set"
    )]
    TooLarge { what: &'static str, max: u64 },
    #[error(
        "{what} has more than {max} entries; make it smaller or raise the limit where it is set"
    )]
    TooManyEntries { what: &'static str, max: u64 },
    #[error(
        "{what} entry {entry:?} refused: extension header of {size} bytes, at most {max} are accepted (long names and pax records of real archives are far shorter)"
    )]
    HeaderTooLarge {
        what: &'static str,
        entry: String,
        size: u64,
        max: u64,
    },
    #[error("{what} is damaged: {source}")]
    Corrupt {
        what: &'static str,
        source: io::Error,
    },
    #[error("destination {} already exists; remove it or unpack elsewhere", .0.display())]
    DestinationExists(PathBuf),
}

impl UntarError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn refused(what: &'static str, entry: &str, reason: impl Into<String>) -> Self {
        Self::Refused {
            what,
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}
