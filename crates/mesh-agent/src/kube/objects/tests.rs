use mesh_types::Schedule;
use mesh_types::api::ServiceKind;
use mesh_types::desired::{BuiltImage, ImageConfig, ImageRef};

use super::*;
use crate::plan::fixtures::{service, state, worker};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn ctx() -> Context {
    Context {
        registry: "10.0.0.1:8080".into(),
        pull_token: "mesh_secret".into(),
        router_sources: vec!["10.0.0.9/32".into()],
        stop_grace_s: 10,
        drain_s: 5,
    }
}

fn built() -> ImageRef {
    ImageRef::Built(BuiltImage {
        digest: format!("sha256:{}", "ab".repeat(32)),
        base: Some("busybox".into()),
        layers: vec![],
        config: ImageConfig::default(),
    })
}

fn desired() -> DesiredState {
    let mut web = service("web", 2, "httpd -f -p $PORT");
    web.health.http_path = Some("/up".into());
    let mut tick = worker("tick", 1);
    tick.kind = ServiceKind::Cron;
    tick.schedule = Some(Schedule::parse("*/5 * * * *").unwrap());
    let mut d = state(vec![web, worker("jobs", 1), tick], None);
    d.rack = "k1".parse().unwrap();
    d.environments[0].stacks[0].image = Some(built());
    d
}

#[test]
fn an_environment_is_a_namespace_closed_to_other_namespaces() {
    let w = wanted(&desired(), &ctx());
    assert_eq!(w.namespaces.len(), 1);
    let ns = &w.namespaces[0].metadata;
    assert_eq!(ns.name.as_deref(), Some("wm-shop"));
    let labels = ns.labels.as_ref().unwrap();
    assert_eq!(labels[names::MANAGED_BY], "widemesh");
    assert_eq!(labels[names::RACK], "k1");
    assert_eq!(labels[names::ENVIRONMENT], "shop");

    let policy = w.policies[0].spec.as_ref().unwrap();
    assert_eq!(
        policy.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    // Out: any pod (its own policy decides), any address but the clouds' metadata block.
    let egress = policy.egress.as_ref().unwrap();
    assert_eq!(egress.len(), 3);
    // In the link-local block, DNS only (a node-local DNS cache), not the metadata service.
    let dns = &egress[2];
    assert_eq!(
        dns.to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr,
        "169.254.0.0/16"
    );
    let ports: Vec<_> = dns
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.protocol.clone().unwrap(), p.port.clone().unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("UDP".to_string(), IntOrString::Int(53)),
            ("TCP".to_string(), IntOrString::Int(53))
        ]
    );
    let to_pods = &egress[0].to.as_ref().unwrap()[0];
    assert_eq!(to_pods.namespace_selector, Some(LabelSelector::default()));
    let outside = egress[1].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap();
    assert_eq!(outside.cidr, "0.0.0.0/0");
    assert_eq!(
        outside.except.as_deref(),
        Some(&["169.254.0.0/16".to_string()][..])
    );
    let from = policy.ingress.as_ref().unwrap()[0].from.as_ref().unwrap();
    // The namespace's own pods (an empty pod selector and no namespace selector) and the
    // routers, nothing else.
    assert_eq!(from.len(), 2);
    assert!(from[0].namespace_selector.is_none());
    assert_eq!(from[0].pod_selector, Some(LabelSelector::default()));
    assert_eq!(from[1].ip_block.as_ref().unwrap().cidr, "10.0.0.9/32");

    let secret = &w.secrets[0];
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let config: serde_json::Value =
        serde_json::from_slice(&secret.data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
    assert_eq!(config["auths"]["10.0.0.1:8080"]["password"], "mesh_secret");
}

#[test]
fn web_services_roll_without_unavailability_and_drain_before_they_stop() {
    let w = wanted(&desired(), &ctx());
    assert_eq!(w.deployments.len(), 2, "web and worker");
    let web = w
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("app-web"))
        .unwrap();
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let rolling = spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.enable_service_links, Some(false));
    assert_eq!(pod.termination_grace_period_seconds, Some(15));
    assert_eq!(
        pod.image_pull_secrets.as_ref().unwrap()[0].name,
        names::PULL_SECRET
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("10.0.0.1:8080/shop/app:sha256-{}", "ab".repeat(32)).as_str())
    );
    assert_eq!(c.command.as_ref().unwrap()[..2], ["/bin/sh", "-c"]);
    assert!(c.command.as_ref().unwrap()[2].contains("exec httpd -f -p $PORT"));
    let ready = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        ready.http_get.as_ref().unwrap().path.as_deref(),
        Some("/up")
    );
    assert_eq!(
        c.lifecycle
            .as_ref()
            .unwrap()
            .pre_stop
            .as_ref()
            .unwrap()
            .sleep
            .as_ref()
            .unwrap()
            .seconds,
        5
    );
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "250m");
    assert_eq!(limits["memory"].0, "256Mi");
    let security = c.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    // Its pods carry its service's labels and its Service selects them by name.
    let svc = &w.services[0];
    assert_eq!(svc.metadata.name.as_deref(), Some("app-web"));
    assert_eq!(
        svc.spec.as_ref().unwrap().selector,
        spec.selector.match_labels
    );

    let worker = w
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("app-jobs"))
        .unwrap();
    let c = &worker
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert!(c.readiness_probe.is_none() && c.ports.is_none() && c.lifecycle.is_none());
    assert_eq!(w.services.len(), 1, "workers get no Service");
}

#[test]
fn cron_services_are_cronjobs_that_never_overlap() {
    let w = wanted(&desired(), &ctx());
    let cron = w.cronjobs[0].spec.as_ref().unwrap();
    assert_eq!(cron.schedule, "*/5 * * * *");
    assert_eq!(cron.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(cron.time_zone.as_deref(), Some("Etc/UTC"));
    let job = cron.job_template.spec.as_ref().unwrap();
    assert_eq!(
        job.template
            .spec
            .as_ref()
            .unwrap()
            .restart_policy
            .as_deref(),
        Some("Never")
    );
}

#[test]
fn stacks_without_an_image_get_nothing_and_built_in_images_are_refused() {
    let mut d = desired();
    d.environments[0].stacks[0].image = None;
    let w = wanted(&d, &ctx());
    assert_eq!(w.namespaces.len(), 1);
    assert!(w.deployments.is_empty() && w.cronjobs.is_empty() && w.services.is_empty());
    let mut stack = d.environments[0].stacks[0].clone();
    stack.image = Some(ImageRef::Builtin {
        name: "busybox".into(),
    });
    assert!(
        unservable(&stack)
            .unwrap()
            .contains("only native racks make")
    );
}

#[test]
fn a_oneoff_pod_is_no_services_and_runs_once() {
    let o = OneOff {
        rack: "k1".into(),
        environment: "shop".parse().unwrap(),
        stack: "app".parse().unwrap(),
        instance: "app-run-x12345678".into(),
        image: built(),
        command: "echo hi".into(),
        env: Default::default(),
        limits: mesh_types::InstanceSize::Nano.limits(),
    };
    let pod = oneoff_pod(&o, &ctx());
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert!(
        !labels.contains_key(names::SERVICE),
        "no Deployment selects it"
    );
    assert!(labels.contains_key(names::ONEOFF));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("wm-shop"));
    assert_eq!(
        pod.spec.as_ref().unwrap().restart_policy.as_deref(),
        Some("Never")
    );
}
