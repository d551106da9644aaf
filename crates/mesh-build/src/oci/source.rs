//! Reading named files of an archive, whether it is a directory or a tar (gzip'd or not).
//!
//! A tar is indexed once (name → offset and size of the data, or a symlink's target) and files
//! are then read in place by seeking, so a multi-gigabyte archive is never unpacked to disk.
//! Names are clean relative paths; a name that tries to leave the archive is refused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use super::{MAX_JSON_BYTES, OciError};

/// Most symlinks followed for one name (docker-archive links `<id>/layer.tar` to the layer).
const MAX_HOPS: usize = 8;

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

/// `a/./b` → `a/b`; `None` for absolute paths and `..`.
fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
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
            let mut dec = GzDecoder::new(File::open(path).map_err(OciError::io(path))?);
            io::copy(&mut dec, tmp.as_file_mut()).map_err(|e| OciError::NotAnImage {
                path: path.to_path_buf(),
                reason: format!("it looks gzip'd but does not decompress: {e}"),
            })?;
            (tmp.path().to_path_buf(), Some(tmp))
        } else {
            (path.to_path_buf(), None)
        };
        let items = index(&file).map_err(|e| OciError::NotAnImage {
            path: path.to_path_buf(),
            reason: format!("it is not a tar archive ({e})"),
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

fn index(file: &Path) -> io::Result<HashMap<String, Item>> {
    let mut archive = tar::Archive::new(File::open(file)?);
    let mut items = HashMap::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let Some(name) = clean(&entry.path()?.to_string_lossy()) else {
            continue;
        };
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
            && let Some(target) = entry.link_name()?
        {
            items.insert(name, Item::Link(target.to_string_lossy().into_owned()));
        }
    }
    Ok(items)
}
