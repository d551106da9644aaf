//! Reading named files of an archive, whether it is a directory or a tar (gzip'd or not).
//!
//! A tar is indexed once (name → offset and size of the data, or a symlink's target) and files
//! are then read in place by seeking, so a multi-gigabyte archive is never unpacked to disk.
//! The index is read by [`crate::untar`]'s reader, under [`ARCHIVE_LIMITS`] and its path rules:
//! an entry whose name tries to leave the archive refuses the archive. Names asked for are
//! cleaned by the same rules.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use super::{MAX_JSON_BYTES, OciError};
use crate::untar::path::entry_path;
use crate::untar::{self, Input, Limits, UntarError};

/// Most symlinks followed for one name (docker-archive links `<id>/layer.tar` to the layer).
const MAX_HOPS: usize = 8;

/// Bounds on an image archive's tar. Bytes: eight layers as large as layer unpacking accepts
/// by default (8 GiB each), far above real images; it also bounds what a compression bomb can
/// write into the decompressed copy. Entries: an archive holds a few per layer, so a hundred
/// thousand is far above any image and keeps the index small.
pub(crate) const ARCHIVE_LIMITS: Limits = Limits {
    max_bytes: 64 << 30,
    max_entries: 100_000,
};

/// How an image archive is named in the reader's messages.
const WHAT: &str = "image archive";

#[derive(Debug)]
pub(crate) enum Item {
    File { offset: u64, size: u64 },
    Link(String),
}

#[derive(Debug)]
pub(crate) enum Source {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        items: HashMap<String, Item>,
        /// The decompressed copy of a gzip'd tar, removed on drop.
        _tmp: Option<tempfile::NamedTempFile>,
    },
}

/// `a/./b` → `a/b`; `None` for the root and for names the reader refuses (absolute, `..`).
fn clean(name: &str) -> Option<String> {
    let rel = entry_path(Path::new(name)).ok()??;
    Some(rel.to_string_lossy().into_owned())
}

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Self, OciError> {
        let meta = std::fs::metadata(path).map_err(OciError::io(path))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let mut f = File::open(path).map_err(OciError::io(path))?;
        let mut magic = [0u8; 2];
        let gz = f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        let (file, tmp) = if gz {
            let mut tmp = tempfile::NamedTempFile::new().map_err(OciError::io(path))?;
            let dec = GzDecoder::new(File::open(path).map_err(OciError::io(path))?);
            let cap = ARCHIVE_LIMITS.stream_cap();
            let copied = io::copy(&mut dec.take(cap.saturating_add(1)), tmp.as_file_mut())
                .map_err(|e| OciError::NotAnImage {
                    path: path.to_path_buf(),
                    reason: format!("it looks gzip'd but does not decompress: {e}"),
                })?;
            if copied > cap {
                return Err(UntarError::TooLarge {
                    what: WHAT,
                    max: ARCHIVE_LIMITS.max_bytes,
                }
                .into());
            }
            (tmp.path().to_path_buf(), Some(tmp))
        } else {
            (path.to_path_buf(), None)
        };
        let items = index(&file).map_err(|e| match e {
            UntarError::Corrupt { source, .. } => OciError::NotAnImage {
                path: path.to_path_buf(),
                reason: format!("it is not a tar archive ({source})"),
            },
            e => OciError::Refused(e),
        })?;
        if items.is_empty() {
            return Err(OciError::NotAnImage {
                path: path.to_path_buf(),
                reason: "it is empty or not a tar archive".into(),
            });
        }
        Ok(Source::Tar {
            file,
            items,
            _tmp: tmp,
        })
    }

    fn resolve(&self, name: &str) -> Option<(u64, u64)> {
        let Source::Tar { items, .. } = self else {
            return None;
        };
        let mut name = clean(name)?;
        for _ in 0..MAX_HOPS {
            match items.get(&name)? {
                Item::File { offset, size } => return Some((*offset, *size)),
                Item::Link(target) => {
                    let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                    name = normalize(&base.join(target))?;
                }
            }
        }
        None
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => clean(name).is_some_and(|n| d.join(n).is_file()),
            Source::Tar { .. } => self.resolve(name).is_some(),
        }
    }

    /// The file `name`, and its size.
    pub(crate) fn open_file(&self, name: &str) -> Result<(Box<dyn Read>, u64), OciError> {
        let missing = || OciError::Missing(format!("{name:?}"));
        match self {
            Source::Dir(d) => {
                let p = d.join(clean(name).ok_or_else(missing)?);
                let f = File::open(&p).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => missing(),
                    _ => OciError::io(&p)(e),
                })?;
                let size = f.metadata().map_err(OciError::io(&p))?.len();
                Ok((Box::new(f), size))
            }
            Source::Tar { file, .. } => {
                let (offset, size) = self.resolve(name).ok_or_else(missing)?;
                let mut f = File::open(file).map_err(OciError::io(file))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(OciError::io(file))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// A small file (JSON) read whole.
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>, OciError> {
        let (mut r, size) = self.open_file(name)?;
        if size > MAX_JSON_BYTES {
            return Err(OciError::malformed(
                name,
                format!("{size} bytes, at most {MAX_JSON_BYTES} are read"),
            ));
        }
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)
            .map_err(|e| OciError::malformed(name, e))?;
        Ok(buf)
    }
}

/// Lexically resolves `..` inside the archive; `None` if it climbs out.
fn normalize(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Names of the plain tar at `file` → where their data is, or where they link.
fn index(file: &Path) -> Result<HashMap<String, Item>, UntarError> {
    let mut items = HashMap::new();
    untar::walk(&Input::Tar(file), WHAT, &ARCHIVE_LIMITS, |entry, item| {
        let Some(rel) = &item.rel else {
            return Ok(());
        };
        let name = rel.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_file() {
            items.insert(
                name,
                Item::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
            );
        } else if kind.is_symlink()
            && let Some(target) = entry
                .link_name()
                .map_err(|source| UntarError::Corrupt { what: WHAT, source })?
        {
            items.insert(name, Item::Link(target.to_string_lossy().into_owned()));
        }
        Ok(())
    })?;
    Ok(items)
}
