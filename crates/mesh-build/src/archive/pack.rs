use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use ignore::WalkBuilder;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::{ALWAYS_EXCLUDED, ArchiveError, MESHIGNORE, PackedSource, normalized_mode};
use crate::untar::path::check_link;

enum Kind {
    Dir,
    File { executable: bool },
    Symlink(PathBuf),
}

struct Item {
    /// Relative path with `/` separators, the archive name and the sort key.
    name: String,
    path: PathBuf,
    kind: Kind,
}

/// Packs `dir` into a deterministic tar.gz, honouring `.gitignore` and `.meshignore`.
///
/// Entries are sorted by path and carry no timestamps, owners or permission bits beyond the
/// executable bit, so the digest depends only on names, contents and that bit.
pub fn pack(dir: &Path) -> Result<PackedSource, ArchiveError> {
    let items = collect(dir)?;
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let (mut files, mut size) = (0u64, 0u64);
    for item in &items {
        let mut header = Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let written = match &item.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", item.name), std::io::empty())
            }
            Kind::File { executable } => {
                let data = fs::read(&item.path).map_err(ArchiveError::io(&item.path))?;
                files += 1;
                size += data.len() as u64;
                header.set_entry_type(EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, &item.name, data.as_slice())
            }
            Kind::Symlink(target) => {
                header.set_entry_type(EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &item.name, target)
            }
        };
        written.map_err(ArchiveError::io(&item.path))?;
    }
    let gz = builder.into_inner().map_err(ArchiveError::io(dir))?;
    let bytes = gz.finish().map_err(ArchiveError::io(dir))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    Ok(PackedSource {
        bytes,
        digest,
        files,
        size,
    })
}

fn collect(dir: &Path) -> Result<Vec<Item>, ArchiveError> {
    let mut walker = WalkBuilder::new(dir);
    walker
        .hidden(false)
        // Only the two documented ignore files count, not ripgrep's `.ignore`.
        .ignore(false)
        .follow_links(false)
        // The tree need not be a git checkout for its .gitignore to count.
        .require_git(false)
        // Per-user ignore rules would make the archive depend on who packs it.
        .git_global(false)
        .add_custom_ignore_filename(MESHIGNORE)
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.depth() > 0 && ALWAYS_EXCLUDED.contains(&name.as_ref()))
        });
    let mut items = Vec::new();
    for entry in walker.build() {
        let entry = entry?;
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path().to_path_buf();
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let meta = fs::symlink_metadata(&path).map_err(ArchiveError::io(&path))?;
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(ArchiveError::io(&path))?;
            if let Err(reason) = check_link(rel, &target) {
                return Err(ArchiveError::LinkRefused {
                    link: name,
                    target: target.to_string_lossy().into_owned(),
                    reason,
                });
            }
            Kind::Symlink(target)
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                executable: normalized_mode(meta.permissions().mode()) == 0o755,
            }
        } else {
            return Err(ArchiveError::UnsupportedFile { path: name });
        };
        items.push(Item { name, path, kind });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}
