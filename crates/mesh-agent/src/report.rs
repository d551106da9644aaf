//! What a status report holds, for either runtime's agent.

use std::collections::BTreeSet;

use mesh_types::api::Instance;
use mesh_types::desired::DesiredState;

/// The instances the control plane takes in a status report: those of environments the rack's
/// desired state places on it. A removed environment's instances go on stopping for a while
/// (their drain and grace; on Kubernetes, the namespace's deletion), and the control plane
/// refuses a whole report naming an environment that is not the rack's any more, which would
/// hold back every other instance's state (a new deployment's among them) meanwhile.
pub fn placed(instances: Vec<Instance>, desired: &DesiredState) -> Vec<Instance> {
    let placed: BTreeSet<&str> = desired
        .environments
        .iter()
        .map(|e| e.environment.as_str())
        .collect();
    instances
        .into_iter()
        .filter(|i| placed.contains(i.environment.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_types::Name;
    use mesh_types::api::InstanceState;

    fn instance(id: &str, env: &str) -> Instance {
        serde_json::from_value(serde_json::json!({
            "id": id, "environment": env, "stack": "app", "service": "web",
            "state": InstanceState::Healthy, "updated_at": 1, "restarts": 0
        }))
        .unwrap()
    }

    #[test]
    fn only_instances_of_the_racks_environments_are_reported() {
        let desired: DesiredState = serde_json::from_value(serde_json::json!({
            "rack": "k1",
            "region": "kube",
            "environments": [{"environment": "shop", "stacks": [], "routes": []}]
        }))
        .unwrap();
        let shop = instance("app-web-1", "shop");
        let gone = instance("app-web-2", "bank");
        assert_eq!(placed(vec![shop.clone(), gone], &desired), [shop]);
        assert_eq!(desired.rack, Name::parse("k1").unwrap());
    }
}
