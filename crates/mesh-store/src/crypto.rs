//! Sealing of secret values at rest with the platform's master key.
//!
//! A sealed value is `version (1 byte) || ... || nonce (24 bytes) || ciphertext+tag`.
//! XChaCha20-Poly1305 takes 24-byte random nonces, large enough that random nonces never collide
//! in practice, so no nonce counter has to be kept in step with the database.
//!
//! - Format 1, `1 || nonce || ciphertext+tag`: the associated data names only the [`Purpose`].
//!   Provider secrets and certificate keys use it; config values did before schema version 2,
//!   whose migration reseals them in format 2.
//! - Format 2, `2 || key id (8 bytes) || nonce || ciphertext+tag`: the associated data is an
//!   [`Owner`], the purpose and every part of the row's identity (for a config value: environment,
//!   stack, scope and key), so a ciphertext copied to another row fails to open. The key id (the
//!   first 8 bytes of SHA-256 over a label and the master key) tells a wrong master key apart
//!   from a value sealed for another owner.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::{StoreError, StoreResult};

/// Length of a master key, in bytes.
pub const KEY_LEN: usize = 32;
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const NONCE_LEN: usize = 24;
const KEY_ID_LEN: usize = 8;

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
    Kubeconfig,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Config => b"widemesh config value",
            Purpose::ProviderSecret => b"widemesh provider secret",
            Purpose::CertificateKey => b"widemesh certificate key",
            Purpose::Kubeconfig => b"widemesh rack kubeconfig",
        }
    }
}

/// Who a format-2 sealed value belongs to: its purpose and the parts that name its row, in an
/// encoding where no two different owners give the same bytes. Every part is a presence byte
/// (0 absent, 1 present) followed, when present, by its length (4 bytes, big-endian) and its
/// bytes, after a fixed label and the purpose, so `("ab", "c")` and `("a", "bc")` differ and an
/// absent part differs from an empty one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner(Vec<u8>);

const OWNER_LABEL: &[u8] = b"widemesh sealed value v2";

impl Owner {
    pub(crate) fn new(purpose: Purpose) -> Owner {
        let mut owner = Owner(Vec::with_capacity(128));
        owner.0.extend_from_slice(OWNER_LABEL);
        owner.put(Some(purpose.aad()));
        owner
    }

    /// The owner of a config value: environment, stack, scope (service, region, rack) and key.
    pub(crate) fn config(
        env: &str,
        stack: &str,
        service: Option<&str>,
        region: Option<&str>,
        rack: Option<&str>,
        key: &str,
    ) -> Owner {
        Owner::new(Purpose::Config)
            .part(Some(env))
            .part(Some(stack))
            .part(service)
            .part(region)
            .part(rack)
            .part(Some(key))
    }

    pub(crate) fn part(mut self, value: Option<&str>) -> Owner {
        self.put(value.map(str::as_bytes));
        self
    }

    fn put(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.0.push(0),
            Some(bytes) => {
                // Parts are names and keys, far below 4 GiB; a longer one could not be stored.
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                self.0.push(1);
                self.0.extend_from_slice(&len.to_be_bytes());
                self.0.extend_from_slice(bytes);
            }
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Why a format-2 value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Sealed with another master key, or not a sealed value at all: [`StoreError::Crypto`].
    WrongKey,
    /// Sealed in format 1, without its owner: written by a mesh older than schema version 2.
    Unbound,
    /// The key is right but the tag is not: the value was sealed for another owner (copied from
    /// another row) or damaged.
    OtherOwner,
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

    /// A fresh random nonce and `plaintext` encrypted under it with `aad`.
    fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> StoreResult<([u8; NONCE_LEN], Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Crypto)?;
        Ok((nonce, ciphertext))
    }

    /// `nonce || ciphertext+tag` decrypted with `aad`; `None` if the tag does not verify. The
    /// caller has checked `sealed` holds at least a nonce.
    fn decrypt(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }

    pub(crate) fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        let (nonce, ciphertext) = self.encrypt(purpose.aad(), plaintext)?;
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
        self.decrypt(purpose.aad(), rest).ok_or(StoreError::Crypto)
    }

    pub(crate) fn seal_str(&self, purpose: Purpose, plaintext: &str) -> StoreResult<Vec<u8>> {
        self.seal(purpose, plaintext.as_bytes())
    }

    pub(crate) fn open_str(&self, purpose: Purpose, sealed: &[u8]) -> StoreResult<String> {
        String::from_utf8(self.open(purpose, sealed)?).map_err(|_| StoreError::Crypto)
    }

    /// Whether `sealed` is in format 1 (bound to its purpose only).
    pub(crate) fn is_format_v1(sealed: &[u8]) -> bool {
        sealed.first() == Some(&FORMAT_V1)
    }

    /// Seals `plaintext` in format 2, bound to `owner`.
    pub(crate) fn seal_for(&self, owner: &Owner, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        let (nonce, ciphertext) = self.encrypt(owner.bytes(), plaintext)?;
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V2);
        out.extend_from_slice(&self.id());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a format-2 value sealed for `owner`.
    pub(crate) fn open_for(&self, owner: &Owner, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let rest = match sealed.split_first() {
            Some((&FORMAT_V2, rest)) if rest.len() >= KEY_ID_LEN + NONCE_LEN => rest,
            Some((&FORMAT_V1, _)) => return Err(OpenError::Unbound),
            _ => return Err(OpenError::WrongKey),
        };
        let (id, rest) = rest.split_at(KEY_ID_LEN);
        if id != self.id() {
            return Err(OpenError::WrongKey);
        }
        self.decrypt(owner.bytes(), rest)
            .ok_or(OpenError::OtherOwner)
    }

    pub(crate) fn seal_str_for(&self, owner: &Owner, plaintext: &str) -> StoreResult<Vec<u8>> {
        self.seal_for(owner, plaintext.as_bytes())
    }

    /// Opens a format-2 value as text; invalid UTF-8 under a valid tag cannot be written by
    /// this code, so it counts as damage.
    pub(crate) fn open_str_for(&self, owner: &Owner, sealed: &[u8]) -> Result<String, OpenError> {
        String::from_utf8(self.open_for(owner, sealed)?).map_err(|_| OpenError::OtherOwner)
    }

    /// Names the key without revealing it: the first bytes of a hash over a label and the key.
    fn id(&self) -> [u8; KEY_ID_LEN] {
        let digest = Sha256::new()
            .chain_update(b"widemesh master key id\0")
            .chain_update(self.0)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
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
