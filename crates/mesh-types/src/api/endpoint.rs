//! Endpoints, their routes, and certificates.

use serde::{Deserialize, Serialize};

use crate::{Domain, Name, UnixMs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// `<env>.<rack domain>`, made for every rack the environment is on.
    Alias,
    /// A domain of the user's, which needs a DNS record pointing at the rack.
    Custom,
}

/// A service published on an endpoint under a path prefix; the longest prefix wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub path: String,
    pub stack: Name,
    pub service: Name,
}

/// The DNS record a custom domain needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub environment: Name,
    pub domain: Domain,
    pub kind: EndpointKind,
    /// For aliases, the rack whose domain it lies under.
    pub rack: Option<Name>,
    pub routes: Vec<Route>,
    /// Records to create at the registrar (custom domains only).
    pub dns: Vec<DnsRecord>,
    /// Plain HTTP requests are redirected to HTTPS (308), ACME challenges excepted.
    #[serde(default)]
    pub https_redirect: bool,
    pub created_at: UnixMs,
}

/// `PATCH .../endpoints/{domain}`: settings of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateEndpoint {
    pub domain: Domain,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishService {
    pub stack: Name,
    pub service: Name,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpublishService {
    pub stack: Name,
    pub service: Name,
    #[serde(default)]
    pub path: Option<String>,
}

/// Checks a route's path prefix: absolute, no query, no dot segments.
pub fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with '/'"));
    }
    if path.contains(['?', '#', ' ']) || path.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!("path {path:?} must be a plain prefix such as /api"));
    }
    if path.len() > 1024 {
        return Err("path is longer than 1024 characters".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateSource {
    Acme,
    Uploaded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateState {
    Pending,
    Issued,
    Failed,
    Expired,
}

/// A certificate as the API shows it; the private key never leaves the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    pub environment: Name,
    /// SHA-256 of the leaf certificate's DER, hex.
    pub fingerprint: String,
    pub domains: Vec<String>,
    pub source: CertificateSource,
    pub state: CertificateState,
    pub issuer: String,
    pub not_before: UnixMs,
    pub not_after: UnixMs,
    pub created_at: UnixMs,
}

/// PEM files in the order given on the command line; the private key comes last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadCertificate {
    pub files: Vec<String>,
}
