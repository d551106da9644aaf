//! What a rack's desired state is in Kubernetes objects: a pure function, unit-tested, that the
//! reconciler applies (server-side apply) and prunes against (`apply.rs`).
//!
//! Per environment: a Namespace, a NetworkPolicy that lets in only the namespace's own pods and
//! the rack's routers, and an image pull secret holding the rack's join token. Per service: a
//! Deployment (web, worker) or a CronJob (cron), and for web services a Service named
//! `<stack>-<service>`, so the name resolves inside the environment as it does on native racks.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, LocalObjectReference, Namespace, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecurityContext, Service, ServicePort,
    ServiceSpec, SleepAction, TCPSocketAction,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mesh_types::api::ServiceKind;
use mesh_types::desired::{DesiredState, EnvironmentDoc, ImageRef, ServiceDoc, StackDoc};

use mesh_kube::names;

/// What the objects depend on besides the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `host:port` of the control plane's registry (the API's address, as the nodes reach it).
    pub registry: String,
    /// The rack's join token: the pull secret's password.
    pub pull_token: String,
    /// Where the rack's routers reach pods from (`10.0.0.5/32`): let in by every namespace's
    /// NetworkPolicy besides the namespace's own pods.
    pub router_sources: Vec<String>,
    /// Seconds a stopped pod gets between SIGTERM and SIGKILL.
    pub stop_grace_s: i64,
    /// Seconds a web pod being replaced keeps serving after it left the routers (preStop), so
    /// requests already sent to it finish.
    pub drain_s: i64,
}

/// Everything the agent wants in the cluster for one rack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    pub namespaces: Vec<Namespace>,
    pub secrets: Vec<Secret>,
    pub policies: Vec<NetworkPolicy>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub cronjobs: Vec<CronJob>,
}

/// The objects of `desired` for a rack.
pub fn wanted(desired: &DesiredState, ctx: &Context) -> Wanted {
    let rack = desired.rack.as_str();
    let mut w = Wanted::default();
    for env in &desired.environments {
        let ns = names::namespace(env.environment.as_str());
        w.namespaces.push(namespace(rack, env, &ns));
        w.secrets.push(pull_secret(rack, env, &ns, ctx));
        w.policies.push(isolation(rack, env, &ns, ctx));
        for stack in &env.stacks {
            let Some(image) = &stack.image else { continue };
            for svc in &stack.services {
                let pod = Pod {
                    rack,
                    env,
                    stack,
                    svc,
                    image,
                    ctx,
                };
                match svc.kind {
                    ServiceKind::Cron => w.cronjobs.push(pod.cronjob(&ns)),
                    ServiceKind::Web | ServiceKind::Worker => {
                        w.deployments.push(pod.deployment(&ns));
                        if svc.kind == ServiceKind::Web {
                            w.services.push(pod.service(&ns));
                        }
                    }
                }
            }
        }
    }
    w
}

/// What a one-off pod (`mesh run`, a release command) runs.
#[derive(Debug, Clone)]
pub struct OneOff {
    pub rack: String,
    pub environment: mesh_types::Name,
    pub stack: mesh_types::Name,
    /// The task's instance id: the pod's name.
    pub instance: String,
    pub image: ImageRef,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub limits: mesh_types::size::SizeLimits,
}

/// The pod of a one-off run: the stack's image with its config, run once to its end. It has no
/// service label, so no Deployment's selector takes it.
pub fn oneoff_pod(o: &OneOff, ctx: &Context) -> k8s_openapi::api::core::v1::Pod {
    let env = EnvironmentDoc {
        environment: o.environment.clone(),
        stacks: Vec::new(),
        routes: Vec::new(),
        https_redirects: Vec::new(),
        certificates: Vec::new(),
        acme_challenges: Vec::new(),
        several_racks: false,
        forward_to: Vec::new(),
        forwarded_from: Vec::new(),
    };
    let stack = StackDoc {
        name: o.stack.clone(),
        deployment: None,
        image: Some(o.image.clone()),
        services: Vec::new(),
    };
    let svc = ServiceDoc {
        name: o.stack.clone(),
        kind: ServiceKind::Worker,
        hostname: String::new(),
        command: Some(o.command.clone()),
        schedule: None,
        port: 0,
        instances: 1,
        size: mesh_types::InstanceSize::Nano,
        limits: o.limits,
        health: Default::default(),
        env: o.env.clone(),
    };
    let pod = Pod {
        rack: &o.rack,
        env: &env,
        stack: &stack,
        svc: &svc,
        image: &o.image,
        ctx,
    };
    let template = pod.template("Never");
    let mut labels = env_labels(&o.rack, &env);
    labels.insert(names::STACK.into(), o.stack.to_string());
    labels.insert(names::ONEOFF.into(), "true".into());
    k8s_openapi::api::core::v1::Pod {
        metadata: meta(
            &o.instance,
            Some(&names::namespace(o.environment.as_str())),
            labels,
        ),
        spec: template.spec,
        status: None,
    }
}

fn meta(name: &str, ns: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: ns.map(str::to_string),
        labels: Some(labels),
        ..Default::default()
    }
}

fn env_labels(rack: &str, env: &EnvironmentDoc) -> BTreeMap<String, String> {
    let mut l = names::owned(rack);
    l.insert(names::ENVIRONMENT.into(), env.environment.to_string());
    l
}

fn namespace(rack: &str, env: &EnvironmentDoc, ns: &str) -> Namespace {
    Namespace {
        metadata: meta(ns, None, env_labels(rack, env)),
        ..Default::default()
    }
}

/// The image reference pods of a built image run: `<registry>/<env>/<stack>:sha256-<hex>`.
pub fn image_ref(registry: &str, environment: &str, stack: &str, image: &ImageRef) -> String {
    match image {
        ImageRef::Built(b) => format!(
            "{registry}/{environment}/{stack}:{}",
            b.digest.replace(':', "-")
        ),
        // The agent refuses these before it applies anything (`unservable`).
        ImageRef::Builtin { name } => format!("{registry}/{environment}/{stack}:builtin-{name}"),
    }
}

/// Why a stack of `desired` cannot run on a Kubernetes rack, if one cannot: the built-in
/// images exist only as native agents make them, with no image for a registry to serve.
pub fn unservable(stack: &StackDoc) -> Option<String> {
    match &stack.image {
        Some(ImageRef::Builtin { name }) => Some(format!(
            "stack {} runs the built-in image {name:?}, which only native racks make; deploy a \
             build (`mesh deploy`) to run it on a Kubernetes rack",
            stack.name
        )),
        _ => None,
    }
}

fn pull_secret(rack: &str, env: &EnvironmentDoc, ns: &str, ctx: &Context) -> Secret {
    mesh_kube::install::pull_secret(ns, env_labels(rack, env), &ctx.registry, &ctx.pull_token)
}

/// The link-local block, where clouds serve a server's metadata (169.254.169.254: its user
/// data, which holds the secrets its first boot needs): never reachable from an instance, as on
/// native racks (the runtime's firewall).
pub const LINK_LOCAL: &str = "169.254.0.0/16";

/// Only the namespace's own pods and the rack's routers get in; everything from other
/// namespaces (other environments, whether by pod or Service address) is dropped. Out, pods
/// reach any pod (whose own policy decides) and any address but the link-local block (there,
/// only DNS, for a node-local DNS cache).
fn isolation(rack: &str, env: &EnvironmentDoc, ns: &str, ctx: &Context) -> NetworkPolicy {
    let mut from = vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    }];
    from.extend(ctx.router_sources.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        ..Default::default()
    }));
    NetworkPolicy {
        metadata: meta(names::ISOLATION_POLICY, Some(ns), env_labels(rack, env)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: None,
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        ..Default::default()
                    }]),
                    ports: None,
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: "0.0.0.0/0".into(),
                            except: Some(vec![LINK_LOCAL.into()]),
                        }),
                        ..Default::default()
                    }]),
                    ports: None,
                },
                // A node-local DNS cache (NodeLocal DNSCache) answers on a link-local address:
                // its port only.
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: LINK_LOCAL.into(),
                            except: None,
                        }),
                        ..Default::default()
                    }]),
                    ports: Some(
                        ["UDP", "TCP"]
                            .map(|protocol| NetworkPolicyPort {
                                port: Some(IntOrString::Int(53)),
                                protocol: Some(protocol.into()),
                                end_port: None,
                            })
                            .to_vec(),
                    ),
                },
            ]),
        }),
    }
}

/// One service's pods, in the making.
struct Pod<'a> {
    rack: &'a str,
    env: &'a EnvironmentDoc,
    stack: &'a StackDoc,
    svc: &'a ServiceDoc,
    image: &'a ImageRef,
    ctx: &'a Context,
}

impl Pod<'_> {
    fn name(&self) -> String {
        names::workload(self.stack.name.as_str(), self.svc.name.as_str())
    }

    fn labels(&self) -> BTreeMap<String, String> {
        names::service_labels(
            self.rack,
            self.env.environment.as_str(),
            self.stack.name.as_str(),
            self.svc.name.as_str(),
        )
    }

    fn template(&self, restart: &str) -> PodTemplateSpec {
        let mut labels = self.labels();
        labels.insert(names::KIND.into(), self.svc.kind.to_string());
        if let Some(v) = self.stack.deployment {
            labels.insert(names::DEPLOYMENT.into(), format!("v{}", v.0));
        }
        let web = self.svc.kind == ServiceKind::Web;
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![self.container()],
                restart_policy: Some(restart.into()),
                image_pull_secrets: Some(vec![LocalObjectReference {
                    name: names::PULL_SECRET.into(),
                }]),
                // Tenant code gets no credentials to the cluster, and no variables naming
                // other Services.
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                termination_grace_period_seconds: Some(
                    self.ctx.stop_grace_s + if web { self.ctx.drain_s } else { 0 },
                ),
                ..Default::default()
            }),
        }
    }

    fn container(&self) -> Container {
        let (command, vars) =
            crate::images::shape(self.image, self.svc.command.clone(), &self.svc.env);
        let limits = self.svc.limits;
        let quantity = |cpu: f64, memory_mb: u32| {
            BTreeMap::from([
                (
                    "cpu".to_string(),
                    Quantity(format!("{}m", (cpu * 1000.0).round() as u64)),
                ),
                ("memory".to_string(), Quantity(format!("{memory_mb}Mi"))),
            ])
        };
        let web = self.svc.kind == ServiceKind::Web;
        let port = i32::from(self.svc.port);
        Container {
            name: names::CONTAINER.into(),
            image: Some(image_ref(
                &self.ctx.registry,
                self.env.environment.as_str(),
                self.stack.name.as_str(),
                self.image,
            )),
            image_pull_policy: Some("IfNotPresent".into()),
            command: command.map(|c| vec!["/bin/sh".into(), "-c".into(), c]),
            env: Some(
                vars.into_iter()
                    .map(|(name, value)| EnvVar {
                        name,
                        value: Some(value),
                        value_from: None,
                    })
                    .collect(),
            ),
            ports: web.then(|| {
                vec![ContainerPort {
                    container_port: port,
                    name: Some("http".into()),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]
            }),
            // A quarter of the size's CPU is reserved, all of it is the limit (native racks
            // reserve nothing); memory is reserved whole.
            resources: Some(ResourceRequirements {
                requests: Some(quantity(limits.cpu / 4.0, limits.memory_mb)),
                limits: Some(quantity(limits.cpu, limits.memory_mb)),
                ..Default::default()
            }),
            readiness_probe: web.then(|| self.probe(1, 1)),
            // Restarted when its port stops answering for 30 s once it had its grace.
            liveness_probe: web.then(|| Probe {
                initial_delay_seconds: Some(self.svc.health.grace_s as i32),
                ..self.probe(10, 3)
            }),
            lifecycle: web.then(|| Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction {
                        seconds: self.ctx.drain_s,
                    }),
                    ..Default::default()
                }),
                post_start: None,
                stop_signal: None,
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    add: None,
                    drop: Some(vec!["NET_RAW".into(), "SYS_CHROOT".into(), "MKNOD".into()]),
                }),
                // The container runtime's default seccomp profile (Docker's), as native racks
                // apply it; Kubernetes runs pods unconfined unless told.
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The health check as a probe: an HTTP GET of its path, else a TCP connect to the port.
    fn probe(&self, period_s: i32, failures: i32) -> Probe {
        let port = IntOrString::Int(i32::from(self.svc.port));
        let (http_get, tcp_socket) = match &self.svc.health.http_path {
            Some(path) => (
                Some(HTTPGetAction {
                    path: Some(path.clone()),
                    port,
                    ..Default::default()
                }),
                None,
            ),
            None => (None, Some(TCPSocketAction { port, host: None })),
        };
        Probe {
            http_get,
            tcp_socket,
            exec: None::<ExecAction>,
            period_seconds: Some(period_s),
            failure_threshold: Some(failures),
            timeout_seconds: Some(2),
            ..Default::default()
        }
    }

    fn deployment(&self, ns: &str) -> Deployment {
        let name = self.name();
        Deployment {
            metadata: meta(&name, Some(ns), self.labels()),
            spec: Some(DeploymentSpec {
                replicas: Some(self.svc.instances as i32),
                selector: LabelSelector {
                    match_labels: Some(self.labels()),
                    match_expressions: None,
                },
                // A rollout never has fewer ready pods than asked: a new pod first, then an
                // old one goes once the new one is ready.
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::Int(0)),
                        max_surge: Some(IntOrString::Int(1)),
                    }),
                }),
                // A version that never gets ready stays a rollout in progress, with the old
                // pods serving; the control plane's deployment gives up on its own timeout.
                progress_deadline_seconds: Some(600),
                revision_history_limit: Some(2),
                template: self.template("Always"),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn service(&self, ns: &str) -> Service {
        let port = i32::from(self.svc.port);
        Service {
            metadata: meta(&self.name(), Some(ns), self.labels()),
            spec: Some(ServiceSpec {
                selector: Some(self.labels()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port,
                    target_port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                type_: Some("ClusterIP".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn cronjob(&self, ns: &str) -> CronJob {
        let schedule = self
            .svc
            .schedule
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "@yearly".into());
        CronJob {
            metadata: meta(&self.name(), Some(ns), self.labels()),
            spec: Some(CronJobSpec {
                schedule,
                time_zone: Some("Etc/UTC".into()),
                // A run never overlaps the one before it, as on native racks.
                concurrency_policy: Some("Forbid".into()),
                successful_jobs_history_limit: Some(1),
                failed_jobs_history_limit: Some(1),
                job_template: JobTemplateSpec {
                    metadata: None,
                    spec: Some(JobSpec {
                        backoff_limit: Some(0),
                        template: self.template("Never"),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }
}

#[cfg(test)]
mod tests;
