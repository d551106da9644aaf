//! The desired state of a rack: everything an agent needs to run the environments placed on its
//! rack, resolved, nothing it must look up elsewhere. A new document replaces the old one whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{HealthCheck, ServiceKind};
use crate::size::SizeLimits;
use crate::{InstanceSize, Name, Schedule, Version};

/// Built-in images a stack can run before builds exist.
pub const BUILTIN_IMAGES: [&str; 2] = ["busybox", "debian"];

/// What an instance's root filesystem is made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageRef {
    /// An image the agent makes itself: `busybox` (tiny) or `debian` (the base OS image).
    Builtin { name: String },
    /// An image a deployment built or imported: layers fetched from the control plane by digest.
    Built(BuiltImage),
}

/// A built or imported image: an optional built-in base, then layers (gzip'd tar blobs named by
/// their `sha256:<hex>` digest, base first, as in an OCI manifest), and how to run it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuiltImage {
    /// `sha256:<hex>` over the canonical JSON of the rest: names the image.
    pub digest: String,
    /// A built-in image (`debian`) under the layers; `None` for images made `FROM scratch` or
    /// imported whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub layers: Vec<String>,
    #[serde(default)]
    pub config: ImageConfig,
}

/// How an image runs: the OCI image config fields the platform honours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Exec form; run with `cmd` appended when a service has no command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Exec form; what a service without a command runs (after the entrypoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// Variables the image sets; a service's config overrides them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Where commands start; `/` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Scripts under this directory (`*.sh`) are sourced before a service's command, as the
    /// Heroku buildpack interface's `.profile.d` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_dir: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if BUILTIN_IMAGES.contains(&s) {
            Ok(ImageRef::Builtin {
                name: s.to_string(),
            })
        } else {
            Err(format!(
                "image {s:?} is unknown; use one of: {}",
                BUILTIN_IMAGES.join(", ")
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredState {
    pub rack: Name,
    pub region: Name,
    pub environments: Vec<EnvironmentDoc>,
    /// Set on a server that replaced another of its rack (`mesh rack upgrade`/`resize`): it
    /// goes into its instances' generation, so their ids differ from the replaced server's
    /// while both run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_salt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDoc {
    pub environment: Name,
    pub stacks: Vec<StackDoc>,
    /// Host and path prefix to service, for the rack's router.
    pub routes: Vec<RouteDoc>,
    /// Hosts whose plain HTTP requests the router redirects to HTTPS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub https_redirects: Vec<String>,
    /// Issued certificates of the environment, for the router to pick by SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateDoc>,
    /// HTTP-01 answers for the control plane's ACME orders in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acme_challenges: Vec<AcmeChallengeDoc>,
    /// The environment runs on other racks too: the agent names its rack in instance ids so
    /// they stay unique across the environment (left out, and ids unchanged, on one rack).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub several_racks: bool,
    /// This rack is leaving the environment and the remaining racks are healthy: its router
    /// sends the environment's hosts to their routers (`ip:port`) instead of its own instances,
    /// which keep running until the drain grace ends and the environment leaves the document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_to: Vec<String>,
    /// Racks the environment is leaving forward its hosts to this rack from these router
    /// addresses (`ip:port`): this rack's router trusts their forwarding headers meanwhile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded_from: Vec<String>,
}

/// A certificate chain and its private key. Secret: the agent keeps it sealed at rest.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDoc {
    pub domains: Vec<String>,
    /// Leaf first, then intermediates.
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateDoc {
    // Keeps private keys out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateDoc")
            .field("domains", &self.domains)
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The answer a router gives to `GET /.well-known/acme-challenge/{token}` on plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallengeDoc {
    pub token: String,
    pub key_authorization: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackDoc {
    pub name: Name,
    pub deployment: Option<Version>,
    /// None: the stack has nothing to run yet; its services get no instances.
    pub image: Option<ImageRef>,
    pub services: Vec<ServiceDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDoc {
    pub name: Name,
    pub kind: ServiceKind,
    pub hostname: String,
    pub command: Option<String>,
    pub schedule: Option<Schedule>,
    pub port: u16,
    pub instances: u32,
    pub size: InstanceSize,
    pub limits: SizeLimits,
    pub health: HealthCheck,
    /// Resolved config for this rack, `PORT` included. Secret: sealed at rest by the agent.
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDoc {
    pub host: String,
    pub path: String,
    pub stack: Name,
    pub service: Name,
}

/// One line of the watch stream: a snapshot, or a keep-alive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchEvent {
    Snapshot {
        digest: String,
        state: DesiredState,
    },
    KeepAlive,
    /// Something to do now on one server: a one-off run or an exec.
    Task {
        task: crate::agent::Task,
    },
}
