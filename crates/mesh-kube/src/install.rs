//! A Kubernetes rack's agent installed into its own cluster (`mesh rack agent-manifest NAME |
//! kubectl apply -f -`): a namespace `widemesh-<rack>` holding the join token, a pull secret for
//! the control plane's registry, a Deployment of the rack's one agent, and a DaemonSet of its
//! edge router on every node's network (`mesh router --routes-only`), so every node answers
//! for the rack on its own address. The pods run the control plane's own `mesh` (the
//! registry's `widemesh.system/agent` image) and reach the cluster with the kubeconfig the
//! control plane keeps for the rack, as an agent outside the cluster does.
//!
//! Pure functions of what the user gives; the objects are printed as one `v1` `List` (JSON, which
//! `kubectl apply -f` takes as it takes YAML).

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, DeploymentSpec,
    DeploymentStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, LocalObjectReference,
    Namespace, ObjectFieldSelector, PodSpec, PodTemplateSpec, Secret, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::{Value, json};

use crate::KubeError;
use crate::names;

/// The repository of the agent image in the control plane's registry.
pub const AGENT_IMAGE: &str = "widemesh.system/agent";
/// The Secret holding the join token, and the agent's Deployment, in the install namespace.
pub const AGENT: &str = "widemesh-agent";
/// The routers' DaemonSet.
pub const ROUTER: &str = "widemesh-router";
/// Where a pod keeps its files (an `emptyDir`).
const DATA_DIR: &str = "/var/lib/widemesh";

/// What the manifest is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInstall {
    pub rack: String,
    /// The control plane as the cluster's nodes reach it (`http://10.0.0.1:7440`).
    pub api_url: String,
    /// The rack's join token.
    pub join_token: String,
    /// The agent image's tag: the control plane's version.
    pub tag: String,
    /// The edge router's plain HTTP address on each node (`0.0.0.0:80`).
    pub http_listen: Option<String>,
    /// Its HTTPS address (`0.0.0.0:443`).
    pub https_listen: Option<String>,
}

/// `host:port` of the control plane's URL: the registry the nodes pull from.
pub fn registry_host(api_url: &str) -> Result<String, KubeError> {
    let rest = api_url.split_once("://").map(|(_, r)| r).unwrap_or(api_url);
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(KubeError::Kubeconfig(format!(
            "the control plane URL {api_url:?} names no host for the nodes to pull images from"
        )));
    }
    let default_port = if api_url.starts_with("https://") {
        443
    } else {
        80
    };
    Ok(if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    })
}

/// The `.dockerconfigjson` of an image pull secret for `registry` with the rack's join token.
pub fn docker_config(registry: &str, token: &str) -> Vec<u8> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("widemesh:{token}"));
    json!({"auths": {registry: {"username": "widemesh", "password": token, "auth": auth}}})
        .to_string()
        .into_bytes()
}

/// An image pull secret named [`names::PULL_SECRET`] in `namespace`.
pub fn pull_secret(
    namespace: &str,
    labels: BTreeMap<String, String>,
    registry: &str,
    token: &str,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(names::PULL_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(docker_config(registry, token)),
        )])),
        ..Default::default()
    }
}

/// The namespace the agent of `rack` is installed in. It carries no rack label of the
/// agent's own objects, so the agent never prunes it.
pub fn namespace(rack: &str) -> String {
    names::fit(&format!("widemesh-{rack}"))
}

/// The labels of the install's objects (`name`: the agent's or the routers').
fn labels(rack: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.to_string()),
        (
            "app.kubernetes.io/part-of".to_string(),
            names::MANAGER.to_string(),
        ),
        ("widemesh.dev/agent-of".to_string(), rack.to_string()),
    ])
}

/// The objects that install a rack's agent and routers.
#[derive(Debug, Clone)]
pub struct AgentObjects {
    pub namespace: Namespace,
    pub token: Secret,
    pub pull: Secret,
    pub agent: Deployment,
    pub routers: DaemonSet,
}

/// The objects that install the agent of `i.rack`, as a `v1` `List`.
pub fn agent_manifest(i: &AgentInstall) -> Result<Value, KubeError> {
    let o = agent_objects(i)?;
    let item = |kind: &str, api: &str, v: Value| {
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            o.insert("apiVersion".into(), json!(api));
            o.insert("kind".into(), json!(kind));
        }
        v
    };
    let to = |v: serde_json::Result<Value>| {
        v.map_err(|e| KubeError::Api {
            what: "encoding the agent's manifest".into(),
            message: e.to_string(),
        })
    };
    Ok(json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            item("Namespace", "v1", to(serde_json::to_value(&o.namespace))?),
            item("Secret", "v1", to(serde_json::to_value(&o.token))?),
            item("Secret", "v1", to(serde_json::to_value(&o.pull))?),
            item("Deployment", "apps/v1", to(serde_json::to_value(&o.agent))?),
            item("DaemonSet", "apps/v1", to(serde_json::to_value(&o.routers))?),
        ],
    }))
}

/// Installs the agent of `i.rack` into the cluster of `client` by server-side apply (what
/// `kubectl apply -f` of [`agent_manifest`] does): the control plane does this itself for a
/// cluster a provider made.
pub async fn install(client: &kube::Client, i: &AgentInstall) -> Result<(), KubeError> {
    use kube::api::{Api, Patch, PatchParams};
    let o = agent_objects(i)?;
    let ns = namespace(&i.rack);
    let pp = PatchParams::apply(names::FIELD_MANAGER).force();
    let what = |kind: &str| format!("installing the agent's {kind}");
    Api::<Namespace>::all(client.clone())
        .patch(&ns, &pp, &Patch::Apply(&o.namespace))
        .await
        .map_err(|e| KubeError::api(&what("namespace"), e))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for s in [&o.token, &o.pull] {
        let name = s.metadata.name.clone().unwrap_or_default();
        secrets
            .patch(&name, &pp, &Patch::Apply(s))
            .await
            .map_err(|e| KubeError::api(&what("secrets"), e))?;
    }
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .patch(AGENT, &pp, &Patch::Apply(&o.agent))
        .await
        .map_err(|e| KubeError::api(&what("deployment"), e))?;
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .patch(ROUTER, &pp, &Patch::Apply(&o.routers))
        .await
        .map_err(|e| KubeError::api(&what("routers"), e))?;
    Ok(())
}

/// The objects that install the agent of `i.rack`.
pub fn agent_objects(i: &AgentInstall) -> Result<AgentObjects, KubeError> {
    let registry = registry_host(&i.api_url)?;
    let ns = namespace(&i.rack);
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.clone()),
        labels: Some(labels(&i.rack, AGENT)),
        ..Default::default()
    };
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels(&i.rack, AGENT)),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = Secret {
        metadata: meta(AGENT),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            "join-token".to_string(),
            i.join_token.clone(),
        )])),
        ..Default::default()
    };
    let pull = pull_secret(&ns, labels(&i.rack, AGENT), &registry, &i.join_token);

    let agent_args = vec![
        "agent".to_string(),
        "--api-url".into(),
        i.api_url.clone(),
        "--name".into(),
        format!("{}-agent", i.rack),
        "--address".into(),
        "$(NODE_IP)".into(),
        "--data-dir".into(),
        format!("{DATA_DIR}/agent"),
    ];
    let mut router_args = vec![
        "router".to_string(),
        "--routes-only".into(),
        "--api-url".into(),
        i.api_url.clone(),
        "--data-dir".into(),
        format!("{DATA_DIR}/router"),
    ];
    if let Some(h) = &i.http_listen {
        router_args.extend(["--http-listen".into(), h.clone()]);
    }
    if let Some(h) = &i.https_listen {
        router_args.extend(["--https-listen".into(), h.clone()]);
    }
    let image = format!("{registry}/{AGENT_IMAGE}:{}", i.tag);
    let agent = pod_template(&i.rack, AGENT, &image, agent_args);
    let router = pod_template(&i.rack, ROUTER, &image, router_args);
    let deployment = Deployment {
        metadata: meta(AGENT),
        spec: Some(DeploymentSpec {
            // One agent per rack: the old pod stops before the new one starts.
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            selector: selector(AGENT),
            template: agent,
            ..Default::default()
        }),
        status: None,
    };
    let routers = DaemonSet {
        metadata: ObjectMeta {
            labels: Some(labels(&i.rack, ROUTER)),
            ..meta(ROUTER)
        },
        spec: Some(DaemonSetSpec {
            selector: selector(ROUTER),
            template: router,
            // A node's router stops before its successor takes the node's ports.
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: None,
            }),
            ..Default::default()
        }),
        status: None,
    };
    Ok(AgentObjects {
        namespace,
        token,
        pull,
        agent: deployment,
        routers,
    })
}

fn selector(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            name.to_string(),
        )])),
        match_expressions: None,
    }
}

/// A pod of the install: `mesh` with `args`, on the node's network (the agent's address, the
/// routers' ports are the node's), the join token from the Secret, the node's IP as `NODE_IP`.
fn pod_template(rack: &str, name: &str, image: &str, args: Vec<String>) -> PodTemplateSpec {
    let env = vec![
        EnvVar {
            name: "MESH_JOIN_TOKEN".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: AGENT.into(),
                    key: "join-token".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        },
        EnvVar {
            name: "NODE_IP".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "status.hostIP".into(),
                }),
                ..Default::default()
            }),
        },
    ];
    let container = Container {
        name: name.trim_start_matches("widemesh-").into(),
        image: Some(image.to_string()),
        // A control plane upgraded in place serves a new image under the same tag.
        image_pull_policy: Some("Always".into()),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        }]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_BIND_SERVICE".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(rack, name)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            host_network: Some(true),
            dns_policy: Some("ClusterFirstWithHostNet".into()),
            // It reaches the cluster with the rack's kubeconfig from the control plane.
            automount_service_account_token: Some(false),
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: names::PULL_SECRET.into(),
            }]),
            termination_grace_period_seconds: Some(30),
            volumes: Some(vec![Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_the_control_planes_host_and_port() {
        assert_eq!(
            registry_host("http://10.169.0.1:8080").unwrap(),
            "10.169.0.1:8080"
        );
        assert_eq!(
            registry_host("https://mesh.example.com/").unwrap(),
            "mesh.example.com:443"
        );
        assert_eq!(
            registry_host("http://mesh.example.com").unwrap(),
            "mesh.example.com:80"
        );
        assert!(registry_host("http:///x").is_err());
    }

    #[test]
    fn the_manifest_runs_one_agent_and_a_router_on_every_node_with_the_token_in_a_secret() {
        let m = agent_manifest(&AgentInstall {
            rack: "blue".into(),
            api_url: "http://10.0.0.1:7440".into(),
            join_token: "mesh_secret".into(),
            tag: "0.1.0".into(),
            http_listen: Some("0.0.0.0:80".into()),
            https_listen: None,
        })
        .unwrap();
        assert_eq!(m["kind"], "List");
        let items = m["items"].as_array().unwrap();
        let kinds: Vec<_> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Namespace", "Secret", "Secret", "Deployment", "DaemonSet"]
        );
        for i in items {
            let ns = i["metadata"]["namespace"].as_str();
            let name = i["metadata"]["name"].as_str();
            assert_eq!(ns.or(name), Some("widemesh-blue"), "{i}");
            // Never labelled as one of the rack's own objects, which its agent prunes.
            assert!(i["metadata"]["labels"].get(names::RACK).is_none(), "{i}");
        }
        let args = |o: &Value| -> Vec<String> {
            o["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        };
        let d = &items[3];
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["automountServiceAccountToken"], false);
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "10.0.0.1:7440/widemesh.system/agent:0.1.0");
        let agent = args(d);
        assert_eq!(agent[..3], ["agent", "--api-url", "http://10.0.0.1:7440"]);
        assert!(agent.windows(2).any(|w| w == ["--name", "blue-agent"]));
        assert!(!agent.iter().any(|a| a == "--http-listen"), "{agent:?}");
        // The routers: one on every node's network, routing only.
        let r = &items[4];
        assert_eq!(r["spec"]["template"]["spec"]["hostNetwork"], true);
        let router = args(r);
        assert_eq!(router[..2], ["router", "--routes-only"]);
        assert!(
            router
                .windows(2)
                .any(|w| w == ["--http-listen", "0.0.0.0:80"])
        );
        assert_eq!(
            r["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            "widemesh-router"
        );
        assert_eq!(
            r["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
            "widemesh-router"
        );
        // The token is never on a command line or in a pod's spec, only in the Secret.
        assert!(!d.to_string().contains("mesh_secret"), "{d}");
        assert!(!r.to_string().contains("mesh_secret"), "{r}");
        assert_eq!(items[1]["stringData"]["join-token"], "mesh_secret");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "widemesh-agent"
        );
        // The pull secret is for the control plane's registry.
        let pull = items[2]["data"][".dockerconfigjson"].as_str().unwrap();
        assert!(!pull.is_empty());
        assert_eq!(items[2]["type"], "kubernetes.io/dockerconfigjson");
        assert!(
            agent_manifest(&AgentInstall {
                api_url: "http://".into(),
                ..AgentInstall {
                    rack: "blue".into(),
                    api_url: String::new(),
                    join_token: String::new(),
                    tag: String::new(),
                    http_listen: None,
                    https_listen: None,
                }
            })
            .is_err()
        );
    }
}
