//! Copying one layer into the blob directory as a gzip'd tar, checking the digests the archive
//! states for it.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::OciError;
use crate::blobs::{BlobDir, digest_of};

/// Digests a layer must have.
#[derive(Debug, Default)]
pub(crate) struct Expect {
    /// Of the bytes as stored in the archive (an OCI descriptor's digest).
    pub stored: Option<String>,
    /// Of the uncompressed tar (an image config's `diff_ids`).
    pub uncompressed: Option<String>,
}

pub(crate) fn verify(name: &str, expected: &str, bytes: &[u8]) -> Result<(), OciError> {
    let actual = digest_of(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(OciError::DigestMismatch {
            name: name.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn hex_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

fn check(name: &str, expected: &Option<String>, actual: &str) -> Result<(), OciError> {
    match expected {
        Some(e) if e != actual => Err(OciError::DigestMismatch {
            name: name.to_string(),
            expected: e.clone(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Stores the layer read from `reader` (named `name` in errors) and returns its blob digest.
pub(crate) fn store_layer(
    reader: Box<dyn Read>,
    name: &str,
    expect: &Expect,
    blobs: &BlobDir,
) -> Result<String, OciError> {
    let mut reader = BufReader::new(reader);
    let head = {
        use std::io::BufRead;
        reader.fill_buf().map_err(OciError::Store)?.to_vec()
    };
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(OciError::Unsupported(format!(
            "{name}: zstd-compressed layers are not supported; push the image with gzip layers"
        )));
    }
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    std::fs::create_dir_all(blobs.root()).map_err(OciError::Store)?;
    let mut tmp = tempfile::NamedTempFile::new_in(blobs.root()).map_err(OciError::Store)?;
    let mut src = Hashing {
        inner: reader,
        hasher: Sha256::new(),
    };
    let read_err = |e: io::Error| OciError::malformed(name, format!("reading it: {e}"));
    if gzip {
        io::copy(&mut src, tmp.as_file_mut()).map_err(read_err)?;
        check(name, &expect.stored, &hex_digest(src.hasher))?;
        if expect.uncompressed.is_some() {
            let f = tmp.as_file_mut();
            f.seek(SeekFrom::Start(0)).map_err(OciError::Store)?;
            let mut plain = Hashing {
                inner: GzDecoder::new(BufReader::new(&*f)),
                hasher: Sha256::new(),
            };
            io::copy(&mut plain, &mut io::sink()).map_err(read_err)?;
            check(name, &expect.uncompressed, &hex_digest(plain.hasher))?;
        }
    } else {
        let mut gz = GzEncoder::new(tmp.as_file_mut(), Compression::default());
        io::copy(&mut src, &mut gz).map_err(read_err)?;
        gz.finish()
            .and_then(|f| f.flush())
            .map_err(OciError::Store)?;
        let actual = hex_digest(src.hasher);
        check(name, &expect.stored, &actual)?;
        check(name, &expect.uncompressed, &actual)?;
    }
    let path = tmp.path().to_path_buf();
    let digest = blobs.put_file(&path).map_err(OciError::Store)?;
    Ok(digest)
}
