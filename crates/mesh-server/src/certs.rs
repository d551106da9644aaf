//! Uploaded certificates: PEM files in the layouts web servers accept (cert + key, full chain +
//! key, one PEM with chain and key, cert + CA intermediate + key; the key always last), checked
//! before they are stored: the key matches the leaf, the chain is in order, the dates are valid.

use std::sync::Arc;

use mesh_types::UnixMs;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use rustls::sign::SigningKey;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::X509Certificate;

/// A checked upload, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCertificate {
    pub fingerprint: String,
    pub domains: Vec<String>,
    pub issuer: String,
    pub not_before: UnixMs,
    pub not_after: UnixMs,
    /// The certificates, leaf first, as PEM.
    pub chain_pem: String,
    pub key_pem: String,
}

/// Why an upload was refused, in words that say what to upload instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error(
        "give 1 to 4 PEM files: the certificate (or full chain), any CA intermediates, then the private key"
    )]
    FileCount,
    #[error("a PEM header is not closed with -----")]
    UnclosedHeader,
    #[error("the PEM block {0} has no END line")]
    NoEnd(String),
    #[error("the PEM block {0} is empty")]
    EmptyBlock(String),
    #[error("the PEM block {label} is damaged: {reason}")]
    DamagedBlock { label: String, reason: String },
    #[error("the private key is encrypted; upload it without a passphrase")]
    EncryptedKey,
    #[error("unsupported key type {0:?}")]
    KeyType(String),
    /// The file at this place (from 1) holds nothing PEM.
    #[error("file {0} holds no PEM block")]
    NoBlock(usize),
    #[error("the private key must come last: list the certificate files first, then the key")]
    KeyNotLast,
    #[error("more than one private key was given")]
    TwoKeys,
    #[error("unexpected PEM block {0:?}: only certificates and a private key are accepted")]
    UnexpectedBlock(String),
    #[error("no private key was given: add the key file last")]
    NoKey,
    #[error("no certificate was given")]
    NoCertificate,
    /// The certificate at this place in the chain (from 1) is not X.509.
    #[error("certificate {index} cannot be read: {reason}")]
    Unreadable { index: usize, reason: String },
    /// Certificate `index` (from 1) was not issued by the next one.
    #[error(
        "certificate {index} ({subject}) was not issued by certificate {} ({next}): put the chain in order, leaf first",
        .index + 1
    )]
    ChainOrder {
        index: usize,
        subject: String,
        next: String,
    },
    #[error("the certificate is not valid until {0}")]
    NotYetValid(String),
    #[error("the certificate expired on {0}")]
    Expired(String),
    #[error("the private key cannot be used: {0}")]
    UnusableKey(String),
    #[error("the private key's public half cannot be derived")]
    NoPublicKey,
    #[error("the private key does not match the certificate ({0})")]
    KeyMismatch(String),
    #[error("the certificate names no domain (no DNS subject alternative name or common name)")]
    NoDomain,
}

/// One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, ...) and its text.
struct Block {
    label: String,
    text: String,
}

fn blocks(file: &str) -> Result<Vec<Block>, CertError> {
    let mut out = Vec::new();
    let mut rest = file;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or(CertError::UnclosedHeader)?;
        let label = after[..label_end].to_string();
        let end_marker = format!("-----END {label}-----");
        let end = rest[start..]
            .find(&end_marker)
            .ok_or_else(|| CertError::NoEnd(label.clone()))?;
        let stop = start + end + end_marker.len();
        out.push(Block {
            label,
            text: format!("{}\n", &rest[start..stop]),
        });
        rest = &rest[stop..];
    }
    Ok(out)
}

fn decode(block: &Block) -> Result<Vec<u8>, CertError> {
    let pem = Pem::iter_from_buffer(block.text.as_bytes())
        .next()
        .ok_or_else(|| CertError::EmptyBlock(block.label.clone()))?
        .map_err(|e| CertError::DamagedBlock {
            label: block.label.clone(),
            reason: e.to_string(),
        })?;
    Ok(pem.contents)
}

fn key_der(label: &str, der: Vec<u8>) -> Result<PrivateKeyDer<'static>, CertError> {
    Ok(match label {
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        "ENCRYPTED PRIVATE KEY" => return Err(CertError::EncryptedKey),
        other => return Err(CertError::KeyType(other.to_string())),
    })
}

fn describe(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(|cn| format!("CN={cn}"))
        .unwrap_or_else(|| cert.subject().to_string())
}

/// Checks the uploaded files, given in command-line order, at time `now`.
pub fn parse_upload(files: &[String], now: UnixMs) -> Result<ParsedCertificate, CertError> {
    if files.is_empty() || files.len() > 4 {
        return Err(CertError::FileCount);
    }
    let mut cert_blocks = Vec::new();
    let mut key: Option<Block> = None;
    for (i, file) in files.iter().enumerate() {
        let found = blocks(file)?;
        if found.is_empty() {
            return Err(CertError::NoBlock(i + 1));
        }
        for b in found {
            if b.label.ends_with("PRIVATE KEY") {
                if i != files.len() - 1 {
                    return Err(CertError::KeyNotLast);
                }
                if key.is_some() {
                    return Err(CertError::TwoKeys);
                }
                key = Some(b);
            } else if b.label == "CERTIFICATE" {
                if key.is_some() && files.len() > 1 {
                    return Err(CertError::KeyNotLast);
                }
                cert_blocks.push(b);
            } else {
                return Err(CertError::UnexpectedBlock(b.label));
            }
        }
    }
    let key = key.ok_or(CertError::NoKey)?;
    if cert_blocks.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let ders: Vec<Vec<u8>> = cert_blocks.iter().map(decode).collect::<Result<_, _>>()?;
    let mut certs = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        let (_, c) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Unreadable {
                index: i + 1,
                reason: e.to_string(),
            })?;
        certs.push(c);
    }
    for i in 0..certs.len() - 1 {
        if certs[i].issuer().as_raw() != certs[i + 1].subject().as_raw() {
            return Err(CertError::ChainOrder {
                index: i + 1,
                subject: describe(&certs[i]),
                next: describe(&certs[i + 1]),
            });
        }
    }
    let leaf = &certs[0];
    let not_before = leaf.validity().not_before.timestamp() * 1000;
    let not_after = leaf.validity().not_after.timestamp() * 1000;
    if now < not_before {
        return Err(CertError::NotYetValid(
            leaf.validity().not_before.to_string(),
        ));
    }
    if now > not_after {
        return Err(CertError::Expired(leaf.validity().not_after.to_string()));
    }
    let signer: Arc<dyn SigningKey> = any_supported_type(&key_der(&key.label, decode(&key)?)?)
        .map_err(|e| CertError::UnusableKey(e.to_string()))?;
    let public = signer.public_key().ok_or(CertError::NoPublicKey)?;
    if public.as_ref() != leaf.public_key().raw {
        return Err(CertError::KeyMismatch(describe(leaf)));
    }
    let mut domains: Vec<String> = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(d) = name {
                domains.push(d.to_ascii_lowercase());
            }
        }
    }
    if domains.is_empty() {
        domains.extend(
            leaf.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    if domains.is_empty() {
        return Err(CertError::NoDomain);
    }
    Ok(ParsedCertificate {
        fingerprint: hex::encode(Sha256::digest(&ders[0])),
        domains,
        issuer: leaf.issuer().to_string(),
        not_before,
        not_after,
        chain_pem: cert_blocks.iter().map(|b| b.text.as_str()).collect(),
        key_pem: key.text,
    })
}

#[cfg(test)]
#[path = "certs/tests.rs"]
mod tests;
