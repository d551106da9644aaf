//! A kube-rs client from a kubeconfig's text (as the control plane keeps it sealed, or read
//! from `--kubeconfig`).

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::KubeError;

/// A client of the kubeconfig's current context. Connecting gives up after 5 s, so an
/// unreachable cluster is an error soon.
pub async fn connect(kubeconfig: &str) -> Result<kube::Client, KubeError> {
    let parsed =
        Kubeconfig::from_yaml(kubeconfig).map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| KubeError::Kubeconfig(e.to_string()))
}

/// [`connect`] for the control plane: only to a self-contained kubeconfig ([`validate`]).
pub async fn connect_checked(kubeconfig: &str) -> Result<kube::Client, KubeError> {
    validate(kubeconfig)?;
    connect(kubeconfig).await
}

/// A kubeconfig a made cluster's server offers: besides [`validate`], every cluster is
/// reached at `https://<IP address>[:port]` (parsed as kube-rs parses it; no user, path, query
/// or fragment; no host name, which would be resolved after this check), the address neither
/// loopback, link-local, unspecified, multicast nor broadcast (an IPv4-mapped IPv6 address
/// judged as its IPv4 one), its certificate checked against a CA the kubeconfig carries (no
/// `insecure-skip-tls-verify`, no `tls-server-name`). k3s writes exactly such a kubeconfig.
pub fn validate_made(kubeconfig: &str) -> Result<(), KubeError> {
    validate(kubeconfig)?;
    let parsed =
        Kubeconfig::from_yaml(kubeconfig).map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
    if parsed.clusters.is_empty() {
        return Err(KubeError::Kubeconfig("it names no cluster".into()));
    }
    for c in &parsed.clusters {
        let bad = |why: String| {
            Err(KubeError::Kubeconfig(format!(
                "its cluster {:?} {why}: a made cluster's kubeconfig names its first server as https://<IP address>:<port>, with the cluster's CA inline",
                c.name
            )))
        };
        let Some(cluster) = &c.cluster else {
            return bad("is empty".into());
        };
        let Some(server) = cluster.server.as_deref() else {
            return bad("has no server".into());
        };
        let ip = match made_server_ip(server) {
            Ok(ip) => ip,
            Err(why) => return bad(why),
        };
        let refused = match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_multicast()
                    || v4.is_broadcast()
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unicast_link_local()
                    || v6.is_multicast()
            }
        };
        if refused {
            return bad(format!(
                "is at {ip}, a loopback, link-local, unspecified or multicast address"
            ));
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            return bad("skips checking the server's certificate".into());
        }
        if cluster.tls_server_name.is_some() {
            return bad("sets tls-server-name".into());
        }
        if cluster
            .certificate_authority_data
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            return bad("carries no certificate-authority-data".into());
        }
    }
    Ok(())
}

/// The IP address of a made cluster's server URL, `https://<IP>[:port][/]`, with an
/// IPv4-mapped IPv6 address as its IPv4 one; else why not.
fn made_server_ip(server: &str) -> Result<std::net::IpAddr, String> {
    let uri: http::Uri = server
        .parse()
        .map_err(|e| format!("has a server URL that does not parse ({e})"))?;
    if uri.scheme_str() != Some("https") {
        return Err("is not reached over https://".into());
    }
    let authority = uri
        .authority()
        .ok_or_else(|| "has a server URL without a host".to_string())?;
    if authority.as_str().contains('@') {
        return Err("has a user in its server URL".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || server.contains('#') {
        return Err("has a path, query or fragment in its server URL".into());
    }
    let host = authority.host();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = literal.parse().map_err(|_| {
        format!("is at {host:?}, not an IP address (a name would be resolved after this check)")
    })?;
    Ok(match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    })
}

/// The kubeconfig is one the control plane can use (parses, has a current context, and is
/// self-contained), without connecting.
pub fn validate(kubeconfig: &str) -> Result<(), KubeError> {
    let parsed =
        Kubeconfig::from_yaml(kubeconfig).map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
    self_contained(&parsed)?;
    let Some(current) = parsed.current_context.clone() else {
        return Err(KubeError::Kubeconfig(
            "it names no current-context; set one (kubectl config use-context NAME)".into(),
        ));
    };
    if !parsed.contexts.iter().any(|c| c.name == current) {
        return Err(KubeError::Kubeconfig(format!(
            "its current-context {current:?} is not among its contexts"
        )));
    }
    Ok(())
}

/// Everything the kubeconfig needs is in it: no file path (which the control plane would read
/// from its own disk and send to the cluster: a token file, a client key), no command to run
/// (`exec`, `auth-provider`) and no proxy. The control plane connects with kubeconfigs that
/// admins and a made cluster's first server send it; none may make it read its files, run a
/// program or connect elsewhere.
pub fn self_contained(k: &Kubeconfig) -> Result<(), KubeError> {
    let refuse = |what: &str, name: &str, field: &str| {
        Err(KubeError::Kubeconfig(format!(
            "its {what} {name:?} sets {field}: the control plane uses self-contained kubeconfigs only (certificates, keys and tokens inline as *-data and token; no exec or auth-provider plugin, no file path, no proxy)"
        )))
    };
    for c in &k.clusters {
        let Some(cluster) = &c.cluster else { continue };
        if cluster.certificate_authority.is_some() {
            return refuse("cluster", &c.name, "certificate-authority (a file)");
        }
        if cluster.proxy_url.is_some() {
            return refuse("cluster", &c.name, "proxy-url");
        }
    }
    for u in &k.auth_infos {
        let Some(a) = &u.auth_info else { continue };
        for (set, field) in [
            (a.exec.is_some(), "exec"),
            (a.auth_provider.is_some(), "auth-provider"),
            (a.token_file.is_some(), "tokenFile"),
            (
                a.client_certificate.is_some(),
                "client-certificate (a file)",
            ),
            (a.client_key.is_some(), "client-key (a file)"),
        ] {
            if set {
                return refuse("user", &u.name, field);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INLINE: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: 'https://10.0.0.1:6443', certificate-authority-data: LS0t}
users:
- name: u
  user: {client-certificate-data: LS0t, client-key-data: LS0t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
";

    #[test]
    fn a_made_clusters_kubeconfig_names_its_server_over_https_with_its_ca() {
        validate_made(INLINE).unwrap();
        validate_made(&INLINE.replace("https://10.0.0.1:6443", "https://[2001:db8::1]:6443/"))
            .unwrap();
        let server = "https://10.0.0.1:6443";
        for (from, to, why) in [
            (server, "http://10.0.0.1:6443", "https://"),
            (server, "https://127.0.0.1:6443", "loopback"),
            (server, "https://169.254.169.254:6443", "link-local"),
            (server, "https://0.0.0.0:6443", "unspecified"),
            (server, "https://[::1]:6443", "loopback"),
            (server, "https://[::ffff:127.0.0.1]:6443", "loopback"),
            (
                server,
                "https://[::ffff:169.254.169.254]:6443",
                "link-local",
            ),
            (server, "https://[fe80::1%25eth0]:6443", "not an IP address"),
            (server, "https://localhost:6443", "not an IP address"),
            (server, "https://127.1:6443", "not an IP address"),
            (server, "https://2130706433:6443", "not an IP address"),
            (server, "https://x.nip.io:6443", "not an IP address"),
            (server, "https://u@127.0.0.1:6443", "user"),
            (server, "https://10.0.0.1:6443?:1", "query"),
            (server, "https://10.0.0.1:6443/api", "path"),
            (server, "https://10.0.0.1:6443#x", "fragment"),
            (
                "certificate-authority-data: LS0t",
                "insecure-skip-tls-verify: true",
                "skips checking",
            ),
            (
                "certificate-authority-data: LS0t",
                "certificate-authority-data: LS0t, tls-server-name: kubernetes",
                "tls-server-name",
            ),
            (
                "certificate-authority-data: LS0t",
                "disable-compression: true",
                "no certificate-authority-data",
            ),
        ] {
            let bad = INLINE.replace(from, to);
            assert_ne!(bad, INLINE);
            let e = validate_made(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{to}: {e}");
        }
        // And what any kubeconfig the control plane takes must be.
        let e = validate_made(&INLINE.replace("client-key-data: LS0t", "client-key: /k"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("self-contained"), "{e}");
    }

    #[test]
    fn only_self_contained_kubeconfigs_are_taken() {
        validate(INLINE).unwrap();
        for (from, to, field) in [
            (
                "certificate-authority-data: LS0t",
                "certificate-authority: /etc/shadow",
                "certificate-authority",
            ),
            (
                "certificate-authority-data: LS0t",
                "proxy-url: 'http://10.0.0.9:3128'",
                "proxy-url",
            ),
            (
                "client-key-data: LS0t",
                "client-key: /root/key",
                "client-key",
            ),
            (
                "client-key-data: LS0t",
                "tokenFile: /var/lib/widemesh/secret",
                "tokenFile",
            ),
            (
                "client-key-data: LS0t",
                "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}",
                "exec",
            ),
            (
                "client-key-data: LS0t",
                "auth-provider: {name: oidc, config: {cmd-path: /bin/id}}",
                "auth-provider",
            ),
        ] {
            let bad = INLINE.replace(from, to);
            assert_ne!(bad, INLINE);
            let e = validate(&bad).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("self-contained"), "{e}");
        }
    }
}
