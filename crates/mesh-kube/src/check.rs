//! Before a rack is made on a cluster, and before an agent acts on it: the cluster answers, the
//! credentials have every right the agent uses (asked of the API server one by one, so the
//! error lists exactly the missing ones), and a namespace the agent would take is not someone
//! else's.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use crate::KubeError;
use crate::names;

/// One right: a verb on a resource of an API group, in every namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Right {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        write!(f, "{} {}{group}", self.verb, self.resource)
    }
}

const fn r(verb: &'static str, group: &'static str, resource: &'static str) -> Right {
    Right {
        verb,
        group,
        resource,
    }
}

/// Every right the agent uses, cluster-wide (it makes a namespace per environment). The docs'
/// ClusterRole (`docs/kubernetes-runtime.md`) is exactly this list.
pub const RIGHTS: &[Right] = &[
    r("get", "", "namespaces"),
    r("list", "", "namespaces"),
    r("create", "", "namespaces"),
    r("patch", "", "namespaces"),
    r("delete", "", "namespaces"),
    r("list", "", "nodes"),
    r("get", "", "secrets"),
    r("create", "", "secrets"),
    r("patch", "", "secrets"),
    r("list", "", "pods"),
    r("watch", "", "pods"),
    r("create", "", "pods"),
    r("delete", "", "pods"),
    r("get", "", "pods/log"),
    r("create", "", "pods/exec"),
    r("get", "", "services"),
    r("list", "", "services"),
    r("create", "", "services"),
    r("patch", "", "services"),
    r("delete", "", "services"),
    r("get", "apps", "deployments"),
    r("list", "apps", "deployments"),
    r("create", "apps", "deployments"),
    r("patch", "apps", "deployments"),
    r("delete", "apps", "deployments"),
    r("get", "batch", "cronjobs"),
    r("list", "batch", "cronjobs"),
    r("create", "batch", "cronjobs"),
    r("patch", "batch", "cronjobs"),
    r("delete", "batch", "cronjobs"),
    r("get", "networking.k8s.io", "networkpolicies"),
    r("list", "networking.k8s.io", "networkpolicies"),
    r("create", "networking.k8s.io", "networkpolicies"),
    r("patch", "networking.k8s.io", "networkpolicies"),
    r("delete", "networking.k8s.io", "networkpolicies"),
];

/// The cluster answers and grants every right in [`RIGHTS`]; the error says which are missing.
pub async fn preflight(client: &kube::Client) -> Result<String, KubeError> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| KubeError::Unreachable(e.to_string()))?;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for right in RIGHTS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attributes(right)),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| KubeError::api("asking the cluster what these credentials may do", e))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            missing.push(right.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(KubeError::MissingRights(missing));
    }
    Ok(format!("Kubernetes {}", version.git_version))
}

fn attributes(right: &Right) -> ResourceAttributes {
    let (resource, subresource) = match right.resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (right.resource, None),
    };
    ResourceAttributes {
        verb: Some(right.verb.into()),
        group: Some(right.group.into()),
        resource: Some(resource.into()),
        subresource,
        ..Default::default()
    }
}

/// Whom a namespace belongs to, from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No such namespace: the agent may make it.
    Free,
    /// Made by this rack's agent.
    Rack,
    /// Made by another rack's agent (named).
    OtherRack(String),
    /// Not made by Widemesh.
    Foreign,
}

/// Whom `ns` (its labels, if it exists) belongs to, seen from `rack`.
pub fn owner(labels: Option<&std::collections::BTreeMap<String, String>>, rack: &str) -> Owner {
    let Some(labels) = labels else {
        return Owner::Free;
    };
    if labels.get(names::MANAGED_BY).map(String::as_str) != Some(names::MANAGER) {
        return Owner::Foreign;
    }
    match labels.get(names::RACK) {
        Some(r) if r == rack => Owner::Rack,
        Some(r) => Owner::OtherRack(r.clone()),
        None => Owner::Foreign,
    }
}

/// The namespace of `environment` may be made or kept by `rack`'s agent; the error names the
/// namespace and who holds it.
pub async fn namespace_free(
    client: &kube::Client,
    rack: &str,
    environment: &str,
) -> Result<(), KubeError> {
    let ns = names::namespace(environment);
    let found = Api::<Namespace>::all(client.clone())
        .get_opt(&ns)
        .await
        .map_err(|e| KubeError::api(&format!("reading namespace {ns}"), e))?;
    let labels = found
        .as_ref()
        .map(|n| n.metadata.labels.clone().unwrap_or_default());
    match owner(labels.as_ref(), rack) {
        Owner::Free | Owner::Rack => Ok(()),
        Owner::OtherRack(other) => Err(KubeError::NamespaceTaken {
            namespace: ns,
            holder: format!("rack {other} of Widemesh"),
        }),
        Owner::Foreign => Err(KubeError::NamespaceTaken {
            namespace: ns,
            holder: "something that is not Widemesh".into(),
        }),
    }
}

/// Whether a node's conditions say Ready.
pub fn node_ready(node: &k8s_openapi::api::core::v1::Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The cluster's nodes by name, and whether each is Ready.
pub async fn nodes(
    client: &kube::Client,
) -> Result<std::collections::BTreeMap<String, bool>, KubeError> {
    let list = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(|e| KubeError::api("listing the cluster's nodes", e))?;
    Ok(list
        .items
        .iter()
        .map(|n| (n.metadata.name.clone().unwrap_or_default(), node_ready(n)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn rights_read_as_kubectl_would_say_them() {
        assert_eq!(RIGHTS[0].to_string(), "get namespaces");
        assert_eq!(
            r("patch", "apps", "deployments").to_string(),
            "patch deployments.apps"
        );
        let a = attributes(&r("create", "", "pods/exec"));
        assert_eq!(a.resource.as_deref(), Some("pods"));
        assert_eq!(a.subresource.as_deref(), Some("exec"));
    }

    /// The ClusterRole of `docs/kubernetes-runtime.md` grants exactly [`RIGHTS`].
    #[test]
    fn the_documented_cluster_role_is_exactly_the_rights() {
        let doc = include_str!("../../../docs/kubernetes-runtime.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a yaml block in docs/kubernetes-runtime.md");
        assert!(yaml.contains("kind: ClusterRole"), "{yaml}");
        let list = |line: &str, key: &str| -> Vec<String> {
            let inner = line.trim().trim_start_matches("- ");
            let inner = inner.strip_prefix(key).expect(key).trim();
            let inner = inner.trim_start_matches('[').trim_end_matches(']');
            inner
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect()
        };
        let lines: Vec<&str> = yaml.lines().collect();
        let mut documented = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with("- apiGroups:") {
                continue;
            }
            let groups = list(line, "apiGroups:");
            let resources = list(lines[i + 1], "resources:");
            let verbs = list(lines[i + 2], "verbs:");
            for g in &groups {
                for r in &resources {
                    for v in &verbs {
                        documented.push(format!("{v} {r} {g}"));
                    }
                }
            }
        }
        let mut wanted: Vec<String> = RIGHTS
            .iter()
            .map(|r| format!("{} {} {}", r.verb, r.resource, r.group))
            .collect();
        documented.sort();
        wanted.sort();
        assert_eq!(documented, wanted);
    }

    #[test]
    fn namespaces_belong_to_the_rack_that_labelled_them() {
        assert_eq!(owner(None, "k1"), Owner::Free);
        assert_eq!(owner(Some(&BTreeMap::new()), "k1"), Owner::Foreign);
        let mut l = names::owned("k1");
        assert_eq!(owner(Some(&l), "k1"), Owner::Rack);
        assert_eq!(owner(Some(&l), "k2"), Owner::OtherRack("k1".into()));
        l.insert(names::MANAGED_BY.into(), "helm".into());
        assert_eq!(owner(Some(&l), "k1"), Owner::Foreign);
    }
}
