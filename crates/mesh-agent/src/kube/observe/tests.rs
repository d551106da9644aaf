use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;

fn server() -> Name {
    Name::parse("k1-agent").unwrap()
}

fn pod(name: &str, state: ContainerState, ready: bool) -> Pod {
    let mut labels = names::service_labels("k1", "shop", "app", "web");
    labels.insert(names::KIND.into(), "web".into());
    labels.insert(names::DEPLOYMENT.into(), "v3".into());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("wm-shop".into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("wm-node".into()),
            containers: vec![Container {
                name: names::CONTAINER.into(),
                ports: Some(vec![ContainerPort {
                    container_port: 5000,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some("10.170.0.7".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: names::CONTAINER.into(),
                ready,
                restart_count: 2,
                state: Some(state),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn running() -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(Timestamp::from_second(1_800_000_000).unwrap())),
        }),
        ..Default::default()
    }
}

#[test]
fn pods_read_as_instances() {
    let i = instance(&pod("app-web-1", running(), true), &server(), 7).unwrap();
    assert_eq!(i.state, InstanceState::Healthy);
    assert_eq!(
        (i.environment.as_str(), i.stack.as_str(), i.service.as_str()),
        ("shop", "app", "web")
    );
    assert_eq!(i.deployment, Some(Version(3)));
    assert_eq!(i.address.as_deref(), Some("10.170.0.7"));
    assert_eq!(i.restarts, 2);
    assert_eq!(i.started_at, Some(1_800_000_000_000));
    assert_eq!(
        instance(&pod("a", running(), false), &server(), 7)
            .unwrap()
            .state,
        InstanceState::Running
    );

    let waiting = |reason: &str| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some("details".into()),
        }),
        ..Default::default()
    };
    let backing = instance(&pod("a", waiting("ImagePullBackOff"), false), &server(), 7).unwrap();
    assert_eq!(backing.state, InstanceState::BackingOff);
    assert!(
        backing
            .message
            .unwrap()
            .contains("ImagePullBackOff: details")
    );
    assert_eq!(
        instance(&pod("a", waiting("ContainerCreating"), false), &server(), 7)
            .unwrap()
            .state,
        InstanceState::Starting
    );
    let ended = |code: i32, reason: &str| ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let oom = instance(&pod("a", ended(137, "OOMKilled"), false), &server(), 7).unwrap();
    assert_eq!(
        (oom.state, oom.exit_code),
        (InstanceState::OomKilled, Some(137))
    );
    assert_eq!(
        instance(&pod("a", ended(2, "Error"), false), &server(), 7)
            .unwrap()
            .state,
        InstanceState::Crashed
    );
    let mut foreign = pod("a", running(), true);
    foreign.metadata.labels = None;
    assert!(instance(&foreign, &server(), 7).is_none());
}

#[test]
fn ready_pods_are_backends_and_deleted_ones_drain() {
    let mut going = pod("app-web-2", running(), true);
    going.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    let pods = [
        pod("app-web-1", running(), true),
        going,
        pod("app-web-3", running(), false),
    ];
    let b = backends(&pods);
    let web = &b["shop/app-web"];
    assert_eq!(web.len(), 3);
    assert!(web[0].healthy && !web[0].draining);
    assert_eq!(web[0].addr.to_string(), "10.170.0.7:5000");
    assert!(!web[1].healthy && web[1].draining);
    assert!(!web[2].healthy && !web[2].draining);
}

#[test]
fn ended_oneoffs_go_after_a_while() {
    let ended_at = |s: i64| ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: 0,
            finished_at: Some(Time(Timestamp::from_second(s).unwrap())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut old = pod("app-run-x1", ended_at(1_000), false);
    old.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(names::ONEOFF.into(), "true".into());
    let mut fresh = pod("app-run-x2", ended_at(1_100), false);
    fresh
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(names::ONEOFF.into(), "true".into());
    let service_pod = pod("app-web-1", ended_at(1_000), false);
    let gone = expired_oneoffs(&[old, fresh, service_pod], 1_120_000, 60_000);
    assert_eq!(
        gone,
        vec![("wm-shop".to_string(), "app-run-x1".to_string())]
    );
}
