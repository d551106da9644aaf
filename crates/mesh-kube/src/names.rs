//! Names and labels of what the agent makes in a cluster: one place, so the objects it makes,
//! the objects it prunes and the pods it watches agree.

use std::collections::BTreeMap;

use sha2::Digest;

/// On everything the agent makes: its owner is Widemesh.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "widemesh";
/// The rack whose agent made it: two racks on one cluster never prune each other's objects.
pub const RACK: &str = "widemesh.dev/rack";
pub const ENVIRONMENT: &str = "widemesh.dev/environment";
pub const STACK: &str = "widemesh.dev/stack";
pub const SERVICE: &str = "widemesh.dev/service";
pub const KIND: &str = "widemesh.dev/kind";
/// On one-off pods (`mesh run`, release commands): the task's instance id.
pub const ONEOFF: &str = "widemesh.dev/oneoff";
/// On pods: the deployment version they run (`v3`), for `mesh ps`.
pub const DEPLOYMENT: &str = "widemesh.dev/deployment";
/// The field manager of the agent's server-side applies.
pub const FIELD_MANAGER: &str = "widemesh-agent";
/// The image pull secret in each namespace.
pub const PULL_SECRET: &str = "widemesh-pull";
/// The NetworkPolicy that isolates each namespace.
pub const ISOLATION_POLICY: &str = "widemesh-isolation";
/// The container of every pod the agent makes.
pub const CONTAINER: &str = "app";

/// The namespace of an environment: `wm-<environment>`, cut to Kubernetes' 63 characters with
/// a digest of the whole name when it is longer.
pub fn namespace(environment: &str) -> String {
    fit(&format!("wm-{environment}"))
}

/// The Deployment, CronJob and Service of a service: `<stack>-<service>`, the name its peers
/// resolve inside the environment (as on native racks).
pub fn workload(stack: &str, service: &str) -> String {
    fit(&format!("{stack}-{service}"))
}

/// `name` if it is a valid DNS label's length, else its first 54 characters, a dash and 8 hex
/// digits of its digest (stable, and distinct for distinct long names).
pub fn fit(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let digest = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    format!("{}-{}", name[..54].trim_end_matches('-'), &digest[..8])
}

/// The labels every object of `rack` carries.
pub fn owned(rack: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (RACK.to_string(), rack.to_string()),
    ])
}

/// The label selector of everything `rack` made.
pub fn owned_selector(rack: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{RACK}={rack}")
}

/// The labels of a service's pods, and so its Deployment's selector.
pub fn service_labels(
    rack: &str,
    environment: &str,
    stack: &str,
    service: &str,
) -> BTreeMap<String, String> {
    let mut l = owned(rack);
    l.insert(ENVIRONMENT.into(), environment.into());
    l.insert(STACK.into(), stack.into());
    l.insert(SERVICE.into(), service.into());
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_fit_kubernetes_and_stay_distinct() {
        assert_eq!(namespace("shop"), "wm-shop");
        let a = workload(&"a".repeat(40), &"b".repeat(40));
        let b = workload(&"a".repeat(40), &"c".repeat(40));
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
        assert_eq!(a, workload(&"a".repeat(40), &"b".repeat(40)));
        assert!(!a.contains("--"));
    }
}
