//! What the planner's tests build on: a desired state of one environment (`shop`) with one stack
//! (`app`), and instances as the runtime lists them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use mesh_runtime::{ExitStatus, InstanceState, LogPaths, Status};
use mesh_types::api::{HealthCheck, ServiceKind};
use mesh_types::desired::{DesiredState, EnvironmentDoc, ImageRef, ServiceDoc, StackDoc};
use mesh_types::{InstanceSize, Name};

use super::{Observed, Wanted};

pub fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub fn service(name: &str, instances: u32, command: &str) -> ServiceDoc {
    ServiceDoc {
        name: n(name),
        kind: ServiceKind::Web,
        hostname: format!("app-{name}"),
        command: Some(command.into()),
        schedule: None,
        port: 5000,
        instances,
        size: InstanceSize::Nano,
        limits: InstanceSize::Nano.limits(),
        health: HealthCheck::default(),
        env: BTreeMap::from([("PORT".to_string(), "5000".to_string())]),
    }
}

pub fn state(services: Vec<ServiceDoc>, image: Option<&str>) -> DesiredState {
    DesiredState {
        rack: n("local"),
        region: n("local"),
        server_salt: None,
        environments: vec![EnvironmentDoc {
            environment: n("shop"),
            stacks: vec![StackDoc {
                name: n("app"),
                deployment: None,
                image: image.map(|i| ImageRef::Builtin { name: i.into() }),
                services,
            }],
            routes: vec![],
            https_redirects: vec![],
            certificates: vec![],
            acme_challenges: vec![],
            several_racks: false,
            forward_to: Vec::new(),
            forwarded_from: Vec::new(),
        }],
    }
}

pub fn seen(w: &Wanted, running: bool, healthy: bool) -> Observed {
    Observed {
        id: w.id.clone(),
        environment: "shop".into(),
        hostname: w.hostname.clone(),
        running,
        healthy,
        restart_at: None,
    }
}

/// A worker service (no port to probe): healthy once it has run a while.
pub fn worker(name: &str, instances: u32) -> ServiceDoc {
    ServiceDoc {
        kind: ServiceKind::Worker,
        port: 0,
        ..service(name, instances, "sleep 1000")
    }
}

/// An instance as the runtime lists it, in `shop`, at 10.0.0.`host_byte`.
pub fn listed(id: &str, hostname: &str, running: bool, host_byte: u8) -> InstanceState {
    InstanceState {
        id: id.into(),
        environment: "shop".into(),
        hostname: hostname.into(),
        address: Ipv4Addr::new(10, 0, 0, host_byte),
        status: if running {
            Status::Running { pid: 100 }
        } else {
            Status::Exited(ExitStatus {
                code: Some(1),
                signal: None,
                oom_killed: false,
            })
        },
        logs: LogPaths {
            stdout: format!("/logs/{id}.out").into(),
            stderr: format!("/logs/{id}.err").into(),
        },
    }
}

/// The one instance of `w` as listed.
pub fn listed_as(w: &Wanted, running: bool) -> InstanceState {
    listed(&w.id, &w.hostname, running, 2)
}
