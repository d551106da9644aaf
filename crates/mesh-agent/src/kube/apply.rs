//! The effects of a reconcile: server-side apply of what [`super::objects::wanted`] says, then
//! removal of what this rack made and nothing wants any more. Level-triggered: each pass applies
//! everything that changed since the last applied copy, and everything again once a minute, so a
//! hand edit or a lost write is repaired.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;

use super::objects::Wanted;
use mesh_kube::KubeError;
use mesh_kube::check::{self, Owner};
use mesh_kube::names;

/// How often everything is applied again even when nothing changed.
const REAPPLY: Duration = Duration::from_secs(60);

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    pub deleted: usize,
    /// Environments left alone, with why (a namespace of someone else's).
    pub refused: Vec<(String, String)>,
}

/// Applies and prunes for one rack; remembers what it last applied.
pub struct Applier {
    client: kube::Client,
    rack: String,
    /// Object key (`kind/ns/name`) to the digest of its last applied body, and when.
    last: HashMap<String, (String, Instant)>,
}

impl Applier {
    pub fn new(client: kube::Client, rack: &str) -> Self {
        Applier {
            client,
            rack: rack.to_string(),
            last: HashMap::new(),
        }
    }

    /// One pass: namespaces first (refusing ones that are not this rack's), then what lives in
    /// them, then the removal of what nothing wants. Stops at the first API error.
    pub async fn pass(&mut self, mut wanted: Wanted) -> Result<Applied, KubeError> {
        let mut done = Applied::default();
        let existing = self.namespaces().await?;
        let mut refused = BTreeSet::new();
        for ns in &wanted.namespaces {
            let name = ns.name_any();
            match check::owner(existing.get(&name), &self.rack) {
                Owner::Free | Owner::Rack => {}
                other => {
                    let env = ns
                        .labels()
                        .get(names::ENVIRONMENT)
                        .cloned()
                        .unwrap_or_default();
                    let holder = match other {
                        Owner::OtherRack(r) => format!("rack {r} of Widemesh"),
                        _ => "something that is not Widemesh".into(),
                    };
                    let why = KubeError::NamespaceTaken {
                        namespace: name.clone(),
                        holder,
                    };
                    done.refused.push((env, why.to_string()));
                    refused.insert(name);
                }
            }
        }
        let keep = |ns: Option<&String>| ns.is_none_or(|n| !refused.contains(n));
        wanted.namespaces.retain(|n| keep(n.metadata.name.as_ref()));
        wanted
            .secrets
            .retain(|o| keep(o.metadata.namespace.as_ref()));
        wanted
            .policies
            .retain(|o| keep(o.metadata.namespace.as_ref()));
        wanted
            .services
            .retain(|o| keep(o.metadata.namespace.as_ref()));
        wanted
            .deployments
            .retain(|o| keep(o.metadata.namespace.as_ref()));
        wanted
            .cronjobs
            .retain(|o| keep(o.metadata.namespace.as_ref()));

        for ns in &wanted.namespaces {
            done.applied += self.apply_cluster(ns).await?;
        }
        done.applied += self.apply_all(&wanted.secrets).await?;
        done.applied += self.apply_all(&wanted.policies).await?;
        done.applied += self.apply_all(&wanted.services).await?;
        done.applied += self.apply_all(&wanted.deployments).await?;
        done.applied += self.apply_all(&wanted.cronjobs).await?;

        done.deleted += self.prune(&wanted.deployments).await?;
        done.deleted += self.prune(&wanted.cronjobs).await?;
        done.deleted += self.prune(&wanted.services).await?;
        done.deleted += self.prune(&wanted.policies).await?;
        done.deleted += self.prune(&wanted.secrets).await?;
        // A namespace that goes takes everything in it along (pods, jobs, what is left).
        let keep: BTreeSet<String> = wanted.namespaces.iter().map(|n| n.name_any()).collect();
        for (name, labels) in &existing {
            if check::owner(Some(labels), &self.rack) == Owner::Rack && !keep.contains(name) {
                self.delete_namespace(name).await?;
                done.deleted += 1;
            }
        }
        Ok(done)
    }

    /// Every namespace of the cluster with its labels.
    async fn namespaces(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>, KubeError> {
        let list = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| KubeError::api("listing namespaces", e))?;
        Ok(list
            .items
            .into_iter()
            // One being deleted is gone for our purposes (it will be made again when wanted).
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .map(|n| {
                let labels = n.metadata.labels.clone().unwrap_or_default();
                (n.name_any(), labels)
            })
            .collect())
    }

    async fn delete_namespace(&mut self, name: &str) -> Result<(), KubeError> {
        tracing::info!(
            namespace = name,
            "removing the namespace of an environment that left the rack"
        );
        match Api::<Namespace>::all(self.client.clone())
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(KubeError::api(&format!("deleting namespace {name}"), e)),
        }
        self.last.retain(|k, _| !k.contains(&format!("/{name}/")));
        Ok(())
    }

    /// Whether `body` under `key` needs applying: changed, or not applied for a minute.
    fn stale(&self, key: &str, digest: &str) -> bool {
        self.last
            .get(key)
            .is_none_or(|(d, at)| d != digest || at.elapsed() >= REAPPLY)
    }

    async fn apply_cluster<K>(&mut self, obj: &K) -> Result<usize, KubeError>
    where
        K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    {
        let api: Api<K> = Api::all(self.client.clone());
        self.apply_with(api, obj).await
    }

    async fn apply_all<K>(&mut self, objs: &[K]) -> Result<usize, KubeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let mut n = 0;
        for obj in objs {
            let ns = obj.namespace().unwrap_or_default();
            let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
            n += self.apply_with(api, obj).await?;
        }
        Ok(n)
    }

    async fn apply_with<K>(&mut self, api: Api<K>, obj: &K) -> Result<usize, KubeError>
    where
        K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    {
        let key = format!(
            "{}/{}/{}",
            K::kind(&()),
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        );
        let body = serde_json::to_vec(obj).map_err(|e| KubeError::Api {
            what: format!("encoding {key}"),
            message: e.to_string(),
        })?;
        let digest = hex::encode(sha2::Sha256::digest(&body));
        if !self.stale(&key, &digest) {
            return Ok(0);
        }
        api.patch(
            &obj.name_any(),
            &PatchParams::apply(names::FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(|e| KubeError::api(&format!("applying {key}"), e))?;
        self.last.insert(key, (digest, Instant::now()));
        Ok(1)
    }

    /// Deletes the objects of kind K that this rack made and `wanted` does not list.
    async fn prune<K>(&mut self, wanted: &[K]) -> Result<usize, KubeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let keep: BTreeSet<(String, String)> = wanted
            .iter()
            .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        let all: Api<K> = Api::all(self.client.clone());
        let found = all
            .list(&ListParams::default().labels(&names::owned_selector(&self.rack)))
            .await
            .map_err(|e| KubeError::api(&format!("listing {}s", K::kind(&())), e))?;
        let mut n = 0;
        for obj in found.items {
            let id = (obj.namespace().unwrap_or_default(), obj.name_any());
            if keep.contains(&id) || obj.meta().deletion_timestamp.is_some() {
                continue;
            }
            let api: Api<K> = Api::namespaced(self.client.clone(), &id.0);
            match api.delete(&id.1, &DeleteParams::foreground()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(KubeError::api(
                        &format!("deleting {} {}/{}", K::kind(&()), id.0, id.1),
                        e,
                    ));
                }
            }
            tracing::info!(kind = %K::kind(&()), namespace = %id.0, name = %id.1, "removed what nothing wants any more");
            self.last
                .remove(&format!("{}/{}/{}", K::kind(&()), id.0, id.1));
            n += 1;
        }
        Ok(n)
    }
}

/// Removes everything `rack` made in the cluster (`mesh agent purge` of a Kubernetes rack).
pub async fn purge(client: &kube::Client, rack: &str) -> Result<usize, KubeError> {
    let mut applier = Applier::new(client.clone(), rack);
    Ok(applier.pass(Wanted::default()).await?.deleted)
}
