//! mesh-client covers every route of the control plane: a stand-in server built from
//! `mesh_server::ROUTES` records which route each client method reaches, and every route must be
//! reached (but the registry API's, under `/v2/`, which container runtimes call). A route added
//! to the server without a client method fails here.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodFilter, on};
use mesh_client::{Client, LogQuery};
use mesh_types::agent::{LogBatch, RegisterServer, StatusReport};
use mesh_types::api::*;
use mesh_types::config::ConfigChange;
use mesh_types::{Domain, Name, Version};

type Seen = Arc<Mutex<BTreeSet<(String, String)>>>;

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// Every route answers 404 with the error body after noting (method, route pattern).
fn stand_in(seen: Seen) -> Router {
    let mut router = Router::new();
    for (method, path) in mesh_server::ROUTES.iter() {
        let key = (method.to_string(), path.clone());
        let handler = move |State(seen): State<Seen>| {
            let key = key.clone();
            async move {
                seen.lock().unwrap().insert(key);
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(
                        serde_json::json!({"error": {"code": "not_found", "message": "stand-in"}}),
                    ),
                )
            }
        };
        let filter = MethodFilter::try_from(method.clone()).unwrap();
        router = router.route(path, on(filter, handler));
    }
    router.with_state(seen)
}

/// Calls every method of the client once; each must reach the stand-in.
async fn call_everything(c: &Client) {
    macro_rules! reach {
        ($call:expr) => {
            match $call.await {
                Err(mesh_client::Error::Api { message, .. }) if message == "stand-in" => {}
                other => panic!(
                    "{} did not reach a route: {:?}",
                    stringify!($call),
                    other.map(|_| ())
                ),
            }
        };
    }
    let (e, s, v) = ("shop", "app", "web");
    let change = ConfigChange::default();
    let stack = CreateStack {
        name: n("app"),
        formula: None,
    };
    let svc = CreateService {
        name: n("web"),
        command: None,
        schedule: None,
        port: None,
        instances: None,
        size: None,
        health_path: None,
    };
    let route = PublishService {
        stack: n("app"),
        service: n("web"),
        path: None,
    };
    let unroute = UnpublishService {
        stack: n("app"),
        service: n("web"),
        path: None,
    };
    reach!(c.healthz());
    reach!(c.metrics());
    reach!(c.openapi());
    reach!(c.whoami());
    reach!(c.list_tokens());
    reach!(c.create_token(&CreateToken {
        name: n("ci"),
        role: Some(mesh_types::api::Role::Admin),
        environments: vec![],
        expires_in_secs: None,
    }));
    reach!(c.delete_token("ci"));
    reach!(c.list_events(None));
    reach!(c.list_providers());
    reach!(c.create_provider(&CreateProvider {
        name: n("p"),
        kind: ProviderKind::Local,
        secrets: Default::default(),
    }));
    reach!(c.provider("p"));
    reach!(c.delete_provider("p"));
    reach!(c.list_racks());
    reach!(c.create_rack(&CreateRack {
        name: n("r"),
        provider: n("p"),
        region: n("x"),
        size: None,
        domain: None,
        address: None,
        runtime: None,
        kubeconfig: None,
        servers: None,
    }));
    reach!(c.rack("r"));
    reach!(c.list_made_servers("r"));
    reach!(c.delete_rack("r"));
    reach!(c.upgrade_rack("r", &UpgradeRack::default()));
    reach!(c.resize_rack(
        "r",
        &ResizeRack {
            size: "s".into(),
            replace: ReplaceOptions::default(),
        }
    ));
    reach!(c.replacement("r"));
    reach!(c.list_servers("r"));
    reach!(c.list_environments());
    reach!(c.create_environment(&CreateEnvironment {
        name: n(e),
        racks: vec![],
    }));
    reach!(c.environment(e));
    reach!(c.update_environment(
        e,
        &UpdateEnvironment {
            racks: vec![],
            drain_grace_s: None
        }
    ));
    reach!(c.delete_environment(e));
    reach!(c.logs(e, &LogQuery::default()));
    reach!(c.list_instances(e));
    reach!(c.list_stacks(e));
    reach!(c.create_stack(e, &stack));
    reach!(c.stack(e, s));
    reach!(c.update_stack(e, s, &UpdateStack::default()));
    reach!(c.delete_stack(e, s));
    reach!(c.stack_config(e, s));
    reach!(c.change_stack_config(e, s, &change));
    reach!(c.list_deployments(e, s));
    reach!(c.create_deployment(e, s, &mesh_types::api::CreateDeployment::default()));
    reach!(c.rollback(e, s, None));
    reach!(c.follow_deployment_log(e, s, Version(1)));
    reach!(c.upload(
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "source",
        0,
        Vec::<u8>::new()
    ));
    reach!(c.deployment(e, s, Version(1)));
    reach!(c.deployment_log(e, s, Version(1)));
    reach!(c.list_services(e, s));
    reach!(c.create_service(e, s, &svc));
    reach!(c.service(e, s, v));
    reach!(c.update_service(e, s, v, &UpdateService::default()));
    reach!(c.delete_service(e, s, v));
    reach!(c.scale_service(e, s, v, &ScaleService::default()));
    reach!(c.service_config(e, s, v));
    reach!(c.change_service_config(e, s, v, &change));
    reach!(c.resolved_config(e, s, v, None));
    reach!(c.list_environment_services(e));
    reach!(c.list_endpoints(e));
    reach!(c.create_endpoint(
        e,
        &CreateEndpoint {
            domain: Domain::parse("a.example.com").unwrap(),
        }
    ));
    reach!(c.endpoint(e, "a.example.com"));
    reach!(c.update_endpoint(
        e,
        "a.example.com",
        &mesh_types::api::UpdateEndpoint::default()
    ));
    reach!(c.delete_endpoint(e, "a.example.com"));
    reach!(c.publish(e, "a.example.com", &route));
    reach!(c.unpublish(e, "a.example.com", &unroute));
    reach!(c.list_certificates(e));
    reach!(c.upload_certificate(e, &UploadCertificate { files: vec![] }));
    reach!(c.delete_certificate(e, "ab12"));
    reach!(c.register_server(&RegisterServer {
        name: n("srv"),
        address: "127.0.0.1".into(),
        cpus: 1.0,
        memory_mb: 1,
        version: None,
        router: None,
    }));
    reach!(c.agent_rack());
    reach!(c.watch(None));
    reach!(c.blob("sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    reach!(c.report_status(&StatusReport {
        server: n("srv"),
        instances: vec![],
    }));
    reach!(c.ship_logs(&LogBatch { lines: vec![] }));
    reach!(c.report_task_result("t1", &mesh_types::agent::TaskResult::default()));
    let run = RunRequest {
        command: "true".into(),
        service: None,
        size: None,
        rack: None,
    };
    reach!(c.run("shop", "app", &run));
    let exec = ExecRequest {
        command: vec!["ls".into()],
    };
    reach!(c.exec("shop", "app-web-1", &exec));
}

#[test]
fn the_client_reaches_every_route_of_the_server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen: Seen = Arc::default();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = stand_in(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::new(&format!("http://{addr}"), "t").unwrap();
        call_everything(&client).await;
    });
    let seen = seen.lock().unwrap().clone();
    // The registry API (`/v2/`) is for container runtimes (containerd pulling a rack's images),
    // not for the CLI: mesh-client has no methods for it (docs/registry.md). Nor for what a
    // cloud server's first boot does with curl: download the mesh binary (`/v1/agent/mesh`) and
    // hand a made cluster's kubeconfig over (`/v1/agent/kubeconfig`, providers.md).
    let by_servers = ["/v1/agent/mesh", "/v1/agent/kubeconfig"];
    let all: BTreeSet<(String, String)> = mesh_server::ROUTES
        .iter()
        .filter(|(_, p)| !p.starts_with("/v2/") && !by_servers.contains(&p.as_str()))
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect();
    let missed: Vec<_> = all.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "routes without a mesh-client method: {missed:?}"
    );
}
