//! The one tar reader for untrusted archives: source archives, image layers, buildpack tarballs
//! and image archives are all read through it, under the same limits and path checks.
//!
//! # Rules every archive obeys
//!
//! - **Bounded reading.** The decompressed stream stops at `max_bytes` plus
//!   [`OVERHEAD_PER_ENTRY`] per allowed entry, so a compression bomb fails at that cap whatever it
//!   hides in (file contents, skipped entries, padding). Each entry's declared size counts
//!   against `max_bytes` before any of it is read, whatever its type, so a huge "directory"
//!   cannot make us inflate gigabytes just to skip it.
//! - **Bounded headers.** GNU long names, long link names and pax records are read into memory
//!   whole by the tar parser; the extension headers before one entry may take at most
//!   [`MAX_METADATA_BYTES`] together, and a refusal names the first header over that size.
//! - **Bounded counts.** At most `max_entries` entries (of every type, the root `./` included).
//! - **Clean paths.** An entry's path must be relative, without `..`, at most
//!   [`MAX_PATH_BYTES`] long and [`MAX_PATH_DEPTH`] components deep; `./` components are
//!   dropped, and the root itself (`./`) is skipped. Link targets are at most
//!   [`MAX_PATH_BYTES`] long too.
//! - **Nothing through a symlink.** No entry may be below a symlink the archive made: writing
//!   there would go wherever the link points. Files are created with `create_new`, so an entry
//!   never follows or replaces what an earlier one made ("it appears twice"); a directory may
//!   appear twice, but not over a file or link.
//! - **Hard links stay inside**, where a kind of archive allows them at all: the target is a
//!   clean path, not below a symlink, and names a regular file this archive already wrote.
//! - **All or nothing.** Everything is written into a staging directory beside the destination
//!   (which must not exist) and renamed into place at the end, so a refusal, an error or a crash
//!   never leaves half a tree at the destination. Directory modes are applied last, deepest
//!   first, so a read-only directory does not stop its own children from being written.
//! - **Only known types.** Regular (and contiguous) files, directories, symlinks, and what the
//!   rules below allow. Pax global headers carry no file and are skipped; sparse files and
//!   anything else are refused, naming the type.
//!
//! # What differs by kind ([`Rules`])
//!
//! | | source archive | image layer | buildpack tarball |
//! |---|---|---|---|
//! | symlink targets | relative and inside the tree ([`check_link`](path::check_link)) | any (they resolve inside the container's root) | relative and inside the tree |
//! | hard links | refused | to files of this layer | to files of this tarball |
//! | devices, fifos | refused | left out (counted as `skipped`) | refused |
//! | modes | only "executable or not" (0755/0644) | kept with setuid/setgid/sticky; owners too when root (chown first, so setuid survives) | permission bits kept, setuid/setgid/sticky dropped |
//! | whiteouts | none: `.wh.x` is a file | `.wh.x` and char 0:0 become overlayfs whiteouts, `.wh..wh..opq` the opaque attribute | none |
//!
//! Image archives (`mesh deploy --image`, [`crate::oci`]) are never written out: their tar is
//! only indexed through [`walk`], under the same stream, header, count and path rules.
//!
//! There is no separate per-file size limit: `max_bytes` bounds every file already, and one
//! large file (a model, a fat jar) is as legitimate as many small ones.

mod bounded;
mod error;
pub(crate) mod path;
mod walk;
mod write;

pub use error::UntarError;
pub use walk::Input;
pub(crate) use walk::walk;
pub(crate) use write::file_mode;
pub use write::unpack;

/// Header and padding bytes allowed per entry on top of file contents when bounding the
/// decompressed stream: a header block, padding, and room for a long name.
pub const OVERHEAD_PER_ENTRY: u64 = 8 * 1024;

/// Largest total of GNU long name, long link and pax headers before one entry; the parser reads
/// them into memory, and real paths are far shorter.
pub const MAX_METADATA_BYTES: u64 = 64 * 1024;

/// Longest entry path or link target, in bytes: Linux's `PATH_MAX`, beyond which a path cannot
/// be opened in one call anyway.
pub const MAX_PATH_BYTES: usize = 4096;

/// Deepest entry path, in components: far beyond real trees (even nested `node_modules`), and
/// it keeps directory creation and the checks below symlinks cheap.
pub const MAX_PATH_DEPTH: usize = 256;

/// Bounds on what one archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total declared size of all entries' contents (and of the decompressed stream, plus
    /// [`OVERHEAD_PER_ENTRY`] per entry).
    pub max_bytes: u64,
    /// Most entries, of every type.
    pub max_entries: u64,
}

impl Limits {
    /// The cap on the decompressed stream: contents plus headers and padding for every entry
    /// allowed (and two more, for the end-of-archive blocks).
    pub fn stream_cap(&self) -> u64 {
        self.max_bytes.saturating_add(
            self.max_entries
                .saturating_add(2)
                .saturating_mul(OVERHEAD_PER_ENTRY),
        )
    }
}

/// How symlink targets are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTargets {
    /// Relative and inside the tree, by [`path::check_link`].
    InTree,
    /// Any target: the tree is a container's root, where absolute links resolve inside it.
    Any,
}

/// What happens to character and block devices and fifos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialFiles {
    Refuse,
    /// Left out and counted in [`Stats::skipped`].
    Skip,
}

/// Which mode bits and owners are restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modes {
    /// Files 0755 if any execute bit is set, else 0644; directories 0755.
    Executable,
    /// Permission bits (`0o777`) as given; setuid, setgid and sticky dropped.
    Permissions,
    /// All of `0o7777` and the owners (when run as root; otherwise files stay the unpacker's).
    /// Owners are set first, since chown clears setuid bits.
    Full,
}

/// The few rules that differ between kinds of archive; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How the archive is named in messages ("archive", "layer", "tarball").
    pub what: &'static str,
    pub link_targets: LinkTargets,
    /// Hard links to regular files already written by this archive; refused when false.
    pub hard_links: bool,
    pub special_files: SpecialFiles,
    pub modes: Modes,
    /// OCI whiteouts (`.wh.x`, `.wh..wh..opq`, char 0:0) become overlayfs ones.
    pub whiteouts: bool,
}

impl Rules {
    /// An app's source, as packed by [`crate::archive::pack`].
    pub const SOURCE: Rules = Rules {
        what: "archive",
        link_targets: LinkTargets::InTree,
        hard_links: false,
        special_files: SpecialFiles::Refuse,
        modes: Modes::Executable,
        whiteouts: false,
    };

    /// An image layer, to be stacked by overlayfs.
    pub const LAYER: Rules = Rules {
        what: "layer",
        link_targets: LinkTargets::Any,
        hard_links: true,
        special_files: SpecialFiles::Skip,
        modes: Modes::Full,
        whiteouts: true,
    };

    /// An external buildpack's `.tgz`, run by the build on its host.
    pub const BUILDPACK: Rules = Rules {
        what: "tarball",
        link_targets: LinkTargets::InTree,
        hard_links: true,
        special_files: SpecialFiles::Refuse,
        modes: Modes::Permissions,
        whiteouts: false,
    };
}

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Whiteouts and opaque markers.
    pub whiteouts: u64,
    /// Device nodes and fifos left out (an image's `/dev/console`, say): instances get their own
    /// `/dev` from the runtime, and a device node from an image must not reach the host's.
    pub skipped: u64,
    /// Total size of regular files.
    pub bytes: u64,
}

#[cfg(test)]
pub(crate) mod tests;
