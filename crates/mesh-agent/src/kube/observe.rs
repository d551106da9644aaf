//! Pods as the platform sees them: instance states for the control plane and backends for the
//! rack's edge router. Pure functions of the pods the agent listed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::routing::{Backend, upstream_key};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use mesh_types::api::{Instance, InstanceState};
use mesh_types::{Name, UnixMs, Version};

use mesh_kube::names;

/// The instance a pod of ours is, or `None` for a pod without our labels.
pub fn instance(pod: &Pod, server: &Name, now: UnixMs) -> Option<Instance> {
    let labels = pod.metadata.labels.as_ref()?;
    let label = |k: &str| labels.get(k).and_then(|v| Name::parse(v).ok());
    let environment = label(names::ENVIRONMENT)?;
    let stack = label(names::STACK)?;
    let service = label(names::SERVICE).or_else(|| {
        labels
            .get(names::ONEOFF)
            .and_then(|_| Name::parse("run").ok())
    })?;
    let deployment = labels
        .get(names::DEPLOYMENT)
        .and_then(|v| Version::parse(v).ok());
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == names::CONTAINER));
    let (state, exit_code, message, started_at) =
        state_of(pod, container.map(|c| (&c.state, &c.last_state, c.ready)));
    Some(Instance {
        id: pod.metadata.name.clone()?,
        environment,
        stack,
        service,
        deployment,
        server: Some(server.clone()),
        rack: None,
        state,
        address: status.and_then(|s| s.pod_ip.clone()),
        restarts: container
            .map(|c| c.restart_count.max(0) as u32)
            .unwrap_or(0),
        exit_code,
        message,
        started_at,
        updated_at: now,
    })
}

type Observed<'a> = (&'a Option<ContainerState>, &'a Option<ContainerState>, bool);

/// The state, exit code, message and start time of a pod from its container's status.
fn state_of(
    pod: &Pod,
    container: Option<Observed<'_>>,
) -> (InstanceState, Option<i32>, Option<String>, Option<UnixMs>) {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let on = |m: String| match &node {
        Some(n) => Some(format!("{m} (node {n})")),
        None => Some(m),
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return (InstanceState::Stopped, None, on("stopping".into()), None);
    }
    let Some((state, last, ready)) = container else {
        let why = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            })
            .and_then(|c| c.message.clone());
        return (
            InstanceState::Starting,
            None,
            why.map(|w| format!("not scheduled: {w}")),
            None,
        );
    };
    let last_oom = last
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
    let last_exit = last
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(|t| t.exit_code);
    let state = state.as_ref();
    if let Some(run) = state.and_then(|s| s.running.as_ref()) {
        let started = run.started_at.as_ref().map(|t| t.0.as_millisecond());
        let s = if ready {
            InstanceState::Healthy
        } else {
            InstanceState::Running
        };
        return (s, None, node.map(|n| format!("node {n}")), started);
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        let s = match (t.reason.as_deref(), t.exit_code, phase.as_str()) {
            (Some("OOMKilled"), _, _) => InstanceState::OomKilled,
            (_, 0, _) | (_, _, "Succeeded") => InstanceState::Stopped,
            _ => InstanceState::Crashed,
        };
        return (
            s,
            Some(t.exit_code),
            on(t.reason.clone().unwrap_or_default()),
            None,
        );
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.clone().unwrap_or_default();
        let detail = match &w.message {
            Some(m) => format!("{reason}: {m}"),
            None => reason.clone(),
        };
        let s = match reason.as_str() {
            "CrashLoopBackOff" if last_oom => InstanceState::OomKilled,
            "CrashLoopBackOff"
            | "ImagePullBackOff"
            | "ErrImagePull"
            | "CreateContainerError"
            | "CreateContainerConfigError"
            | "InvalidImageName"
            | "RunContainerError" => InstanceState::BackingOff,
            _ => InstanceState::Starting,
        };
        return (s, last_exit, on(detail), None);
    }
    (InstanceState::Starting, None, None, None)
}

/// The router's backends of the web pods: by upstream key, each pod at its address and port,
/// healthy once ready, draining once it is being deleted (it takes no new requests then, and
/// its preStop pause lets the ones it has finish).
pub fn backends(pods: &[Pod]) -> BTreeMap<String, Vec<Backend>> {
    let mut out: BTreeMap<String, Vec<Backend>> = BTreeMap::new();
    for pod in pods {
        let Some(labels) = pod.metadata.labels.as_ref() else {
            continue;
        };
        if labels.get(names::KIND).map(String::as_str) != Some("web") {
            continue;
        }
        let (Some(env), Some(stack), Some(service)) = (
            labels.get(names::ENVIRONMENT),
            labels.get(names::STACK),
            labels.get(names::SERVICE),
        ) else {
            continue;
        };
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        else {
            continue;
        };
        let Some(port) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.ports.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| u16::try_from(p.container_port).ok())
        else {
            continue;
        };
        let draining = pod.metadata.deletion_timestamp.is_some();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        out.entry(upstream_key(env, stack, service))
            .or_default()
            .push(Backend {
                id: pod.metadata.name.clone().unwrap_or_default(),
                addr: SocketAddr::new(ip, port),
                healthy: ready && !draining,
                draining,
            });
    }
    out
}

/// One-off pods (`mesh run`) that ended more than `keep_ms` ago, as (namespace, name): their
/// task removes them after a while, and this catches the ones whose agent restarted meanwhile.
pub fn expired_oneoffs(pods: &[Pod], now: UnixMs, keep_ms: i64) -> Vec<(String, String)> {
    pods.iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(names::ONEOFF))
                && p.metadata.deletion_timestamp.is_none()
        })
        .filter(|p| {
            let finished = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.iter().find(|c| c.name == names::CONTAINER))
                .and_then(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone());
            finished.is_some_and(|t| now - t.0.as_millisecond() > keep_ms)
        })
        .filter_map(|p| Some((p.metadata.namespace.clone()?, p.metadata.name.clone()?)))
        .collect()
}

#[cfg(test)]
mod tests;
