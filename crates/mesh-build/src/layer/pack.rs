use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use super::{LayerError, OPAQUE_MARKER, OPAQUE_XATTR, PACK_MTIME, PackOptions, WHITEOUT_PREFIX};
use crate::blobs::BlobDir;

/// Packs the tree at `dir` into a deterministic layer blob stored in `blobs`; returns its
/// digest (`sha256:<hex>` of the `.tar.gz`).
///
/// Kept: directories, regular files (modes with setuid bits, owners unless `opts.owner`),
/// symlinks as they are, hard links within the tree (the first name in walk order holds the
/// data). Skipped: sockets, fifos, device nodes, and overlayfs whiteouts and opaque markers
/// unless `opts.keep_whiteouts` turns them into OCI `.wh.` entries. Extended attributes are not
/// kept.
pub fn pack_layer(dir: &Path, opts: &PackOptions, blobs: &BlobDir) -> Result<String, LayerError> {
    let prefix = clean_prefix(opts.prefix.as_deref())?;
    fs::create_dir_all(blobs.root()).map_err(LayerError::Store)?;
    let tmp = tempfile::NamedTempFile::new_in(blobs.root()).map_err(LayerError::Store)?;
    let mut p = Packer {
        opts,
        // Fast compression: layers cross a LAN once, and packing is on every deploy's path.
        builder: tar::Builder::new(GzEncoder::new(tmp.as_file(), Compression::fast())),
        links: HashMap::new(),
    };
    let mut built = String::new();
    for part in &prefix {
        built.push_str(part);
        built.push('/');
        let meta = fs::metadata(dir).map_err(LayerError::io(dir))?;
        p.header_only(&built, EntryType::Directory, 0o755, &meta, dir)?;
    }
    p.walk(dir, Path::new(""), &built)?;
    let gz = p.builder.into_inner().map_err(LayerError::io(dir))?;
    gz.finish()
        .and_then(|mut f| f.flush())
        .map_err(LayerError::Store)?;
    blobs.put_file(tmp.path()).map_err(LayerError::Store)
}

fn clean_prefix(prefix: Option<&str>) -> Result<Vec<String>, LayerError> {
    let Some(prefix) = prefix else {
        return Ok(Vec::new());
    };
    let mut parts = Vec::new();
    for c in Path::new(prefix.trim_start_matches('/')).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(LayerError::InvalidOption(format!(
                    "prefix {prefix:?} must be a path without \"..\""
                )));
            }
        }
    }
    Ok(parts)
}

struct Packer<'a, W: Write> {
    opts: &'a PackOptions,
    builder: tar::Builder<W>,
    /// (device, inode) of files with more than one link → the name packed first.
    links: HashMap<(u64, u64), String>,
}

impl<W: Write> Packer<'_, W> {
    fn excluded(&self, rel: &Path) -> bool {
        self.opts
            .exclude
            .iter()
            .map(|e| e.trim_matches('/'))
            .any(|e| !e.is_empty() && rel.starts_with(Path::new(e)))
    }

    fn header(&self, kind: EntryType, mode: u32, meta: &fs::Metadata) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mtime(PACK_MTIME);
        h.set_mode(mode & 0o7777);
        let (uid, gid) = self.opts.owner.unwrap_or((meta.uid(), meta.gid()));
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_size(0);
        h
    }

    fn header_only(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        meta: &fs::Metadata,
        path: &Path,
    ) -> Result<(), LayerError> {
        let mut h = self.header(kind, mode, meta);
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(LayerError::io(path))
    }

    /// Packs the children of `dir` (whose path in the tree is `rel`, in the archive `base`).
    fn walk(&mut self, dir: &Path, rel: &Path, base: &str) -> Result<(), LayerError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(LayerError::io(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(LayerError::io(dir))?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let path = dir.join(&name);
            let rel = rel.join(&name);
            if self.excluded(&rel) {
                continue;
            }
            let shown = name.to_string_lossy();
            let archive_name = format!("{base}{shown}");
            let meta = fs::symlink_metadata(&path).map_err(LayerError::io(&path))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let dir_name = format!("{archive_name}/");
                self.header_only(&dir_name, EntryType::Directory, meta.mode(), &meta, &path)?;
                let opaque = xattr::get(&path, OPAQUE_XATTR)
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y");
                if opaque && self.opts.keep_whiteouts {
                    let marker = format!("{dir_name}{OPAQUE_MARKER}");
                    self.header_only(&marker, EntryType::Regular, 0o644, &meta, &path)?;
                }
                self.walk(&path, &rel, &dir_name)?;
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = self.header(EntryType::Link, meta.mode(), &meta);
                        self.builder
                            .append_link(&mut h, &archive_name, &first)
                            .map_err(LayerError::io(&path))?;
                        continue;
                    }
                    self.links.insert(key, archive_name.clone());
                }
                let mut h = self.header(EntryType::Regular, meta.mode(), &meta);
                h.set_size(meta.len());
                let f = fs::File::open(&path).map_err(LayerError::io(&path))?;
                self.builder
                    .append_data(&mut h, &archive_name, f)
                    .map_err(LayerError::io(&path))?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(LayerError::io(&path))?;
                let mut h = self.header(EntryType::Symlink, 0o777, &meta);
                self.builder
                    .append_link(&mut h, &archive_name, &target)
                    .map_err(LayerError::io(&path))?;
            } else if ft.is_char_device() && meta.rdev() == 0 && self.opts.keep_whiteouts {
                let wh = format!("{base}{WHITEOUT_PREFIX}{shown}");
                self.header_only(&wh, EntryType::Regular, 0o644, &meta, &path)?;
            }
            // Sockets, fifos and real devices are not part of an image.
        }
        Ok(())
    }
}
