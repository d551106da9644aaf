//! Sealing of secret values at rest with the platform's master key.
//!
//! A sealed value is `version (1 byte) || nonce (24 bytes) || ciphertext+tag`. XChaCha20-Poly1305
//! takes 24-byte random nonces, large enough that random nonces never collide in practice, so no
//! nonce counter has to be kept in step with the database.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::{StoreError, StoreResult};

/// Length of a master key, in bytes.
pub const KEY_LEN: usize = 32;
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key that seals secret values (config values, provider secrets, certificate keys).
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// What a sealed value is for; bound into the tag so a value cannot be moved to another kind of
/// column (a config value pasted over a certificate key fails to open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Config,
    ProviderSecret,
    CertificateKey,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Config => b"widemesh config value",
            Purpose::ProviderSecret => b"widemesh provider secret",
            Purpose::CertificateKey => b"widemesh certificate key",
        }
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A new random key.
    pub fn generate() -> StoreResult<Self> {
        let mut bytes = [0u8; KEY_LEN];
        fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new random key.
    ///
    /// The new file is written beside its final name and then linked into place, so a crash
    /// never leaves a truncated key, and two processes starting at once end up with the same
    /// key rather than each keeping the one it generated.
    pub fn load_or_create(path: &Path) -> StoreResult<Self> {
        match fs::read(path) {
            Ok(bytes) => return Self::from_file_bytes(path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_context(e, format!("cannot read {}", path.display()))),
        }
        let key = Self::generate()?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| StoreError::Invalid(format!("{} is not a file path", path.display())))?;
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            file_name.to_string_lossy(),
            hex::encode(suffix)
        ));
        let result = write_new(&tmp, &key.0).and_then(|()| publish(&tmp, path));
        let _ = fs::remove_file(&tmp);
        match result {
            Ok(true) => {
                sync_dir(dir);
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(key)
            }
            // Another process created it first: use its key.
            Ok(false) => Self::from_file_bytes(path, &fs::read(path)?),
            Err(e) => Err(io_context(e, format!("cannot create {}", path.display()))),
        }
    }

    fn from_file_bytes(path: &Path, bytes: &[u8]) -> StoreResult<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            StoreError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes, a master key has exactly {KEY_LEN}; restore the original \
                     file (secrets sealed with another key cannot be read)",
                    path.display(),
                    bytes.len()
                ),
            ))
        })?;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "master key file is readable by other users; chmod 600 it"
            );
        }
        Ok(Self(arr))
    }

    pub(crate) fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.aad(),
                },
            )
            .map_err(|_| StoreError::Crypto)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub(crate) fn open(&self, purpose: Purpose, sealed: &[u8]) -> StoreResult<Vec<u8>> {
        let rest = match sealed.split_first() {
            Some((&FORMAT_V1, rest)) if rest.len() >= NONCE_LEN => rest,
            _ => return Err(StoreError::Crypto),
        };
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.aad(),
                },
            )
            .map_err(|_| StoreError::Crypto)
    }

    pub(crate) fn seal_str(&self, purpose: Purpose, plaintext: &str) -> StoreResult<Vec<u8>> {
        self.seal(purpose, plaintext.as_bytes())
    }

    pub(crate) fn open_str(&self, purpose: Purpose, sealed: &[u8]) -> StoreResult<String> {
        String::from_utf8(self.open(purpose, sealed)?).map_err(|_| StoreError::Crypto)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.0))
    }
}

fn fill_random(buf: &mut [u8]) -> StoreResult<()> {
    getrandom::fill(buf).map_err(|e| {
        StoreError::Io(io::Error::other(format!(
            "the system random number generator failed: {e}"
        )))
    })
}

fn io_context(e: io::Error, what: String) -> StoreError {
    StoreError::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Moves `tmp` to `path` unless `path` exists; `Ok(false)` if it did.
fn publish(tmp: &Path, path: &Path) -> io::Result<bool> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // Some filesystems have no hard links; a rename is still atomic, only not exclusive.
        Err(_) => fs::rename(tmp, path).map(|()| true),
    }
}

/// Makes the new directory entry durable; best effort, as not every filesystem allows it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[path = "crypto/tests.rs"]
mod tests;
