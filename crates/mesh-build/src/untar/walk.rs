//! Reading an archive entry by entry under the limits: the stream cap, the header window, the
//! entry count, the declared sizes and the path rules. What is done with each entry is the
//! caller's ([`super::write`] writes it out, [`crate::oci`] indexes it).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::GzDecoder;

use super::bounded::{Bounded, Guard, Trip};
use super::path::entry_path;
use super::{Limits, MAX_METADATA_BYTES, MAX_PATH_BYTES, UntarError};

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Size of a tar block: every header and every padded run of data is a multiple of it.
const BLOCK: u64 = 512;

/// What the parser may read while stepping to the next entry: the extension headers' contents
/// ([`MAX_METADATA_BYTES`]) plus their header blocks and padding (four headers at most: a long
/// name, a long link, a pax record and the entry's own, each padded) and the previous entry's
/// padding, with room to spare.
const HEADER_WINDOW: u64 = MAX_METADATA_BYTES + 16 * BLOCK;

/// Where an archive comes from.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A gzip'd tar in memory (a source archive as uploaded).
    Gzip(&'a [u8]),
    /// A file holding a tar, gzip'd or not (told by its first two bytes).
    File(&'a Path),
    /// A file holding a plain tar, never decompressed: entries' positions are the file's.
    Tar(&'a Path),
}

impl<'a> Input<'a> {
    fn open(&self) -> Result<Box<dyn Read + 'a>, UntarError> {
        match *self {
            Input::Gzip(bytes) => Ok(Box::new(GzDecoder::new(bytes))),
            Input::Tar(path) => Ok(Box::new(BufReader::new(
                File::open(path).map_err(UntarError::io(path))?,
            ))),
            Input::File(path) => {
                let mut file = File::open(path).map_err(UntarError::io(path))?;
                let mut magic = [0u8; 2];
                let gz = file.read_exact(&mut magic).is_ok() && magic == GZIP_MAGIC;
                file.seek(SeekFrom::Start(0))
                    .map_err(UntarError::io(path))?;
                let file = BufReader::new(file);
                Ok(if gz {
                    Box::new(GzDecoder::new(file))
                } else {
                    Box::new(file)
                })
            }
        }
    }
}

/// The bounded stream the tar parser reads.
pub(crate) type Reader<'a> = Bounded<Box<dyn Read + 'a>>;

/// One entry's checked path.
#[derive(Debug)]
pub(crate) struct Item {
    /// The clean relative path; `None` for the root (`./`).
    pub(crate) rel: Option<PathBuf>,
    /// The path as the archive gives it, for messages.
    pub(crate) shown: String,
}

/// Calls `visit` on every entry of `input` that passes the limits and path rules, and fails on
/// the first that does not (or that `visit` refuses). `what` names the archive in messages.
///
/// Whatever `visit` leaves unread of an entry's contents is read here before the next entry, so
/// that the header window only ever sees headers.
pub(crate) fn walk<'a>(
    input: &Input<'a>,
    what: &'static str,
    limits: &Limits,
    mut visit: impl FnMut(&mut tar::Entry<'_, Reader<'a>>, &Item) -> Result<(), UntarError>,
) -> Result<(), UntarError> {
    let (reader, guard) = Bounded::new(input.open()?, limits.stream_cap());
    let mut archive = tar::Archive::new(reader);
    let mut seen = 0u64;
    let mut declared = 0u64;
    let fail = |e: io::Error, seen: u64| classify(&guard, e, input, what, limits, seen);
    let mut entries = archive.entries().map_err(|e| fail(e, seen))?;
    loop {
        guard.open_window(HEADER_WINDOW);
        let next = entries.next();
        guard.close_window();
        let mut entry = match next {
            None => return Ok(()),
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(fail(e, seen)),
        };
        seen += 1;
        if seen > limits.max_entries {
            return Err(UntarError::TooManyEntries {
                what,
                max: limits.max_entries,
            });
        }
        let item = check(&entry, what)?;
        // Every entry's declared size counts, so a huge "directory" cannot make us inflate
        // gigabytes just to skip it.
        declared = declared.saturating_add(entry.size());
        if declared > limits.max_bytes {
            return Err(UntarError::TooLarge {
                what,
                max: limits.max_bytes,
            });
        }
        visit(&mut entry, &item).map_err(|e| reclassify(e, &guard, what, limits))?;
        io::copy(&mut entry, &mut io::sink()).map_err(|e| fail(e, seen))?;
    }
}

/// The entry's path, cleaned, and its link target's length, or a refusal naming it.
///
/// An extension header reaching here was not taken as one by the parser (it came with an
/// old-style header) and so was not read into memory; it is held to the same size as one that
/// was, so that a refusal says the same whatever the header style.
fn check<R: Read>(entry: &tar::Entry<'_, R>, what: &'static str) -> Result<Item, UntarError> {
    let t = entry.header().entry_type();
    let extension = t.is_gnu_longname()
        || t.is_gnu_longlink()
        || t.is_pax_local_extensions()
        || t.is_pax_global_extensions();
    if extension && entry.size() > MAX_METADATA_BYTES {
        return Err(UntarError::HeaderTooLarge {
            what,
            entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            size: entry.size(),
            max: MAX_METADATA_BYTES,
        });
    }
    let raw = entry
        .path()
        .map_err(|source| UntarError::Corrupt { what, source })?;
    let shown = raw.to_string_lossy().into_owned();
    let rel = entry_path(&raw).map_err(|reason| UntarError::refused(what, &shown, reason))?;
    if let Some(target) = entry.link_name_bytes()
        && target.len() > MAX_PATH_BYTES
    {
        return Err(UntarError::refused(
            what,
            &shown,
            format!(
                "link target is {} bytes long, at most {MAX_PATH_BYTES} are accepted",
                target.len()
            ),
        ));
    }
    Ok(Item { rel, shown })
}

/// A read failure that was really the stream cap says so.
fn reclassify(e: UntarError, guard: &Guard, what: &'static str, limits: &Limits) -> UntarError {
    match e {
        UntarError::Corrupt { .. } if guard.trip() == Trip::Cap => UntarError::TooLarge {
            what,
            max: limits.max_bytes,
        },
        e => e,
    }
}

/// Tells a tripped bound from a damaged archive.
fn classify(
    guard: &Rc<Guard>,
    e: io::Error,
    input: &Input<'_>,
    what: &'static str,
    limits: &Limits,
    seen: u64,
) -> UntarError {
    match guard.trip() {
        Trip::Cap => UntarError::TooLarge {
            what,
            max: limits.max_bytes,
        },
        Trip::Window => oversized_header(input, what, limits, seen),
        Trip::None => UntarError::Corrupt { what, source: e },
    }
}

/// Names the extension header that overflowed the header window before entry `seen + 1`, by
/// reading the archive again, headers only (this runs only on a refusal).
fn oversized_header(
    input: &Input<'_>,
    what: &'static str,
    limits: &Limits,
    seen: u64,
) -> UntarError {
    let fallback = UntarError::refused(
        what,
        &format!("#{}", seen + 1),
        format!("its extension headers take more than {MAX_METADATA_BYTES} bytes"),
    );
    let Ok(reader) = input.open() else {
        return fallback;
    };
    let (reader, _guard) = Bounded::new(reader, limits.stream_cap());
    let mut archive = tar::Archive::new(reader);
    let Ok(entries) = archive.entries() else {
        return fallback;
    };
    // Sizes of the extension headers since the last real entry.
    let mut group = 0u64;
    for entry in entries.raw(true) {
        let Ok(entry) = entry else {
            break;
        };
        let t = entry.header().entry_type();
        if !(t.is_gnu_longname() || t.is_gnu_longlink() || t.is_pax_local_extensions()) {
            group = 0;
            continue;
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        group = group.saturating_add(size);
        if group > MAX_METADATA_BYTES {
            return UntarError::HeaderTooLarge {
                what,
                entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                size,
                max: MAX_METADATA_BYTES,
            };
        }
    }
    fallback
}
