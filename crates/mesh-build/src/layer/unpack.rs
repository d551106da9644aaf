use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use nix::sys::stat::{Mode, SFlag, mknod};
use tar::EntryType;

use super::{LayerError, LayerStats, OPAQUE_MARKER, OPAQUE_XATTR, UnpackLimits, WHITEOUT_PREFIX};
use crate::bounded::Bounded;

/// Header and padding bytes allowed per entry on top of file contents.
const OVERHEAD_PER_ENTRY: u64 = 8 * 1024;

/// [`unpack_layer_with`] under the default [`UnpackLimits`].
pub fn unpack_layer(blob: &Path, dest: &Path) -> Result<LayerStats, LayerError> {
    unpack_layer_with(blob, dest, &UnpackLimits::default())
}

/// Unpacks the layer at `blob` (gzip'd or plain tar) into `dest`, which must not exist.
///
/// Kept: directories, files, symlinks (any target: they resolve inside the container's root),
/// hard links to files of this layer, modes and owners (owners only when run as root).
/// `.wh.<name>` becomes an overlayfs whiteout (character device 0:0, as does a 0:0 device
/// entry) and `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute of its directory; both
/// need root. Left out: other device nodes and fifos. Refused: absolute paths, `..`, anything
/// below a symlink of the layer, hard links leaving the tree, more than `limits` allow. Everything is written
/// into a temporary directory beside `dest` and renamed at the end, so a refusal or a crash
/// never leaves a half layer at `dest`.
pub fn unpack_layer_with(
    blob: &Path,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<LayerStats, LayerError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(LayerError::DestinationExists(dest.to_path_buf()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(LayerError::io(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".mesh-layer-")
        .tempdir_in(parent)
        .map_err(LayerError::io(parent))?;
    let stats = Unpacker::new(staging.path(), limits).run(blob)?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
        .map_err(LayerError::io(staging.path()))?;
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, dest) {
        let _ = fs::remove_dir_all(&staged);
        return Err(LayerError::io(dest)(e));
    }
    Ok(stats)
}

struct Unpacker<'a> {
    root: &'a Path,
    limits: &'a UnpackLimits,
    stats: LayerStats,
    symlinks: HashSet<PathBuf>,
    /// Directories and their metadata, applied last (deepest first) so a read-only directory
    /// does not stop its own children from being written.
    dirs: Vec<(PathBuf, u32, u32, u32)>,
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a Path, limits: &'a UnpackLimits) -> Self {
        Unpacker {
            root,
            limits,
            stats: LayerStats::default(),
            symlinks: HashSet::new(),
            dirs: Vec::new(),
        }
    }

    fn run(mut self, blob: &Path) -> Result<LayerStats, LayerError> {
        let mut file = BufReader::new(File::open(blob).map_err(LayerError::io(blob))?);
        let mut magic = [0u8; 2];
        let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        let file = BufReader::new(File::open(blob).map_err(LayerError::io(blob))?);
        let inner: Box<dyn Read> = if gz {
            Box::new(GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let cap = self.limits.max_bytes.saturating_add(
            self.limits
                .max_entries
                .saturating_add(2)
                .saturating_mul(OVERHEAD_PER_ENTRY),
        );
        let (reader, tripped) = Bounded::new(inner, cap);
        let max = self.limits.max_bytes;
        let fail = |e: io::Error| {
            if tripped.get() {
                LayerError::TooLarge { max }
            } else {
                LayerError::Corrupt(e)
            }
        };
        let mut archive = tar::Archive::new(reader);
        let mut seen = 0u64;
        for entry in archive.entries().map_err(fail)? {
            let mut entry = entry.map_err(fail)?;
            seen += 1;
            if seen > self.limits.max_entries {
                return Err(LayerError::TooManyEntries {
                    max: self.limits.max_entries,
                });
            }
            self.entry(&mut entry).map_err(|e| match e {
                LayerError::Corrupt(e) => fail(e),
                other => other,
            })?;
        }
        self.dirs
            .sort_by_key(|(p, ..)| std::cmp::Reverse(p.components().count()));
        for (path, mode, uid, gid) in &self.dirs {
            set_owner_mode(path, *uid, *gid, Some(*mode))?;
        }
        Ok(self.stats)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), LayerError> {
        let raw = entry.path().map_err(LayerError::Corrupt)?.into_owned();
        let shown = raw.to_string_lossy().into_owned();
        let Some(rel) = clean_path(&raw, &shown)? else {
            return Ok(()); // "./": the layer's root
        };
        self.check_parents(&rel, &shown)?;
        let h = entry.header();
        let declared = h.size().map_err(LayerError::Corrupt)?;
        if self.stats.bytes.saturating_add(declared) > self.limits.max_bytes {
            return Err(LayerError::TooLarge {
                max: self.limits.max_bytes,
            });
        }
        let mode = h.mode().map_err(LayerError::Corrupt)? & 0o7777;
        let uid = u32::try_from(h.uid().map_err(LayerError::Corrupt)?).unwrap_or(0);
        let gid = u32::try_from(h.gid().map_err(LayerError::Corrupt)?).unwrap_or(0);
        let out = self.root.join(&rel);
        let name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(LayerError::io(parent))?;
        }
        let kind = h.entry_type();
        if name == OPAQUE_MARKER {
            let dir = out.parent().unwrap_or(self.root);
            xattr::set(dir, OPAQUE_XATTR, b"y").map_err(|e| {
                LayerError::refused(&shown, format!("cannot mark the directory opaque: {e}"))
            })?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&out.with_file_name(hidden), &shown);
        }
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&out) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(LayerError::refused(&shown, "it appears twice")),
                    Err(_) => fs::create_dir(&out).map_err(LayerError::io(&out))?,
                }
                self.dirs.push((out, mode, uid, gid));
                self.stats.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .map_err(|e| exists_or_io(e, &shown, &out))?;
                let budget = self.limits.max_bytes - self.stats.bytes;
                let copied =
                    io::copy(&mut entry.take(budget + 1), &mut f).map_err(LayerError::Corrupt)?;
                if copied > budget {
                    return Err(LayerError::TooLarge {
                        max: self.limits.max_bytes,
                    });
                }
                drop(f);
                set_owner_mode(&out, uid, gid, Some(mode))?;
                self.stats.bytes += copied;
                self.stats.files += 1;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(LayerError::Corrupt)?
                    .ok_or_else(|| LayerError::refused(&shown, "symlink without a target"))?;
                symlink(&target, &out).map_err(|e| exists_or_io(e, &shown, &out))?;
                set_owner_mode(&out, uid, gid, None)?;
                self.symlinks.insert(rel);
                self.stats.symlinks += 1;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(LayerError::Corrupt)?
                    .ok_or_else(|| LayerError::refused(&shown, "hard link without a target"))?
                    .into_owned();
                let shown_target = target.to_string_lossy().into_owned();
                let target_rel = clean_path(&target, &shown_target)?
                    .ok_or_else(|| LayerError::refused(&shown, "hard link to the root"))?;
                self.check_parents(&target_rel, &shown)?;
                let src = self.root.join(&target_rel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(LayerError::refused(
                            &shown,
                            format!("hard link to {shown_target:?}, not a file of this layer"),
                        ));
                    }
                }
                fs::hard_link(&src, &out).map_err(|e| exists_or_io(e, &shown, &out))?;
                self.stats.hardlinks += 1;
            }
            EntryType::Char
                if h.device_major().ok().flatten() == Some(0)
                    && h.device_minor().ok().flatten() == Some(0) =>
            {
                return self.whiteout(&out, &shown);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.stats.skipped += 1;
            }
            other => {
                let what = format!("entry type {other:?}");
                return Err(LayerError::refused(
                    &shown,
                    format!("{what} is not accepted in a layer"),
                ));
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, out: &Path, shown: &str) -> Result<(), LayerError> {
        mknod(out, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| match e {
            nix::errno::Errno::EEXIST => LayerError::refused(shown, "it appears twice"),
            e => LayerError::refused(shown, format!("cannot make the whiteout (needs root): {e}")),
        })?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Refuses a path below a symlink this layer made: writing there would go wherever the
    /// link points.
    fn check_parents(&self, rel: &Path, shown: &str) -> Result<(), LayerError> {
        match rel.ancestors().skip(1).find(|a| self.symlinks.contains(*a)) {
            Some(link) => Err(LayerError::refused(
                shown,
                format!("its parent {:?} is a symlink", link.display().to_string()),
            )),
            None => Ok(()),
        }
    }
}

/// The entry's path as a clean relative path (`None` for the root itself), or a refusal.
fn clean_path(raw: &Path, shown: &str) -> Result<Option<PathBuf>, LayerError> {
    let mut rel = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => rel.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(LayerError::refused(shown, "path contains \"..\""));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(LayerError::refused(shown, "path is absolute"));
            }
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

fn exists_or_io(e: io::Error, shown: &str, out: &Path) -> LayerError {
    if e.kind() == io::ErrorKind::AlreadyExists {
        LayerError::refused(shown, "it appears twice")
    } else {
        LayerError::io(out)(e)
    }
}

/// Owner first (chown clears setuid bits), then mode; not following symlinks. Without root,
/// files stay owned by whoever unpacks.
fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: Option<u32>) -> Result<(), LayerError> {
    if let Err(e) = lchown(path, Some(uid), Some(gid))
        && e.kind() != io::ErrorKind::PermissionDenied
    {
        return Err(LayerError::io(path)(e));
    }
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(LayerError::io(path))?;
    }
    Ok(())
}
