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
