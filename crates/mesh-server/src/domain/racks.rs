//! Racks: the rack a request asks for, with the defaults of its provider's kind, and the token
//! its agents join with.

use mesh_types::api::{
    CreateRack, MadeServerState, ProviderKind, Rack, RackRuntime, RackState, ServerState,
};
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
        "--kubeconfig is required for a Kubernetes rack of this provider: the kubeconfig of the cluster its agent reconciles into (or use a provider that makes servers, aws or hetzner, to have a k3s cluster made)"
    )]
    KubeconfigRequired,
    #[error(
        "this provider makes servers, and --kubeconfig names a cluster that exists: leave --kubeconfig out to have the provider make the cluster's servers (k3s), or use a provider that makes none (such as one of kind local) with --kubeconfig"
    )]
    KubeconfigWithMadeServers,
    #[error(
        "a native rack has one server: --servers N is for Kubernetes racks (--runtime kubernetes)"
    )]
    NativeOneServer,
    #[error(
        "--servers is for providers that make servers (aws, hetzner, an ssh pool): this rack's servers are started by hand or are its cluster's nodes"
    )]
    ServersNotMade,
    #[error("--servers must be between 1 and {MAX_SERVERS}, not {0}")]
    BadServers(u32),
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

/// The most servers one rack's cluster is made of.
pub const MAX_SERVERS: u32 = 50;

/// How many servers the provider makes for the rack a request asks for (`--servers`): one for
/// a native rack, N for a Kubernetes rack whose cluster the provider makes, none when the
/// provider makes no servers.
pub fn servers_to_make(req: &CreateRack, makes_servers: bool) -> Result<u32, RackError> {
    let runtime = req.runtime.unwrap_or_default();
    match req.servers {
        Some(n) if !(1..=MAX_SERVERS).contains(&n) => Err(RackError::BadServers(n)),
        Some(_) if !makes_servers => Err(RackError::ServersNotMade),
        Some(n) if n != 1 && runtime == RackRuntime::Native => Err(RackError::NativeOneServer),
        _ if !makes_servers => Ok(0),
        n => Ok(n.unwrap_or(1)),
    }
}

/// Builds the rack a request asks for, with the defaults of its provider's kind: a `local`
/// rack needs no size, domain or address. A Kubernetes rack runs on the cluster of its
/// `kubeconfig`, or, when its provider makes servers, on a k3s cluster the provider makes.
pub fn rack_from_request(
    req: &CreateRack,
    kind: ProviderKind,
    makes_servers: bool,
    now: UnixMs,
) -> Result<Rack, RackError> {
    let local = kind == ProviderKind::Local;
    let runtime = req.runtime.unwrap_or_default();
    match (runtime, &req.kubeconfig) {
        (RackRuntime::Kubernetes, None) if !makes_servers => {
            return Err(RackError::KubeconfigRequired);
        }
        (RackRuntime::Kubernetes, Some(_)) if makes_servers => {
            return Err(RackError::KubeconfigWithMadeServers);
        }
        (RackRuntime::Native, Some(_)) => return Err(RackError::KubeconfigNotNative),
        _ => {}
    }
    servers_to_make(req, makes_servers)?;
    let size = match (&req.size, local) {
        (Some(s), _) => s.clone(),
        // The servers of a cluster given by its kubeconfig are its nodes, not made here.
        (None, _) if req.kubeconfig.is_some() => "cluster".to_string(),
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

/// What the control plane knows of a Kubernetes rack's cluster, for its made servers' states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSeen {
    /// The first server has not handed the cluster over yet.
    NotHandedOver,
    /// The cluster did not answer.
    Unreachable,
    /// Its nodes by name, and whether each is Ready.
    Nodes(std::collections::BTreeMap<String, bool>),
}

/// How far made server `name` is, on a native rack: its agent (registered under the server's
/// name) and the agent's state.
pub fn native_server_state(agent: Option<ServerState>) -> MadeServerState {
    match agent {
        None => MadeServerState::Joining,
        Some(ServerState::Ready | ServerState::Draining) => MadeServerState::Ready,
        Some(ServerState::Lost) => MadeServerState::Lost,
    }
}

/// How far made server `name` is, on a Kubernetes rack: its node (named after the server).
pub fn node_state(cluster: &ClusterSeen, name: &str) -> MadeServerState {
    match cluster {
        ClusterSeen::NotHandedOver => MadeServerState::Joining,
        ClusterSeen::Unreachable => MadeServerState::Unknown,
        ClusterSeen::Nodes(nodes) => match nodes.get(name) {
            None => MadeServerState::Joining,
            Some(true) => MadeServerState::Ready,
            Some(false) => MadeServerState::NotReady,
        },
    }
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
            servers: None,
        }
    }

    #[test]
    fn a_kubernetes_rack_needs_its_kubeconfig_and_only_it_has_one() {
        let mut req = request(None, None, None);
        req.runtime = Some(RackRuntime::Kubernetes);
        let e = rack_from_request(&req, ProviderKind::Local, false, 7).unwrap_err();
        assert!(e.to_string().contains("--kubeconfig is required"), "{e}");
        req.kubeconfig = Some("apiVersion: v1".into());
        let rack = rack_from_request(&req, ProviderKind::Local, false, 7).unwrap();
        assert_eq!(
            (rack.runtime, rack.size.as_str()),
            (RackRuntime::Kubernetes, "cluster")
        );
        req.runtime = None;
        let e = rack_from_request(&req, ProviderKind::Local, false, 7).unwrap_err();
        assert!(e.to_string().contains("only for Kubernetes racks"), "{e}");
    }

    #[test]
    fn a_local_rack_needs_nothing_but_its_name() {
        let rack =
            rack_from_request(&request(None, None, None), ProviderKind::Local, false, 7).unwrap();
        assert_eq!(rack.size, "local");
        assert_eq!(rack.domain.as_str(), "localhost");
        assert_eq!(rack.address, "127.0.0.1");
        assert_eq!(rack.created_at, 7);
    }

    #[test]
    fn other_racks_say_what_is_missing() {
        let ssh = ProviderKind::Ssh;
        let e = rack_from_request(&request(None, None, None), ssh, false, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--size is required for racks of this provider"
        );
        let e = rack_from_request(&request(Some("s-1"), None, None), ssh, false, 1).unwrap_err();
        assert!(matches!(e, RackError::DomainRequired), "{e}");
        let e = rack_from_request(&request(Some("s-1"), Some("a.test"), None), ssh, false, 1)
            .unwrap_err();
        assert!(matches!(e, RackError::AddressRequired), "{e}");
        let e = rack_from_request(
            &request(Some("s 1"), Some("a.test"), Some("1.2.3.4")),
            ssh,
            false,
            1,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rack size \"s 1\" is invalid: use the provider's size name, such as s-2vcpu-4gb"
        );
        let e = rack_from_request(
            &request(Some("s-1"), Some("a.test"), Some(" ")),
            ssh,
            false,
            1,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rack address \"\" is neither an IP address nor a hostname"
        );
        let rack = rack_from_request(
            &request(Some("s-1"), Some("a.test"), Some(" host.a.test ")),
            ssh,
            false,
            1,
        )
        .unwrap();
        assert_eq!(rack.address, "host.a.test");
    }

    #[test]
    fn a_provider_makes_one_server_for_a_native_rack_and_n_for_a_kubernetes_one() {
        let hz = ProviderKind::Hetzner;
        let mut req = request(Some("cx22"), Some("a.test"), Some("1.2.3.4"));
        assert_eq!(servers_to_make(&req, true).unwrap(), 1);
        assert_eq!(servers_to_make(&req, false).unwrap(), 0);
        req.servers = Some(3);
        let e = rack_from_request(&req, hz, true, 1).unwrap_err();
        assert!(matches!(e, RackError::NativeOneServer), "{e}");
        req.runtime = Some(RackRuntime::Kubernetes);
        // A made cluster: no kubeconfig, the provider's size.
        let rack = rack_from_request(&req, hz, true, 1).unwrap();
        assert_eq!(
            (rack.runtime, rack.size.as_str()),
            (RackRuntime::Kubernetes, "cx22")
        );
        assert_eq!(servers_to_make(&req, true).unwrap(), 3);
        let e = rack_from_request(&req, ProviderKind::Local, false, 1).unwrap_err();
        assert!(matches!(e, RackError::KubeconfigRequired), "{e}");
        req.servers = Some(0);
        let e = rack_from_request(&req, hz, true, 1).unwrap_err();
        assert_eq!(e.to_string(), "--servers must be between 1 and 50, not 0");
        req.servers = Some(2);
        req.kubeconfig = Some("apiVersion: v1".into());
        let e = rack_from_request(&req, hz, true, 1).unwrap_err();
        assert!(matches!(e, RackError::KubeconfigWithMadeServers), "{e}");
        let e = rack_from_request(&req, ProviderKind::Local, false, 1).unwrap_err();
        assert!(matches!(e, RackError::ServersNotMade), "{e}");
        req.servers = None;
        let mut made = request(None, Some("a.test"), Some("1.2.3.4"));
        made.runtime = Some(RackRuntime::Kubernetes);
        let e = rack_from_request(&made, hz, true, 1).unwrap_err();
        assert!(matches!(e, RackError::SizeRequired), "{e}");
    }

    #[test]
    fn a_made_server_is_as_far_as_its_agent_or_its_node() {
        assert_eq!(native_server_state(None), MadeServerState::Joining);
        assert_eq!(
            native_server_state(Some(ServerState::Ready)),
            MadeServerState::Ready
        );
        assert_eq!(
            native_server_state(Some(ServerState::Lost)),
            MadeServerState::Lost
        );
        let nodes =
            ClusterSeen::Nodes([("k-1".to_string(), true), ("k-2".to_string(), false)].into());
        assert_eq!(node_state(&nodes, "k-1"), MadeServerState::Ready);
        assert_eq!(node_state(&nodes, "k-2"), MadeServerState::NotReady);
        assert_eq!(node_state(&nodes, "k-3"), MadeServerState::Joining);
        assert_eq!(
            node_state(&ClusterSeen::NotHandedOver, "k-1"),
            MadeServerState::Joining
        );
        assert_eq!(
            node_state(&ClusterSeen::Unreachable, "k-1"),
            MadeServerState::Unknown
        );
    }

    #[test]
    fn join_tokens_are_named_after_their_rack() {
        assert_eq!(join_token_name("local"), "rack-local-join");
    }
}
