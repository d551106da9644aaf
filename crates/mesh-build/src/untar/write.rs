//! Writing an archive out into a new directory under [`Rules`], all or nothing.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, mknod};
use tar::EntryType;

use super::path::{check_link, entry_path, link_above};
use super::walk::{Item, walk};
use super::{Input, Limits, LinkTargets, Modes, Rules, SpecialFiles, Stats, UntarError};
use crate::layer::{OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX};

/// Unpacks `input` into `dest`, which must not exist yet, under `rules` and `limits`.
///
/// Everything is written to a staging directory beside `dest` (whose parents are created) and
/// renamed into place only when the whole archive was accepted, so a refused archive leaves
/// nothing behind.
pub fn unpack(
    input: &Input<'_>,
    dest: &Path,
    rules: &Rules,
    limits: &Limits,
) -> Result<Stats, UntarError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(UntarError::DestinationExists(dest.to_path_buf()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(UntarError::io(parent))?;
    // Dropping the TempDir on any error path removes the partial tree.
    let staging = tempfile::Builder::new()
        .prefix(".mesh-untar-")
        .tempdir_in(parent)
        .map_err(UntarError::io(parent))?;
    let mut writer = Writer::new(staging.path(), rules);
    walk(input, rules.what, limits, |entry, item| {
        writer.entry(entry, item)
    })?;
    let stats = writer.finish()?;
    // Temporary directories are private; the tree is read by others as well.
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
        .map_err(UntarError::io(staging.path()))?;
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, dest) {
        let _ = fs::remove_dir_all(&staged);
        return Err(UntarError::io(dest)(e));
    }
    Ok(stats)
}

/// A directory's metadata, applied once all entries are written.
struct Dir {
    path: PathBuf,
    mode: u32,
    owner: (u32, u32),
}

struct Writer<'a> {
    root: &'a Path,
    rules: &'a Rules,
    stats: Stats,
    /// Symlinks this archive made, relative to the root: nothing may be written below them.
    symlinks: HashSet<PathBuf>,
    /// Applied last (deepest first) so a read-only directory does not stop its own children
    /// from being written.
    dirs: Vec<Dir>,
}

impl<'a> Writer<'a> {
    fn new(root: &'a Path, rules: &'a Rules) -> Self {
        Writer {
            root,
            rules,
            stats: Stats::default(),
            symlinks: HashSet::new(),
            dirs: Vec::new(),
        }
    }

    fn refused(&self, shown: &str, reason: impl Into<String>) -> UntarError {
        UntarError::refused(self.rules.what, shown, reason)
    }

    fn corrupt(&self) -> impl Fn(io::Error) -> UntarError {
        let what = self.rules.what;
        move |source| UntarError::Corrupt { what, source }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        item: &Item,
    ) -> Result<(), UntarError> {
        let shown = item.shown.as_str();
        let kind = entry.header().entry_type();
        let Some(rel) = &item.rel else {
            return Ok(()); // "./": the root, made by the staging directory
        };
        if kind.is_pax_global_extensions() {
            return Ok(()); // archive-wide metadata (git archive's commit id), not a file
        }
        self.check_parents(rel, shown)?;
        let out = self.root.join(rel);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(UntarError::io(parent))?;
        }
        let h = entry.header();
        let owner = self.owner(h)?;
        if self.rules.whiteouts {
            let name = rel.file_name().unwrap_or_default().to_string_lossy();
            if name == OPAQUE_MARKER {
                let dir = out.parent().unwrap_or(self.root);
                xattr::set(dir, OPAQUE_XATTR, b"y").map_err(|e| {
                    self.refused(shown, format!("cannot mark the directory opaque: {e}"))
                })?;
                self.stats.whiteouts += 1;
                return Ok(());
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                if matches!(hidden, "" | "." | "..") {
                    return Err(self.refused(shown, "a whiteout must name a file"));
                }
                return self.whiteout(&out.with_file_name(hidden), shown);
            }
        }
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&out) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(self.refused(shown, "it appears twice")),
                    Err(_) => fs::create_dir(&out).map_err(UntarError::io(&out))?,
                }
                // Source archives' directories are all 0755, whatever their header says.
                let mode = match self.rules.modes {
                    Modes::Executable => 0o755,
                    _ => h.mode().map_err(self.corrupt())?,
                };
                self.dirs.push(Dir {
                    path: out,
                    mode,
                    owner,
                });
                self.stats.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous => {
                // create_new refuses to follow or replace anything already there, such as a
                // symlink of the same name placed by an earlier entry.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .map_err(|e| self.exists_or_io(e, shown, &out))?;
                let mode = h.mode().map_err(self.corrupt())?;
                let copied = io::copy(entry, &mut file).map_err(self.corrupt())?;
                drop(file);
                self.set_metadata(&out, file_mode(self.rules.modes, mode), owner)?;
                self.stats.bytes += copied;
                self.stats.files += 1;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(self.corrupt())?
                    .ok_or_else(|| self.refused(shown, "symlink without a target"))?
                    .into_owned();
                if self.rules.link_targets == LinkTargets::InTree
                    && let Err(reason) = check_link(rel, &target)
                {
                    return Err(self.refused(
                        shown,
                        format!("symlink to {:?}: {reason}", target.to_string_lossy()),
                    ));
                }
                symlink(&target, &out).map_err(|e| self.exists_or_io(e, shown, &out))?;
                if self.rules.modes == Modes::Full {
                    set_owner(&out, owner)?;
                }
                self.symlinks.insert(rel.clone());
                self.stats.symlinks += 1;
            }
            EntryType::Link => self.hard_link(entry, &out, shown)?,
            EntryType::Char
                if self.rules.whiteouts
                    && h.device_major().ok().flatten() == Some(0)
                    && h.device_minor().ok().flatten() == Some(0) =>
            {
                return self.whiteout(&out, shown);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo
                if self.rules.special_files == SpecialFiles::Skip =>
            {
                self.stats.skipped += 1;
            }
            other => {
                return Err(self.refused(
                    shown,
                    format!(
                        "entry type {} is not accepted; only {} are",
                        describe(other),
                        self.accepted()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A hard link to a regular file this archive already wrote, never below a symlink.
    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        out: &Path,
        shown: &str,
    ) -> Result<(), UntarError> {
        if !self.rules.hard_links {
            return Err(self.refused(shown, "hard links are not accepted"));
        }
        let target = entry
            .link_name()
            .map_err(self.corrupt())?
            .ok_or_else(|| self.refused(shown, "hard link without a target"))?
            .into_owned();
        let shown_target = target.to_string_lossy().into_owned();
        let target_rel = entry_path(&target)
            .map_err(|reason| {
                self.refused(shown, format!("hard link to {shown_target:?}: {reason}"))
            })?
            .ok_or_else(|| self.refused(shown, "hard link to the root"))?;
        self.check_parents(&target_rel, shown)?;
        let src = self.root.join(&target_rel);
        match fs::symlink_metadata(&src) {
            Ok(m) if m.is_file() => {}
            _ => {
                return Err(self.refused(
                    shown,
                    format!(
                        "hard link to {shown_target:?}, not a file of this {}",
                        self.rules.what
                    ),
                ));
            }
        }
        fs::hard_link(&src, out).map_err(|e| self.exists_or_io(e, shown, out))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// An overlayfs whiteout (character device 0:0) at `out`; needs root.
    fn whiteout(&mut self, out: &Path, shown: &str) -> Result<(), UntarError> {
        mknod(out, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| match e {
            nix::errno::Errno::EEXIST => self.refused(shown, "it appears twice"),
            e => self.refused(shown, format!("cannot make the whiteout (needs root): {e}")),
        })?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Refuses a path below a symlink this archive made: writing there would go wherever the
    /// link points.
    fn check_parents(&self, rel: &Path, shown: &str) -> Result<(), UntarError> {
        match link_above(rel, |a| self.symlinks.contains(a)) {
            Some(link) => Err(self.refused(
                shown,
                format!("its parent {:?} is a symlink", link.display().to_string()),
            )),
            None => Ok(()),
        }
    }

    /// The entry's owner under [`Modes::Full`]; not read otherwise (source archives leave it
    /// blank).
    fn owner(&self, h: &tar::Header) -> Result<(u32, u32), UntarError> {
        if self.rules.modes != Modes::Full {
            return Ok((0, 0));
        }
        Ok((
            u32::try_from(h.uid().map_err(self.corrupt())?).unwrap_or(0),
            u32::try_from(h.gid().map_err(self.corrupt())?).unwrap_or(0),
        ))
    }

    fn exists_or_io(&self, e: io::Error, shown: &str, out: &Path) -> UntarError {
        if e.kind() == io::ErrorKind::AlreadyExists {
            self.refused(shown, "it appears twice")
        } else {
            UntarError::io(out)(e)
        }
    }

    /// Mode and, under [`Modes::Full`], owner of a file or directory.
    fn set_metadata(&self, path: &Path, mode: u32, owner: (u32, u32)) -> Result<(), UntarError> {
        if self.rules.modes == Modes::Full {
            set_owner(path, owner)?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(UntarError::io(path))
    }

    /// The entry types these rules accept, for a refusal.
    fn accepted(&self) -> &'static str {
        match (self.rules.hard_links, self.rules.special_files) {
            (false, SpecialFiles::Refuse) => "files, directories and symlinks",
            (true, SpecialFiles::Refuse) => "files, directories, symlinks and hard links",
            (_, SpecialFiles::Skip) => {
                "files, directories, symlinks and hard links (devices and fifos are left out)"
            }
        }
    }

    /// Applies the directories' metadata, deepest first, and returns what was written.
    fn finish(mut self) -> Result<Stats, UntarError> {
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for d in &self.dirs {
            self.set_metadata(&d.path, dir_mode(self.rules.modes, d.mode), d.owner)?;
        }
        Ok(self.stats)
    }
}

/// Owner first (chown clears setuid bits, so the mode comes after), not following symlinks.
/// Without root, files stay owned by whoever unpacks.
fn set_owner(path: &Path, (uid, gid): (u32, u32)) -> Result<(), UntarError> {
    match lchown(path, Some(uid), Some(gid)) {
        Err(e) if e.kind() != io::ErrorKind::PermissionDenied => Err(UntarError::io(path)(e)),
        _ => Ok(()),
    }
}

/// The mode a regular file gets from its header's `mode`.
pub(crate) fn file_mode(modes: Modes, mode: u32) -> u32 {
    match modes {
        Modes::Executable if mode & 0o111 != 0 => 0o755,
        Modes::Executable => 0o644,
        Modes::Permissions => mode & 0o777,
        Modes::Full => mode & 0o7777,
    }
}

/// The mode a directory gets from its header's `mode`.
pub(crate) fn dir_mode(modes: Modes, mode: u32) -> u32 {
    match modes {
        Modes::Executable => 0o755,
        Modes::Permissions => mode & 0o777,
        Modes::Full => mode & 0o7777,
    }
}

fn describe(t: EntryType) -> String {
    match t {
        EntryType::Char => "character device".to_string(),
        EntryType::Block => "block device".to_string(),
        EntryType::Fifo => "fifo".to_string(),
        EntryType::Link => "hard link".to_string(),
        other => format!("{other:?}"),
    }
}
