//! TLS termination: certificates chosen by SNI from a hot-swappable set, ALPN h2 + http/1.1.
//!
//! The `ServerConfig` is built once; certificate updates swap the resolver's map, so new
//! handshakes see new certificates while established connections keep theirs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::CertificateConfig;
use crate::error::{CertificateError, RouterError};

#[cfg(test)]
mod tests;

/// The process-wide rustls provider if the binary installed one (it should, at the start of
/// `main`), else ring, so a forgotten install never panics the router.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Certificates by exact name and by wildcard parent (`*.example.com` -> `example.com`).
#[derive(Default)]
struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For handshakes without a usable server name.
    default: Option<Arc<CertifiedKey>>,
}

/// Picks the certificate for the SNI name of each handshake.
pub struct SniResolver {
    certs: ArcSwap<CertMap>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let certs = self.certs.load();
        f.debug_struct("SniResolver")
            .field("exact", &certs.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &certs.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for SniResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl SniResolver {
    pub fn new() -> Self {
        Self {
            certs: ArcSwap::from_pointee(CertMap::default()),
        }
    }

    /// Replaces the whole certificate set. Certificates that fail to load are left out and
    /// returned; the others apply. `default` names the domain whose certificate answers
    /// handshakes without SNI.
    pub fn replace(
        &self,
        certs: &[CertificateConfig],
        default: Option<&str>,
        provider: &CryptoProvider,
    ) -> Vec<CertificateError> {
        let mut map = CertMap::default();
        let mut errors = Vec::new();
        for cert in certs {
            let key = match load_certified_key(cert, provider) {
                Ok(k) => Arc::new(k),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for domain in &cert.domains {
                let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
                match domain.strip_prefix("*.") {
                    Some(parent) => map.wildcard.insert(parent.to_owned(), key.clone()),
                    None => map.exact.insert(domain, key.clone()),
                };
            }
        }
        if let Some(name) = default {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            map.default = map.exact.get(&name).cloned();
            if map.default.is_none() {
                errors.push(CertificateError::UnknownDefault { domain: name });
            }
        }
        self.certs.store(Arc::new(map));
        errors
    }

    /// The certificate for a server name: exact match first, then a one-label wildcard.
    pub fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        let certs = self.certs.load();
        if let Some(k) = certs.exact.get(&name) {
            return Some(k.clone());
        }
        let (_, parent) = name.split_once('.')?;
        certs.wildcard.get(parent).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name) => self.lookup(name),
            None => self.certs.load().default.clone(),
        }
    }
}

/// Loads a PEM chain (leaf first) and its private key, and checks that they match.
pub fn load_certified_key(
    cert: &CertificateConfig,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let domains = cert.domains.join(",");
    if cert.domains.is_empty() {
        return Err(CertificateError::NoDomain);
    }
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::BadChain {
            domains: domains.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertificateError::EmptyChain { domains });
    }
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).map_err(|e| {
        CertificateError::BadKey {
            domains: domains.clone(),
            reason: e.to_string(),
        }
    })?;
    let signing =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertificateError::BadKey {
                domains: domains.clone(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| CertificateError::KeyMismatch { domains })?;
    Ok(certified)
}

/// A server config resolving certificates through `resolver`, offering h2 then http/1.1.
pub fn server_config(
    resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, RouterError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RouterError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
