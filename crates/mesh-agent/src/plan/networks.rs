//! Networks of environments that are no longer here.

use std::collections::{BTreeSet, HashMap};

use mesh_runtime::InstanceState;

/// The `assigned` networks to remove: their environment is not placed here, no instance of it is
/// left (a replaced one may still be stopping), and no one-off run holds it (`pinned`).
pub fn unused_networks(
    assigned: &[String],
    envs: &BTreeSet<String>,
    listed: &[InstanceState],
    pinned: &HashMap<String, usize>,
) -> Vec<String> {
    assigned
        .iter()
        .filter(|env| {
            !envs.contains(*env)
                && !listed.iter().any(|i| &i.environment == *env)
                && !pinned.contains_key(*env)
        })
        .cloned()
        .collect()
}
