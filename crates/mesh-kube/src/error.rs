//! What goes wrong talking to a cluster, each with what to do about it.

/// An error of the Kubernetes runtime; its message is meant for the person running the rack.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("the kubeconfig cannot be used: {0}")]
    Kubeconfig(String),
    #[error(
        "the cluster does not answer: {0} (check the kubeconfig's server address, and that this machine reaches it)"
    )]
    Unreachable(String),
    #[error(
        "the kubeconfig's credentials lack rights the Widemesh agent needs, cluster-wide: {}; grant them (docs/kubernetes-runtime.md has a ClusterRole with exactly these) or use other credentials",
        .0.join(", ")
    )]
    MissingRights(Vec<String>),
    #[error(
        "namespace {namespace} already exists and belongs to {holder}; Widemesh never takes over a namespace it did not make: remove or rename it, or name the environment differently"
    )]
    NamespaceTaken { namespace: String, holder: String },
    #[error("{what}: {message}")]
    Api { what: String, message: String },
}

impl KubeError {
    pub fn api(what: &str, e: kube::Error) -> Self {
        let message = match &e {
            kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
            other => other.to_string(),
        };
        KubeError::Api {
            what: what.to_string(),
            message,
        }
    }
}
