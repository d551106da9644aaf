//! The source archive: a deterministic gzip-compressed tar of an app directory.
//!
//! Packing must be deterministic so that the server can store sources by digest and an unchanged
//! tree uploads to the same blob. Unpacking runs on the server side with untrusted input, so it
//! accepts only a narrow subset of tar and enforces size limits while it reads.

mod error;
mod pack;
mod unpack;

pub use error::ArchiveError;
pub use pack::pack;
pub use unpack::unpack;

/// Ignore files honoured besides `.gitignore`, with the same syntax.
pub const MESHIGNORE: &str = ".meshignore";

/// Directories never packed, at any depth: version control data and the CLI's own state.
pub const ALWAYS_EXCLUDED: [&str; 2] = [".git", ".mesh"];

/// The result of [`pack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedSource {
    /// The tar.gz archive.
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub digest: String,
    /// Regular files in the archive (directories and symlinks not counted).
    pub files: u64,
    /// Total size of the regular files' contents, before compression.
    pub size: u64,
}

/// Bounds on what [`unpack`] accepts; the path rules and the other limits are [`crate::untar`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed archive accepted, checked before anything is read.
    pub max_archive_bytes: u64,
    /// Largest total size of file contents, checked while reading.
    pub max_unpacked_bytes: u64,
    /// Most entries (files, directories and symlinks together).
    pub max_files: u64,
}

impl From<&Limits> for crate::untar::Limits {
    fn from(l: &Limits) -> Self {
        crate::untar::Limits {
            max_bytes: l.max_unpacked_bytes,
            max_entries: l.max_files,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_archive_bytes: 256 * 1024 * 1024,
            max_unpacked_bytes: 1024 * 1024 * 1024,
            max_files: 100_000,
        }
    }
}

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Total size of the regular files' contents.
    pub bytes: u64,
}

impl From<crate::untar::Stats> for UnpackStats {
    fn from(s: crate::untar::Stats) -> Self {
        UnpackStats {
            files: s.files,
            dirs: s.dirs,
            symlinks: s.symlinks,
            bytes: s.bytes,
        }
    }
}

/// Permission bits stored and restored: only whether a file is executable survives, so that the
/// packer's umask and ownership never leak into the digest or the build.
pub(crate) fn normalized_mode(mode: u32) -> u32 {
    crate::untar::file_mode(crate::untar::Modes::Executable, mode)
}

#[cfg(test)]
mod tests;
