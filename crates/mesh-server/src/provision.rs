//! Racks whose servers the platform makes: the settings a control plane makes them with, the
//! checks on an ssh provider's secrets, and the calls into the provider drivers
//! (`mesh-provider`) when a rack is created or deleted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mesh_provider::aws::{AwsDriver, AwsSettings};
use mesh_provider::hetzner::{HetznerDriver, HetznerSettings};
use mesh_provider::ssh::{SshDriver, SshSettings};
use mesh_provider::{Bootstrap, CreateServer, Driver, MadeServer, ProviderError, pool};
use mesh_types::ErrorCode;
use mesh_types::api::ProviderKind;

use crate::error::ApiError;

/// How this control plane makes servers.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The URL agents on made servers reach the control plane at (`--advertise-url`).
    pub advertise_url: String,
    /// The `mesh` binary installed on made servers: the control plane's own.
    pub binary: PathBuf,
    /// Where drivers keep their state: `<dir>/<provider>/state.json`.
    pub state_dir: PathBuf,
    /// The agents' root directory on made servers.
    pub root: String,
}

impl Provision {
    /// With the defaults: the running executable, `<data_dir>/providers`, /var/lib/widemesh.
    pub fn new(advertise_url: String, data_dir: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self {
            advertise_url,
            binary: std::env::current_exe()?,
            state_dir: data_dir.join("providers"),
            root: mesh_provider::bootstrap::DEFAULT_ROOT.to_string(),
        })
    }
}

/// The provider secret holding an ssh provider's pool, one server a line.
pub const SERVERS: &str = "servers";

/// What an ssh provider needs: a private key; a user name (root if none). Its pool of servers
/// (`--server`) is optional: without one, its racks' agents are started by hand with the join
/// token; with one, creating a rack makes its server.
pub fn check_ssh_provider(secrets: &BTreeMap<String, String>) -> Result<(), String> {
    if !secrets.contains_key("private_key") {
        return Err("an ssh provider needs the secret private_key (`--secret-file private_key=~/.ssh/id_ed25519`)".into());
    }
    let servers = pool_of(secrets).map_err(|e| e.to_string())?;
    if secrets.contains_key(SERVERS) && servers.is_empty() {
        return Err("the ssh provider's pool is empty: give its servers with `--server HOST[:PORT]` (repeatable)".into());
    }
    Ok(())
}

/// Whether racks of this ssh provider get their server made (it has a pool).
pub fn has_pool(secrets: &BTreeMap<String, String>) -> bool {
    secrets.contains_key(SERVERS)
}

fn pool_of(secrets: &BTreeMap<String, String>) -> Result<Vec<pool::PoolServer>, ProviderError> {
    secrets
        .get(SERVERS)
        .map(String::as_str)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| pool::parse_server(l.trim()))
        .collect()
}

/// The secrets of an aws provider: required, then optional.
pub const AWS_SECRETS: (&[&str], &[&str]) = (
    &["access_key_id", "secret_access_key"],
    &["endpoint", "image", "subnet", "security_group", K3S_RELEASE],
);
/// The secrets of a hetzner provider: required, then optional.
pub const HETZNER_SECRETS: (&[&str], &[&str]) = (&["token"], &["endpoint", "image", K3S_RELEASE]);
/// A cloud provider's setting: where its Kubernetes racks' servers download k3s (a URL under
/// which `k3s` and `sha256sum-amd64.txt` are; the pinned GitHub release by default).
pub const K3S_RELEASE: &str = "k3s_release";

/// Where a provider's Kubernetes racks' servers download k3s.
pub fn k3s_release(secrets: &BTreeMap<String, String>) -> String {
    secret(secrets, K3S_RELEASE).unwrap_or_else(|| mesh_provider::k3s::DEFAULT_RELEASE.into())
}

/// A cloud provider's secrets: the required ones present and not empty, no unknown one.
fn check_cloud(
    kind: &str,
    (required, optional): (&[&str], &[&str]),
    secrets: &BTreeMap<String, String>,
) -> Result<(), String> {
    for r in required {
        if secrets.get(*r).is_none_or(|v| v.trim().is_empty()) {
            return Err(format!(
                "an {kind} provider needs the secret {r} (`--secret {r}=...`); it takes {}",
                required.join(", ")
            ));
        }
    }
    if let Some(k) = secrets
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
    {
        return Err(format!(
            "an {kind} provider has no secret {k:?}: it takes {} and optionally {}",
            required.join(", "),
            optional.join(", ")
        ));
    }
    for key in ["endpoint", K3S_RELEASE] {
        if let Some(e) = secrets.get(key)
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(format!(
                "the {key} {e:?} must be an http:// or https:// URL"
            ));
        }
    }
    Ok(())
}

/// Checks a new provider's secrets for its kind; the message says what is missing.
pub fn check_provider(
    kind: ProviderKind,
    secrets: &BTreeMap<String, String>,
) -> Result<(), String> {
    match kind {
        ProviderKind::Local => Ok(()),
        ProviderKind::Ssh => check_ssh_provider(secrets),
        ProviderKind::Aws => check_cloud("aws", AWS_SECRETS, secrets),
        ProviderKind::Hetzner => check_cloud("hetzner", HETZNER_SECRETS, secrets),
    }
}

/// Whether racks of a provider of `kind` with these secrets get their servers made by the
/// platform (else their agents are started by hand with the join token).
pub fn makes_servers(kind: ProviderKind, secrets: &BTreeMap<String, String>) -> bool {
    match kind {
        ProviderKind::Local => false,
        ProviderKind::Ssh => has_pool(secrets),
        ProviderKind::Aws | ProviderKind::Hetzner => true,
    }
}

/// The driver that makes the servers of provider `name` (of `kind`, with these secrets), or
/// `None` when its racks' servers are not made by the platform.
pub fn driver(
    p: &Provision,
    name: &str,
    kind: ProviderKind,
    secrets: &BTreeMap<String, String>,
) -> Result<Option<Box<dyn Driver>>, ProviderError> {
    if !makes_servers(kind, secrets) {
        return Ok(None);
    }
    match kind {
        ProviderKind::Local => Ok(None),
        ProviderKind::Ssh => Ok(Some(Box::new(ssh_driver(p, name, secrets)?))),
        ProviderKind::Aws => Ok(Some(Box::new(aws_driver(secrets)?))),
        ProviderKind::Hetzner => Ok(Some(Box::new(hetzner_driver(secrets)?))),
    }
}

fn secret(secrets: &BTreeMap<String, String>, key: &str) -> Option<String> {
    secrets
        .get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The aws driver with these secrets.
pub fn aws_driver(secrets: &BTreeMap<String, String>) -> Result<AwsDriver, ProviderError> {
    AwsDriver::new(AwsSettings {
        access_key_id: secret(secrets, "access_key_id").unwrap_or_default(),
        secret_access_key: secret(secrets, "secret_access_key").unwrap_or_default(),
        endpoint: secret(secrets, "endpoint"),
        image: secret(secrets, "image"),
        subnet: secret(secrets, "subnet"),
        security_group: secret(secrets, "security_group"),
    })
}

/// The hetzner driver with these secrets.
pub fn hetzner_driver(secrets: &BTreeMap<String, String>) -> Result<HetznerDriver, ProviderError> {
    HetznerDriver::new(HetznerSettings {
        token: secret(secrets, "token").unwrap_or_default(),
        endpoint: secret(secrets, "endpoint")
            .unwrap_or_else(|| mesh_provider::hetzner::DEFAULT_ENDPOINT.into()),
        image: secret(secrets, "image")
            .unwrap_or_else(|| mesh_provider::hetzner::DEFAULT_IMAGE.into()),
    })
}

/// The ssh driver of provider `name` with these secrets.
pub fn ssh_driver(
    p: &Provision,
    name: &str,
    secrets: &BTreeMap<String, String>,
) -> Result<SshDriver, ProviderError> {
    SshDriver::new(SshSettings {
        servers: pool_of(secrets)?,
        user: secrets
            .get("user")
            .cloned()
            .unwrap_or_else(|| "root".into()),
        private_key: secrets.get("private_key").cloned().unwrap_or_default(),
        state: p.state_dir.join(name).join("state.json"),
    })
}

/// Removes the driver state of a deleted provider.
pub fn forget(p: &Provision, provider: &str) {
    // Provider names are validated names: no separators, no `..`.
    let dir = p.state_dir.join(provider);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot remove a deleted provider's state: {e}")
        }
    }
}

/// The name of a rack's `n`th made server (from 1): a native rack's first is `<rack>-1`, and
/// each server that replaces one takes the next number.
pub fn server_name(rack: &str, n: u32) -> String {
    format!("{rack}-{n}")
}

/// Makes server `name` of `rack`, of `size`, with its agent joining with `join_token` (or, a
/// Kubernetes rack's server, running k3s as `kube` says).
pub async fn make_server(
    p: &Provision,
    driver: &dyn Driver,
    rack: &mesh_types::api::Rack,
    name: &str,
    size: &str,
    join_token: &str,
    kube: Option<mesh_provider::k3s::KubeNode>,
) -> Result<MadeServer, ProviderError> {
    let req = CreateServer {
        name: name.to_string(),
        size: size.to_string(),
        region: rack.region.to_string(),
        bootstrap: Bootstrap {
            binary: p.binary.clone(),
            api_url: p.advertise_url.clone(),
            join_token: join_token.to_string(),
            rack: rack.name.to_string(),
            root: p.root.clone(),
            http_listen: mesh_provider::bootstrap::DEFAULT_HTTP_LISTEN.into(),
            net: None,
            kube,
        },
    };
    driver.create(&req).await
}

/// The driver that makes the servers of racks of `provider`, with this control plane's
/// settings; `None` when its racks' servers are started by hand.
pub(crate) async fn rack_driver(
    state: &crate::app::AppState,
    provider: &str,
) -> crate::error::ApiResult<Option<(std::sync::Arc<Provision>, Box<dyn mesh_provider::Driver>)>> {
    let kind = state.store().get_provider(provider).await?.kind;
    let secrets = state.store().provider_secrets(provider).await?;
    if !makes_servers(kind, &secrets) {
        return Ok(None);
    }
    let p = state.provision().ok_or_else(|| {
        ApiError::not_available(
            "this control plane makes no servers: start it with `mesh up` or `mesh server` (and --advertise-url)",
        )
    })?;
    let driver = driver(&p, provider, kind, &secrets)
        .map_err(api_error)?
        .ok_or_else(|| {
            ApiError::new(
                mesh_types::ErrorCode::Internal,
                "the provider makes servers but has no driver",
            )
        })?;
    Ok(Some((p, driver)))
}

/// A driver's error as the API answers it.
pub fn api_error(e: ProviderError) -> ApiError {
    let code = match &e {
        ProviderError::BadCredentials(_)
        | ProviderError::UnknownRegion { .. }
        | ProviderError::UnknownSize { .. }
        | ProviderError::Invalid(_) => ErrorCode::InvalidArgument,
        ProviderError::Exhausted(_) => ErrorCode::FailedPrecondition,
        ProviderError::NotFound(_) => ErrorCode::NotFound,
        ProviderError::Unreachable { .. }
        | ProviderError::HostKeyChanged { .. }
        | ProviderError::Remote { .. } => ErrorCode::Unavailable,
        ProviderError::State { .. } => {
            tracing::error!(error = %e, "provider state");
            ErrorCode::Internal
        }
    };
    ApiError::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_ssh_provider_needs_a_key_and_a_pool() {
        let e = check_ssh_provider(&secrets(&[("servers", "10.0.0.2")])).unwrap_err();
        assert!(e.contains("private_key"), "{e}");
        check_ssh_provider(&secrets(&[("private_key", "k")])).unwrap();
        assert!(!has_pool(&secrets(&[("private_key", "k")])));
        let e =
            check_ssh_provider(&secrets(&[("private_key", "k"), ("servers", " ")])).unwrap_err();
        assert!(e.contains("--server HOST[:PORT]"), "{e}");
        let e =
            check_ssh_provider(&secrets(&[("private_key", "k"), ("servers", "a b")])).unwrap_err();
        assert!(e.contains("pool server \"a b\""), "{e}");
        check_ssh_provider(&secrets(&[("private_key", "k"), ("servers", "a\nb:2222")])).unwrap();
    }

    #[test]
    fn cloud_providers_need_their_keys_and_nothing_unknown() {
        let aws = |p: &[(&str, &str)]| check_provider(ProviderKind::Aws, &secrets(p));
        let e = aws(&[("access_key_id", "a")]).unwrap_err();
        assert!(e.contains("secret_access_key"), "{e}");
        aws(&[("access_key_id", "a"), ("secret_access_key", "s")]).unwrap();
        let e = aws(&[
            ("access_key_id", "a"),
            ("secret_access_key", "s"),
            ("region", "x"),
        ])
        .unwrap_err();
        assert!(
            e.contains("\"region\"") && e.contains("security_group"),
            "{e}"
        );
        let e = aws(&[
            ("access_key_id", "a"),
            ("secret_access_key", "s"),
            ("endpoint", "localhost:5000"),
        ])
        .unwrap_err();
        assert!(e.contains("http://"), "{e}");
        let e = aws(&[
            ("access_key_id", "a"),
            ("secret_access_key", "s"),
            ("k3s_release", "mirror.local/k3s"),
        ])
        .unwrap_err();
        assert!(e.contains("the k3s_release"), "{e}");
        assert_eq!(
            k3s_release(&secrets(&[("k3s_release", " http://m/k3s ")])),
            "http://m/k3s"
        );
        assert_eq!(
            k3s_release(&BTreeMap::new()),
            mesh_provider::k3s::DEFAULT_RELEASE
        );
        let h = |p: &[(&str, &str)]| check_provider(ProviderKind::Hetzner, &secrets(p));
        let e = h(&[("token", " ")]).unwrap_err();
        assert!(e.contains("secret token"), "{e}");
        h(&[("token", "t"), ("image", "debian-12")]).unwrap();
        assert!(makes_servers(ProviderKind::Aws, &BTreeMap::new()));
        assert!(makes_servers(ProviderKind::Hetzner, &BTreeMap::new()));
    }

    #[test]
    fn driver_errors_map_to_answers_that_say_what_to_fix() {
        let e = api_error(ProviderError::Exhausted("all in use".into()));
        assert_eq!(e.code, ErrorCode::FailedPrecondition);
        assert_eq!(e.message, "all in use");
        let e = api_error(ProviderError::Unreachable {
            address: "h:22".into(),
            why: "refused".into(),
        });
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(server_name("east", 1), "east-1");
    }
}
