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

/// The kubeconfig is one this runtime can use (parses, has a current context with a server),
/// without connecting.
pub fn validate(kubeconfig: &str) -> Result<(), KubeError> {
    let parsed =
        Kubeconfig::from_yaml(kubeconfig).map_err(|e| KubeError::Kubeconfig(e.to_string()))?;
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
