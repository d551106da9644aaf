//! Stacks and services, with the fields derived when a service is read.

use std::sync::Arc;

use mesh_store::Store;
use mesh_types::api::{
    CreateStack, Formula, HealthCheck, Instance, InstanceState, Route, ServiceKind, ServiceStatus,
    UpdateStack,
};
use mesh_types::{InstanceSize, Schedule, Version};

use crate::support::*;

both!(
    stacks_are_unique_per_environment,
    services_are_unique_per_stack,
    service_kind_hostname_and_status_are_derived,
    instances_are_reported_and_removed,
    a_server_report_replaces_its_instances,
);

fn create_stack(stack: &str) -> CreateStack {
    CreateStack {
        name: name(stack),
        formula: None,
    }
}

async fn stacks_are_unique_per_environment(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "blog").await;
    exists(
        store.create_stack("shop", &create_stack("app"), T).await,
        "stack \"app\" already exists in environment \"shop\"",
    );
    not_found(
        store.create_stack("nope", &create_stack("app"), T).await,
        "environment \"nope\"",
    );
    let api = store
        .create_stack(
            "shop",
            &CreateStack {
                name: name("api"),
                formula: Some(Formula::Dockerfile),
            },
            T + 1,
        )
        .await
        .unwrap();
    assert_eq!(api.formula, Formula::Dockerfile);
    assert_eq!(api.current_deployment, None);
    assert_eq!((api.created_at, api.updated_at), (T + 1, T + 1));
    let names: Vec<_> = store
        .list_stacks("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, ["api", "app"]);

    let update = |formula, release: Option<&str>, builder: Option<&str>| UpdateStack {
        formula,
        release_command: release.map(Into::into),
        builder: builder.map(Into::into),
        image: None,
        buildpacks: None,
    };
    let s = store
        .update_stack(
            "shop",
            "app",
            &update(None, Some("rake db:migrate"), Some("heroku/builder:24")),
            T + 2,
        )
        .await
        .unwrap();
    assert_eq!(s.formula, Formula::Buildpack);
    assert_eq!(s.release_command.as_deref(), Some("rake db:migrate"));
    assert_eq!(s.builder.as_deref(), Some("heroku/builder:24"));
    assert_eq!(s.updated_at, T + 2);
    // Absent fields stay; an empty one is cleared.
    let s = store
        .update_stack(
            "shop",
            "app",
            &update(Some(Formula::Dockerfile), Some(""), None),
            T + 3,
        )
        .await
        .unwrap();
    assert_eq!(s.formula, Formula::Dockerfile);
    assert_eq!(s.release_command, None);
    assert_eq!(s.builder.as_deref(), Some("heroku/builder:24"));
    assert_eq!(store.get_stack("shop", "app").await.unwrap(), s);
    // The other environment's stack of the same name is untouched.
    assert_eq!(
        store
            .get_stack("blog", "app")
            .await
            .unwrap()
            .release_command,
        None
    );

    not_found(
        store.get_stack("shop", "nope").await,
        "stack \"nope\" in environment \"shop\"",
    );
    not_found(store.get_stack("nope", "app").await, "environment \"nope\"");
    not_found(
        store
            .update_stack("shop", "nope", &UpdateStack::default(), T)
            .await,
        "stack \"nope\" in environment \"shop\"",
    );
    store.delete_stack("shop", "app").await.unwrap();
    not_found(
        store.delete_stack("shop", "app").await,
        "stack \"app\" in environment \"shop\"",
    );
    not_found(
        store.get_service("shop", "app", "web").await,
        "stack \"app\" in environment \"shop\"",
    );
    assert_eq!(store.list_services("shop", None).await.unwrap().len(), 0);
    assert_eq!(store.list_services("blog", None).await.unwrap().len(), 2);
}

async fn services_are_unique_per_stack(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    exists(
        store.create_service("shop", "app", &spec("web"), T).await,
        "service \"web\" already exists in stack \"app\" of environment \"shop\"",
    );
    not_found(
        store.create_service("shop", "nope", &spec("web"), T).await,
        "stack \"nope\" in environment \"shop\"",
    );
    store
        .create_stack("shop", &create_stack("api"), T)
        .await
        .unwrap();
    let web = store
        .create_service("shop", "api", &spec("web"), T)
        .await
        .unwrap();
    assert_eq!(web.stack.as_str(), "api");

    let all: Vec<_> = store
        .list_services("shop", None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}/{}", s.stack, s.name))
        .collect();
    assert_eq!(all, ["api/web", "app/web", "app/worker"]);
    let app: Vec<_> = store
        .list_services("shop", Some("app"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(app, ["web", "worker"]);
    not_found(
        store.list_services("shop", Some("nope")).await,
        "stack \"nope\" in environment \"shop\"",
    );

    let mut changed = spec("web");
    changed.command = None;
    changed.port = 8080;
    changed.instances = 4;
    changed.size = InstanceSize::Large;
    changed.health = HealthCheck {
        http_path: Some("/healthz".into()),
        grace_s: 90,
    };
    let updated = store
        .update_service("shop", "app", &changed, T + 1)
        .await
        .unwrap();
    assert_eq!(updated.command, None);
    assert_eq!(updated.port, 8080);
    assert_eq!(updated.instances, 4);
    assert_eq!(updated.size, InstanceSize::Large);
    assert_eq!(updated.health, changed.health);
    assert_eq!((updated.created_at, updated.updated_at), (T, T + 1));
    assert_eq!(
        store.get_service("shop", "app", "web").await.unwrap(),
        updated
    );
    // The same name in another stack is another service.
    assert_eq!(store.get_service("shop", "api", "web").await.unwrap(), web);

    not_found(
        store.update_service("shop", "app", &spec("nope"), T).await,
        "service \"nope\" in stack \"app\" of environment \"shop\"",
    );
    store.delete_service("shop", "app", "web").await.unwrap();
    not_found(
        store.get_service("shop", "app", "web").await,
        "service \"web\" in stack \"app\" of environment \"shop\"",
    );
    not_found(
        store.delete_service("shop", "app", "web").await,
        "service \"web\" in stack \"app\" of environment \"shop\"",
    );
}

fn instance(id: &str, service: &str, state: InstanceState) -> Instance {
    Instance {
        id: id.into(),
        environment: name("shop"),
        stack: name("app"),
        service: name(service),
        deployment: Some(Version(0)),
        server: Some(name("s1")),
        rack: None,
        state,
        address: Some("10.231.7.2".into()),
        restarts: 0,
        exit_code: None,
        message: None,
        started_at: Some(T),
        updated_at: T,
    }
}

async fn service_kind_hostname_and_status_are_derived(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let mut cron = spec("nightly");
    cron.schedule = Some(Schedule::parse("0 3 * * *").unwrap());
    cron.instances = 0;
    let created = store.create_service("shop", "app", &cron, T).await.unwrap();
    assert_eq!(created.kind, ServiceKind::Cron);
    assert_eq!(
        created.schedule.as_ref().map(|s| s.as_str()),
        Some("0 3 * * *")
    );

    let web = store.get_service("shop", "app", "web").await.unwrap();
    assert_eq!(web.kind, ServiceKind::Worker, "no route yet");
    assert_eq!(web.hostname, "app-web");

    let route = |path: &str, service: &str| Route {
        path: path.into(),
        stack: name("app"),
        service: name(service),
    };
    store
        .set_routes(
            "shop",
            "shop.local.test",
            &[route("/", "web"), route("/cron", "nightly")],
        )
        .await
        .unwrap();
    let kinds: Vec<_> = store
        .list_services("shop", None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name.to_string(), s.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("nightly".to_string(), ServiceKind::Cron),
            ("web".to_string(), ServiceKind::Web),
            ("worker".to_string(), ServiceKind::Worker),
        ]
    );

    let mut three = spec("web");
    three.instances = 3;
    store
        .update_service("shop", "app", &three, T)
        .await
        .unwrap();
    for (id, state) in [
        ("web-1", InstanceState::Running),
        ("web-2", InstanceState::Healthy),
        ("web-3", InstanceState::Starting),
        ("web-4", InstanceState::Crashed),
    ] {
        store
            .upsert_instance(&instance(id, "web", state))
            .await
            .unwrap();
    }
    store
        .upsert_instance(&instance("worker-1", "worker", InstanceState::Healthy))
        .await
        .unwrap();
    let web = store.get_service("shop", "app", "web").await.unwrap();
    assert_eq!(
        web.status,
        ServiceStatus {
            desired: 3,
            running: 2,
            healthy: 1
        }
    );
    // A route removed makes it a worker again.
    store
        .set_routes("shop", "shop.local.test", &[route("/cron", "nightly")])
        .await
        .unwrap();
    let web = store.get_service("shop", "app", "web").await.unwrap();
    assert_eq!(web.kind, ServiceKind::Worker);
    let worker = store.get_service("shop", "app", "worker").await.unwrap();
    assert_eq!(
        worker.status,
        ServiceStatus {
            desired: 1,
            running: 1,
            healthy: 1
        }
    );
}

async fn instances_are_reported_and_removed(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .upsert_instance(&instance("web-1", "web", InstanceState::Starting))
        .await
        .unwrap();
    let mut later = instance("web-1", "web", InstanceState::Crashed);
    later.restarts = 3;
    later.exit_code = Some(-9);
    later.message = Some("killed".into());
    later.server = None;
    later.updated_at = T + 9;
    store.upsert_instance(&later).await.unwrap();
    let a = instance("a-1", "worker", InstanceState::Running);
    store.upsert_instance(&a).await.unwrap();
    assert_eq!(store.list_instances("shop").await.unwrap(), [later, a]);

    not_found(
        store
            .upsert_instance(&instance("x", "nope", InstanceState::Running))
            .await,
        "service \"nope\" in stack \"app\" of environment \"shop\"",
    );
    let mut elsewhere = instance("x", "web", InstanceState::Running);
    elsewhere.environment = name("nope");
    not_found(
        store.upsert_instance(&elsewhere).await,
        "environment \"nope\"",
    );
    store.delete_instance("shop", "web-1").await.unwrap();
    not_found(
        store.delete_instance("shop", "web-1").await,
        "instance \"web-1\" in environment \"shop\"",
    );
    not_found(store.list_instances("nope").await, "environment \"nope\"");
    // Deleting a service removes its instances.
    store.delete_service("shop", "app", "worker").await.unwrap();
    assert!(store.list_instances("shop").await.unwrap().is_empty());
}

async fn a_server_report_replaces_its_instances(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let mut other = instance("w-9", "worker", InstanceState::Running);
    other.server = Some(name("s2"));
    store.upsert_instance(&other).await.unwrap();
    let first = [
        instance("web-1", "web", InstanceState::Starting),
        instance("web-2", "web", InstanceState::Starting),
    ];
    store.replace_server_instances("s1", &first).await.unwrap();
    assert_eq!(store.list_instances("shop").await.unwrap().len(), 3);
    // web-2 is gone from s1's report; an instance of a deleted service is dropped quietly.
    let second = [
        instance("web-1", "web", InstanceState::Healthy),
        instance("x-1", "deleted-meanwhile", InstanceState::Running),
    ];
    store.replace_server_instances("s1", &second).await.unwrap();
    let ids: Vec<_> = store
        .list_instances("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.state))
        .collect();
    assert_eq!(
        ids,
        [
            ("web-1".to_string(), InstanceState::Healthy),
            ("w-9".to_string(), InstanceState::Running),
        ]
    );
}
