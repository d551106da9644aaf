//! The last desired state, kept on disk so instances keep running and are re-adopted when the
//! control plane is down or the agent restarts. It holds config values, so it is sealed with a
//! key of the agent's own (XChaCha20-Poly1305), written atomically.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use mesh_types::desired::DesiredState;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: damaged or sealed with another key")]
    Sealed(PathBuf),
}

pub struct StateCache {
    path: PathBuf,
    dir: PathBuf,
    cipher: XChaCha20Poly1305,
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl StateCache {
    /// Opens the cache in `dir`, making the agent's key on first use.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join("agent.key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == KEY_LEN => k,
            Ok(_) => return Err(CacheError::Sealed(key_path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; KEY_LEN];
                getrandom::fill(&mut k).map_err(|e| CacheError::Io {
                    path: key_path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                write_private(&key_path, &k).map_err(io(&key_path))?;
                k
            }
            Err(e) => {
                return Err(CacheError::Io {
                    path: key_path,
                    source: e,
                });
            }
        };
        let cipher =
            XChaCha20Poly1305::new_from_slice(&key).map_err(|_| CacheError::Sealed(key_path))?;
        Ok(Self {
            path: dir.join("desired.sealed"),
            dir: dir.to_path_buf(),
            cipher,
        })
    }

    pub fn save(&self, state: &DesiredState) -> Result<(), CacheError> {
        self.seal_to(&self.path, state)
    }

    /// The last saved state; none before the first save.
    pub fn load(&self) -> Result<Option<DesiredState>, CacheError> {
        self.open_from(&self.path)
    }

    /// Keeps `value` sealed in `<dir>/<name>.sealed` (a Kubernetes agent's rack and cluster).
    pub fn save_named<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), CacheError> {
        self.seal_to(&self.dir.join(format!("{name}.sealed")), value)
    }

    /// What [`StateCache::save_named`] kept under `name`; none before it did.
    pub fn load_named<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, CacheError> {
        self.open_from(&self.dir.join(format!("{name}.sealed")))
    }

    fn seal_to<T: serde::Serialize>(&self, path: &Path, value: &T) -> Result<(), CacheError> {
        let path = path.to_path_buf();
        let plain = serde_json::to_vec(value).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| CacheError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| CacheError::Sealed(path.clone()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        write_private(&path, &bytes).map_err(|source| CacheError::Io { path, source })
    }

    fn open_from<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, CacheError> {
        let path = path.to_path_buf();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        if bytes.len() < NONCE_LEN {
            return Err(CacheError::Sealed(path.clone()));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| CacheError::Sealed(path.clone()))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| CacheError::Sealed(path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use mesh_types::Name;

    use super::*;

    #[test]
    fn state_round_trips_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StateCache::open(dir.path()).unwrap();
        assert!(cache.load().unwrap().is_none());
        let state = DesiredState {
            rack: Name::parse("local").unwrap(),
            region: Name::parse("secret-region-marker").unwrap(),
            server_salt: None,
            environments: vec![],
        };
        cache.save(&state).unwrap();
        let raw = std::fs::read(dir.path().join("desired.sealed")).unwrap();
        assert!(
            !raw.windows(20).any(|w| w == b"secret-region-marker"),
            "the cache is sealed"
        );
        assert_eq!(
            StateCache::open(dir.path()).unwrap().load().unwrap(),
            Some(state)
        );
        std::fs::write(dir.path().join("agent.key"), [7u8; 32]).unwrap();
        assert!(matches!(
            StateCache::open(dir.path()).unwrap().load(),
            Err(CacheError::Sealed(_))
        ));
    }
}
