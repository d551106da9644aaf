use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::read::GzDecoder;
use tar::EntryType;

use super::path::check_link;
use super::{ArchiveError, Limits, UnpackStats, normalized_mode};
use crate::bounded::Bounded;

/// Headers, long names and padding allowed per entry on top of the file contents when bounding
/// the decompressed stream.
const OVERHEAD_PER_ENTRY: u64 = 8 * 1024;

/// Largest GNU long name, long link or pax header accepted; real paths are far shorter.
const MAX_METADATA_BYTES: u64 = 64 * 1024;

/// Unpacks an untrusted source archive into `dest`, which must not exist yet.
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
    if fs::symlink_metadata(dest).is_ok() {
        return Err(ArchiveError::DestinationExists(dest.to_path_buf()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Dropping the TempDir on any error path removes the partial tree.
    let staging = tempfile::Builder::new()
        .prefix(".mesh-unpack-")
        .tempdir_in(parent)
        .map_err(ArchiveError::io(parent))?;
    let stats = extract(bytes, staging.path(), limits)?;
    // Temporary directories are private; the unpacked source is read by the build as well.
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
        .map_err(ArchiveError::io(staging.path()))?;
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, dest) {
        let _ = fs::remove_dir_all(&staged);
        return Err(ArchiveError::io(dest)(e));
    }
    Ok(stats)
}

type Reader<'a> = Bounded<GzDecoder<&'a [u8]>>;

/// Opens the archive behind a bound on the decompressed stream: tar reads long names and
/// extension headers into memory, and skipping an entry still inflates it, so a bomb must stop
/// at the cap whatever it hides in.
fn open<'a>(bytes: &'a [u8], limits: &Limits) -> (tar::Archive<Reader<'a>>, Rc<Cell<bool>>) {
    let cap = limits.max_unpacked_bytes.saturating_add(
        limits
            .max_files
            .saturating_add(2)
            .saturating_mul(OVERHEAD_PER_ENTRY),
    );
    let (reader, tripped) = Bounded::new(GzDecoder::new(bytes), cap);
    (tar::Archive::new(reader), tripped)
}

/// Maps read errors, telling a tripped bound from a damaged archive.
fn read_error(tripped: &Rc<Cell<bool>>, limits: &Limits) -> impl Fn(io::Error) -> ArchiveError {
    let (tripped, max) = (tripped.clone(), limits.max_unpacked_bytes);
    move |e| {
        if tripped.get() {
            ArchiveError::UnpackedTooLarge { max }
        } else {
            ArchiveError::Corrupt(e)
        }
    }
}

/// Refuses oversized GNU long names and pax headers before the real pass, which would read each
/// of them whole into memory: the bound on the stream alone would still allow gigabytes.
fn check_metadata(bytes: &[u8], limits: &Limits) -> Result<(), ArchiveError> {
    let (mut archive, tripped) = open(bytes, limits);
    let fail = read_error(&tripped, limits);
    for entry in archive.entries().map_err(&fail)?.raw(true) {
        let entry = entry.map_err(&fail)?;
        let t = entry.header().entry_type();
        let metadata = t.is_gnu_longname()
            || t.is_gnu_longlink()
            || t.is_pax_local_extensions()
            || t.is_pax_global_extensions();
        let size = entry.header().size().map_err(&fail)?;
        if metadata && size > MAX_METADATA_BYTES {
            return Err(ArchiveError::refused(
                &String::from_utf8_lossy(&entry.path_bytes()),
                format!(
                    "extension header of {size} bytes, at most {MAX_METADATA_BYTES} are accepted"
                ),
            ));
        }
    }
    Ok(())
}

fn extract(bytes: &[u8], root: &Path, limits: &Limits) -> Result<UnpackStats, ArchiveError> {
    check_metadata(bytes, limits)?;
    let (mut archive, tripped) = open(bytes, limits);
    let corrupt = read_error(&tripped, limits);
    let too_large = ArchiveError::UnpackedTooLarge {
        max: limits.max_unpacked_bytes,
    };

    let mut stats = UnpackStats::default();
    let mut links: HashSet<PathBuf> = HashSet::new();
    let mut entries_seen = 0u64;
    for entry in archive.entries().map_err(&corrupt)? {
        let mut entry = entry.map_err(&corrupt)?;
        entries_seen += 1;
        if entries_seen > limits.max_files {
            return Err(ArchiveError::TooManyFiles {
                max: limits.max_files,
            });
        }
        let raw = entry.path().map_err(&corrupt)?.into_owned();
        let shown = raw.to_string_lossy().into_owned();
        let rel = check_entry_path(&raw, &shown)?;
        if let Some(link) = rel.ancestors().skip(1).find(|a| links.contains(*a)) {
            return Err(ArchiveError::refused(
                &shown,
                format!("its parent {:?} is a symlink", link.display().to_string()),
            ));
        }
        // The declared size counts for every entry type so a huge "directory" cannot make us
        // inflate gigabytes just to skip it.
        let declared = entry.header().size().map_err(&corrupt)?;
        let total = stats.bytes.saturating_add(declared);
        if total > limits.max_unpacked_bytes {
            return Err(too_large);
        }
        let out = root.join(&rel);
        match entry.header().entry_type() {
            EntryType::Directory => {
                fs::create_dir_all(&out).map_err(ArchiveError::io(&out))?;
                fs::set_permissions(&out, fs::Permissions::from_mode(0o755))
                    .map_err(ArchiveError::io(&out))?;
                stats.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(p) = out.parent() {
                    fs::create_dir_all(p).map_err(ArchiveError::io(p))?;
                }
                let mode = normalized_mode(entry.header().mode().map_err(&corrupt)?);
                // create_new refuses to follow or replace anything already there, such as a
                // symlink of the same name placed by an earlier entry.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::AlreadyExists => {
                            ArchiveError::refused(&shown, "it appears twice")
                        }
                        _ => ArchiveError::io(&out)(e),
                    })?;
                let budget = limits.max_unpacked_bytes - stats.bytes;
                let copied =
                    io::copy(&mut (&mut entry).take(budget + 1), &mut file).map_err(&corrupt)?;
                if copied > budget {
                    return Err(too_large);
                }
                fs::set_permissions(&out, fs::Permissions::from_mode(mode))
                    .map_err(ArchiveError::io(&out))?;
                stats.bytes += copied;
                stats.files += 1;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(&corrupt)?
                    .ok_or_else(|| ArchiveError::refused(&shown, "symlink without a target"))?
                    .into_owned();
                if let Err(reason) = check_link(&rel, &target) {
                    return Err(ArchiveError::refused(
                        &shown,
                        format!("symlink to {:?}: {reason}", target.to_string_lossy()),
                    ));
                }
                if let Some(p) = out.parent() {
                    fs::create_dir_all(p).map_err(ArchiveError::io(p))?;
                }
                symlink(&target, &out).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => {
                        ArchiveError::refused(&shown, "it appears twice")
                    }
                    _ => ArchiveError::io(&out)(e),
                })?;
                links.insert(rel);
                stats.symlinks += 1;
            }
            EntryType::Link => {
                return Err(ArchiveError::refused(&shown, "hard links are not accepted"));
            }
            other => {
                return Err(ArchiveError::refused(
                    &shown,
                    format!(
                        "entry type {} is not accepted; only files, directories and symlinks are",
                        describe(other)
                    ),
                ));
            }
        }
    }
    Ok(stats)
}

/// The entry's path as a clean relative path, or a refusal naming it.
fn check_entry_path(raw: &Path, shown: &str) -> Result<PathBuf, ArchiveError> {
    let mut rel = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => rel.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ArchiveError::refused(shown, "path contains \"..\""));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::refused(shown, "path is absolute"));
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(ArchiveError::refused(shown, "path is empty"));
    }
    Ok(rel)
}

fn describe(t: EntryType) -> String {
    match t {
        EntryType::Char => "character device".to_string(),
        EntryType::Block => "block device".to_string(),
        EntryType::Fifo => "fifo".to_string(),
        other => format!("{other:?}"),
    }
}
