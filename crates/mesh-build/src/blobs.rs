//! A content-addressed blob directory: `<root>/sha256/<hex>`. Source archives and image layers
//! are kept here by the control plane; a blob is written to a temporary file, checked against
//! its digest and renamed into place, so a crash never leaves a blob whose name lies.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `sha256:<64 lowercase hex>`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a well-formed `sha256:<hex>` digest.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `digest` lives (whether or not it exists); `None` for a malformed
    /// digest, so a name from a request can never reach outside the directory.
    pub fn path(&self, digest: &str) -> Option<PathBuf> {
        digest_hex(digest).map(|hex| self.root.join("sha256").join(hex))
    }

    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_some_and(|p| p.is_file())
    }

    /// Stores `bytes`, returning their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> io::Result<String> {
        let digest = digest_of(bytes);
        self.write_checked(&digest, |f| f.write_all(bytes))?;
        Ok(digest)
    }

    /// Stores what `reader` yields, returning its digest.
    pub fn put_reader(&self, reader: &mut dyn Read) -> io::Result<String> {
        let dir = self.root.join("sha256");
        fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        self.persist(tmp, &digest)?;
        Ok(digest)
    }

    /// Stores `bytes` under `digest`, refusing them if they do not hash to it.
    pub fn put_expecting(&self, digest: &str, bytes: &[u8]) -> io::Result<()> {
        if digest_hex(digest).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{digest:?} is not a sha256:<hex> digest"),
            ));
        }
        let actual = digest_of(bytes);
        if actual != digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the content hashes to {actual}, not {digest}"),
            ));
        }
        self.write_checked(digest, |f| f.write_all(bytes))
    }

    /// Stores the file at `path` (copied), returning its digest.
    pub fn put_file(&self, path: &Path) -> io::Result<String> {
        let mut f = fs::File::open(path)?;
        self.put_reader(&mut f)
    }

    /// A temporary file on the blob directory's filesystem, for [`BlobDir::put_temp`].
    pub fn temp_file(&self) -> io::Result<tempfile::NamedTempFile> {
        let dir = self.root.join("sha256");
        fs::create_dir_all(&dir)?;
        tempfile::NamedTempFile::new_in(&dir)
    }

    /// Moves a temporary file the caller wrote and hashed to `digest` into place.
    pub fn put_temp(&self, tmp: tempfile::NamedTempFile, digest: &str) -> io::Result<()> {
        if digest_hex(digest).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{digest:?} is not a sha256:<hex> digest"),
            ));
        }
        self.persist(tmp, digest)
    }

    pub fn read(&self, digest: &str) -> io::Result<Vec<u8>> {
        let path = self.path(digest).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad digest {digest:?}"),
            )
        })?;
        fs::read(path)
    }

    fn write_checked(
        &self,
        digest: &str,
        write: impl FnOnce(&mut fs::File) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.contains(digest) {
            return Ok(());
        }
        let dir = self.root.join("sha256");
        fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        write(tmp.as_file_mut())?;
        self.persist(tmp, digest)
    }

    fn persist(&self, tmp: tempfile::NamedTempFile, digest: &str) -> io::Result<()> {
        tmp.as_file().sync_all()?;
        let path = self.path(digest).expect("digest made here is well formed");
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_digest_and_refuses_lies() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        let d = blobs.put_bytes(b"hello").unwrap();
        assert_eq!(d, digest_of(b"hello"));
        assert!(blobs.contains(&d));
        assert_eq!(blobs.read(&d).unwrap(), b"hello");
        let err = blobs
            .put_expecting(&digest_of(b"other"), b"hello")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(blobs.path("sha256:../../etc/passwd").is_none());
        assert!(blobs.path("md5:abc").is_none());
        let mut r: &[u8] = b"streamed";
        assert_eq!(blobs.put_reader(&mut r).unwrap(), digest_of(b"streamed"));
    }
}
