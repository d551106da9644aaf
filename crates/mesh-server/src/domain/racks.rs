//! Racks: the rack a request asks for, with the defaults of its provider's kind, and the token
//! its agents join with.

use mesh_types::api::{CreateRack, ProviderKind, Rack, RackRuntime, RackState};
use mesh_types::{Domain, NameError, UnixMs};

/// Why a rack request cannot make a rack; every one is the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum RackError {
    #[error("--size is required for racks of this provider")]
    SizeRequired,
    #[error(
        "--domain is required: the base domain of the rack's platform aliases (a wildcard DNS record must point at the rack)"
    )]
    DomainRequired,
    #[error("--address is required: the rack's public IP address or hostname")]
    AddressRequired,
    #[error("rack size {0:?} is invalid: use the provider's size name, such as s-2vcpu-4gb")]
    BadSize(String),
    #[error("rack address {0:?} is neither an IP address nor a hostname")]
    BadAddress(String),
    #[error(
        "--kubeconfig is required for a Kubernetes rack: the kubeconfig of the cluster its agent reconciles into"
    )]
    KubeconfigRequired,
    #[error(
        "--kubeconfig is only for Kubernetes racks: add --runtime kubernetes, or leave the kubeconfig out for a native rack"
    )]
    KubeconfigNotNative,
    #[error(transparent)]
    Name(#[from] NameError),
}

/// A provider's size name, such as `s-2vcpu-4gb`.
pub fn check_size(size: &str) -> Result<(), RackError> {
    if size.is_empty()
        || size.len() > 64
        || !size
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(RackError::BadSize(size.to_string()));
    }
    Ok(())
}

/// Builds the rack a request asks for, with the defaults of its provider's kind: a `local`
/// rack needs no size, domain or address.
pub fn rack_from_request(
    req: &CreateRack,
    kind: ProviderKind,
    now: UnixMs,
) -> Result<Rack, RackError> {
    let local = kind == ProviderKind::Local;
    let runtime = req.runtime.unwrap_or_default();
    match (runtime, &req.kubeconfig) {
        (RackRuntime::Kubernetes, None) => return Err(RackError::KubeconfigRequired),
        (RackRuntime::Native, Some(_)) => return Err(RackError::KubeconfigNotNative),
        _ => {}
    }
    let size = match (&req.size, local) {
        (Some(s), _) => s.clone(),
        // A Kubernetes rack's servers are the cluster's nodes, not made by the platform.
        (None, _) if runtime == RackRuntime::Kubernetes => "cluster".to_string(),
        (None, true) => "local".to_string(),
        (None, false) => return Err(RackError::SizeRequired),
    };
    check_size(&size)?;
    let domain = match (&req.domain, local) {
        (Some(d), _) => d.clone(),
        (None, true) => Domain::parse("localhost")?,
        (None, false) => return Err(RackError::DomainRequired),
    };
    let address = match (&req.address, local) {
        (Some(a), _) => a.trim().to_string(),
        (None, true) => "127.0.0.1".to_string(),
        (None, false) => return Err(RackError::AddressRequired),
    };
    if address.is_empty()
        || address.parse::<std::net::IpAddr>().is_err() && Domain::parse(&address).is_err()
    {
        return Err(RackError::BadAddress(address));
    }
    Ok(Rack {
        name: req.name.clone(),
        provider: req.provider.clone(),
        region: req.region.clone(),
        size,
        domain,
        address,
        state: RackState::Ready,
        created_at: now,
        runtime,
    })
}

/// The name of the token a rack's agents join with.
pub fn join_token_name(rack: &str) -> String {
    format!("rack-{rack}-join")
}

/// The name of the join token the platform made for server `server` of `rack` when it replaced
/// another (the rack's own join token is shown once and not kept); it goes with its server.
pub fn server_token_name(rack: &str, server: &str) -> String {
    format!("rack-{rack}-server-{server}-join")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(size: Option<&str>, domain: Option<&str>, address: Option<&str>) -> CreateRack {
        CreateRack {
            name: "r1".parse().unwrap(),
            provider: "p".parse().unwrap(),
            region: "eu".parse().unwrap(),
            size: size.map(String::from),
            domain: domain.map(|d| Domain::parse(d).unwrap()),
            address: address.map(String::from),
            runtime: None,
            kubeconfig: None,
        }
    }

    #[test]
    fn a_kubernetes_rack_needs_its_kubeconfig_and_only_it_has_one() {
        let mut req = request(None, None, None);
        req.runtime = Some(RackRuntime::Kubernetes);
        let e = rack_from_request(&req, ProviderKind::Local, 7).unwrap_err();
        assert!(e.to_string().contains("--kubeconfig is required"), "{e}");
        req.kubeconfig = Some("apiVersion: v1".into());
        let rack = rack_from_request(&req, ProviderKind::Local, 7).unwrap();
        assert_eq!(
            (rack.runtime, rack.size.as_str()),
            (RackRuntime::Kubernetes, "cluster")
        );
        req.runtime = None;
        let e = rack_from_request(&req, ProviderKind::Local, 7).unwrap_err();
        assert!(e.to_string().contains("only for Kubernetes racks"), "{e}");
    }

    #[test]
    fn a_local_rack_needs_nothing_but_its_name() {
        let rack = rack_from_request(&request(None, None, None), ProviderKind::Local, 7).unwrap();
        assert_eq!(rack.size, "local");
        assert_eq!(rack.domain.as_str(), "localhost");
        assert_eq!(rack.address, "127.0.0.1");
        assert_eq!(rack.created_at, 7);
    }

    #[test]
    fn other_racks_say_what_is_missing() {
        let ssh = ProviderKind::Ssh;
        let e = rack_from_request(&request(None, None, None), ssh, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--size is required for racks of this provider"
        );
        let e = rack_from_request(&request(Some("s-1"), None, None), ssh, 1).unwrap_err();
        assert!(matches!(e, RackError::DomainRequired), "{e}");
        let e = rack_from_request(&request(Some("s-1"), Some("a.test"), None), ssh, 1).unwrap_err();
        assert!(matches!(e, RackError::AddressRequired), "{e}");
        let e = rack_from_request(
            &request(Some("s 1"), Some("a.test"), Some("1.2.3.4")),
            ssh,
            1,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rack size \"s 1\" is invalid: use the provider's size name, such as s-2vcpu-4gb"
        );
        let e = rack_from_request(&request(Some("s-1"), Some("a.test"), Some(" ")), ssh, 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rack address \"\" is neither an IP address nor a hostname"
        );
        let rack = rack_from_request(
            &request(Some("s-1"), Some("a.test"), Some(" host.a.test ")),
            ssh,
            1,
        )
        .unwrap();
        assert_eq!(rack.address, "host.a.test");
    }

    #[test]
    fn join_tokens_are_named_after_their_rack() {
        assert_eq!(join_token_name("local"), "rack-local-join");
    }
}
