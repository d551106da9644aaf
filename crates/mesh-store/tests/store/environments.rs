//! Environments: names, rack placement, alias reconciliation and cascading deletes.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_store::{CertificateRecord, Store};
use mesh_types::api::{
    Certificate, CertificateSource, CertificateState, EndpointKind, Environment, Formula, Instance,
    InstanceState, LeavingRack, NewDeployment, Route,
};
use mesh_types::config::ConfigScope;
use mesh_types::{ConfigKey, Version};

use crate::support::*;

both!(
    names_are_unique_and_racks_ordered,
    aliases_follow_the_racks,
    leaving_racks_forward_then_go
);
both_fixture!(deleting_an_environment_removes_everything_under_it);

async fn names_are_unique_and_racks_ordered(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .create_rack(&rack("edge", "local", "192.0.2.1"))
        .await
        .unwrap();

    let env = store
        .create_environment(&name("blog"), &[name("edge"), name("local")], &[], T + 1)
        .await
        .unwrap();
    assert_eq!(env.racks, [name("edge"), name("local")]);
    assert_eq!((env.created_at, env.updated_at), (T + 1, T + 1));
    assert_eq!(store.get_environment("blog").await.unwrap(), env);

    exists(
        store
            .create_environment(&name("shop"), &[name("local")], &[], T)
            .await,
        "environment \"shop\" already exists",
    );
    // A failed create leaves nothing behind.
    not_found(
        store
            .create_environment(&name("docs"), &[name("local"), name("nope")], &[], T)
            .await,
        "rack \"nope\"",
    );
    not_found(store.get_environment("docs").await, "environment \"docs\"");
    invalid(
        store
            .create_environment(&name("docs"), &[name("local"), name("local")], &[], T)
            .await,
        "listed twice",
    );

    let names: Vec<_> = store
        .list_environments()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name.to_string(), e.racks.len()))
        .collect();
    assert_eq!(names, [("blog".to_string(), 2), ("shop".to_string(), 1)]);

    let moved = store
        .update_environment_racks("blog", &[name("local"), name("edge")], &[], &[], T + 2)
        .await
        .unwrap();
    assert_eq!(moved.racks, [name("local"), name("edge")]);
    assert_eq!((moved.created_at, moved.updated_at), (T + 1, T + 2));
    not_found(
        store
            .update_environment_racks("nope", &[name("local")], &[], &[], T)
            .await,
        "environment \"nope\"",
    );
    not_found(
        store.delete_environment("nope").await,
        "environment \"nope\"",
    );
}

async fn aliases_follow_the_racks(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .create_rack(&rack("edge", "local", "192.0.2.1"))
        .await
        .unwrap();
    store
        .create_endpoint(
            "shop",
            &domain("www.shop.example"),
            EndpointKind::Custom,
            None,
            T,
        )
        .await
        .unwrap();
    let route = Route {
        path: "/".into(),
        stack: name("app"),
        service: name("web"),
    };
    store
        .set_routes("shop", "shop.local.test", std::slice::from_ref(&route))
        .await
        .unwrap();

    // Adding a rack adds its alias; the surviving alias keeps its routes.
    store
        .update_environment_racks(
            "shop",
            &[name("local"), name("edge")],
            &[],
            &[alias("shop", "local"), alias("shop", "edge")],
            T + 1,
        )
        .await
        .unwrap();
    let endpoints = store.list_endpoints("shop").await.unwrap();
    let summary: Vec<_> = endpoints
        .iter()
        .map(|e| {
            (
                e.domain.to_string(),
                e.kind,
                e.rack.as_ref().map(|r| r.to_string()),
                e.routes.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "shop.edge.test".into(),
                EndpointKind::Alias,
                Some("edge".into()),
                0
            ),
            (
                "shop.local.test".into(),
                EndpointKind::Alias,
                Some("local".into()),
                1
            ),
            ("www.shop.example".into(), EndpointKind::Custom, None, 0),
        ]
    );
    assert_eq!(endpoints[0].created_at, T + 1);
    assert_eq!(endpoints[1].created_at, T);

    // Leaving a rack removes its alias and the alias's routes; custom domains stay.
    store
        .update_environment_racks(
            "shop",
            &[name("edge")],
            &[],
            &[alias("shop", "edge")],
            T + 2,
        )
        .await
        .unwrap();
    let domains = shop_domains(store.as_ref()).await;
    assert_eq!(domains, ["shop.edge.test", "www.shop.example"]);
    not_found(
        store.get_endpoint("shop", "shop.local.test").await,
        "endpoint \"shop.local.test\" in environment \"shop\"",
    );

    // An alias domain is unique platform-wide like any other, and the failed change is undone.
    exists(
        store
            .update_environment_racks(
                "shop",
                &[name("edge"), name("local")],
                &[],
                &[
                    alias("shop", "edge"),
                    mesh_store::AliasSpec {
                        domain: domain("www.shop.example"),
                        rack: name("local"),
                    },
                ],
                T + 3,
            )
            .await,
        "endpoint \"www.shop.example\" already exists in environment \"shop\"",
    );
    assert_eq!(
        store.get_environment("shop").await.unwrap().racks,
        [name("edge")]
    );
    exists(
        store
            .create_environment(&name("blog"), &[name("edge")], &[alias("shop", "edge")], T)
            .await,
        "endpoint \"shop.edge.test\" already exists in environment \"shop\"",
    );
    not_found(
        store
            .update_environment_racks("shop", &[name("edge")], &[], &[alias("shop", "nope")], T)
            .await,
        "rack \"nope\"",
    );
}

async fn deleting_an_environment_removes_everything_under_it(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    world(&store).await;
    environment(&store, "blog").await;
    let set: BTreeMap<ConfigKey, String> =
        [(ConfigKey::parse("A").unwrap(), "1".to_string())].into();
    for env in ["shop", "blog"] {
        for scope in [
            ConfigScope::default(),
            ConfigScope {
                service: Some(name("web")),
                ..Default::default()
            },
        ] {
            store
                .change_config(env, "app", &scope, &set, &[], T)
                .await
                .unwrap();
        }
        store
            .set_routes(
                env,
                &format!("{env}.local.test"),
                &[Route {
                    path: "/".into(),
                    stack: name("app"),
                    service: name("web"),
                }],
            )
            .await
            .unwrap();
        store
            .add_certificate(&CertificateRecord {
                certificate: Certificate {
                    environment: name(env),
                    fingerprint: "ab".repeat(32),
                    domains: vec![format!("{env}.local.test")],
                    source: CertificateSource::Acme,
                    state: CertificateState::Issued,
                    issuer: "test".into(),
                    not_before: T,
                    not_after: T + 1,
                    created_at: T,
                },
                chain_pem: "chain".into(),
                key_pem: "key".into(),
            })
            .await
            .unwrap();
        let new = NewDeployment {
            formula: Formula::Buildpack,
            source_digest: None,
            created_by: "test".into(),
            description: "build".into(),
            image: None,
            processes: Default::default(),
            release_command: None,
        };
        store.create_deployment(env, "app", &new, T).await.unwrap();
        store
            .append_deployment_log(env, "app", Version(0), "building\n")
            .await
            .unwrap();
        store
            .upsert_instance(&Instance {
                id: format!("{env}-web-1"),
                environment: name(env),
                stack: name("app"),
                service: name("web"),
                deployment: Some(Version(0)),
                server: None,
                rack: None,
                state: InstanceState::Running,
                address: None,
                restarts: 0,
                exit_code: None,
                message: None,
                started_at: None,
                updated_at: T,
            })
            .await
            .unwrap();
    }
    let tables = [
        "environment_racks",
        "stacks",
        "services",
        "config_vars",
        "endpoints",
        "routes",
        "certificates",
        "deployments",
        "deployment_log_chunks",
        "instances",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(fixture.count(table).await);
    }

    store.delete_environment("shop").await.unwrap();
    not_found(store.get_environment("shop").await, "environment \"shop\"");
    not_found(store.list_stacks("shop").await, "environment \"shop\"");
    for (table, rows) in tables.into_iter().zip(before) {
        // Exactly the rows of "blog" remain: half of each table.
        assert_eq!(fixture.count(table).await * 2, rows, "{table}");
    }
    assert_eq!(store.list_services("blog", None).await.unwrap().len(), 2);
    // Its names are free again.
    environment(&store, "shop").await;
    assert!(
        store
            .list_deployments("shop", "app")
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

async fn leaving_racks_forward_then_go(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .create_rack(&rack("edge", "local", "192.0.2.1"))
        .await
        .unwrap();
    let leaving = LeavingRack {
        rack: name("local"),
        since: T + 1,
        drain_grace_ms: 60_000,
        forwarding_since: None,
    };
    // shop moves from local to edge: local's alias stays while it leaves.
    let env = move_to_edge(store.as_ref(), &leaving, T + 1).await;
    assert_eq!(env.racks, [name("edge")]);
    assert_eq!(env.leaving, std::slice::from_ref(&leaving));
    let listed = store.list_environments().await.unwrap();
    assert_eq!(listed[0].leaving, std::slice::from_ref(&leaving));
    // A rack cannot be both placed and leaving, nor deleted while an environment leaves it.
    invalid(
        store
            .update_environment_racks(
                "shop",
                &[name("local")],
                std::slice::from_ref(&leaving),
                &[],
                T,
            )
            .await,
        "listed twice",
    );
    precondition(
        store.delete_rack("local").await,
        "rack \"local\" still hosts environments: shop",
    );

    // Not finished before it forwards; forwarding starts once, whoever asks first, and only
    // for the entry that was looked at (taken out at T + 1).
    assert!(!store.finish_leaving("shop", "local", T + 1).await.unwrap());
    assert!(
        !store
            .start_forwarding("shop", "local", T, T + 5)
            .await
            .unwrap()
    );
    assert!(
        store
            .start_forwarding("shop", "local", T + 1, T + 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .start_forwarding("shop", "local", T + 1, T + 6)
            .await
            .unwrap()
    );
    assert!(
        !store
            .start_forwarding("shop", "edge", T + 1, T + 6)
            .await
            .unwrap()
    );
    let env = store.get_environment("shop").await.unwrap();
    assert_eq!(env.leaving[0].forwarding_since, Some(T + 5));
    assert_eq!(env.leaving[0].until(), Some(T + 60_005));

    // An update computed from an older read never rewrites the entry: forwarding stays.
    let mut stale = leaving.clone();
    stale.since = T + 9;
    let env = move_to_edge(store.as_ref(), &stale, T + 9).await;
    assert_eq!(env.leaving[0].since, T + 1);
    assert_eq!(env.leaving[0].forwarding_since, Some(T + 5));

    // Then the environment has left: the entry and local's alias go, edge's stays.
    assert!(!store.finish_leaving("shop", "local", T + 9).await.unwrap());
    assert!(store.finish_leaving("shop", "local", T + 1).await.unwrap());
    assert!(!store.finish_leaving("shop", "local", T + 1).await.unwrap());
    let env = store.get_environment("shop").await.unwrap();
    assert!(env.leaving.is_empty(), "{env:?}");
    let domains = shop_domains(store.as_ref()).await;
    assert_eq!(domains, ["shop.edge.test"]);
    // A stale update after that brings neither the entry nor the alias back: local is not
    // placed any more.
    let env = move_to_edge(store.as_ref(), &leaving, T + 10).await;
    assert!(env.leaving.is_empty(), "{env:?}");
    let domains = shop_domains(store.as_ref()).await;
    assert_eq!(domains, ["shop.edge.test"]);
    store.delete_rack("local").await.unwrap();
}

/// The domains of shop's endpoints, in order.
async fn shop_domains(store: &dyn Store) -> Vec<String> {
    store
        .list_endpoints("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.domain.to_string())
        .collect()
}

/// shop's update to rack `edge`, `leaving` as the rack it leaves (with local's alias kept).
async fn move_to_edge(store: &dyn Store, leaving: &LeavingRack, at: i64) -> Environment {
    store
        .update_environment_racks(
            "shop",
            &[name("edge")],
            std::slice::from_ref(leaving),
            &[alias("shop", "edge"), alias("shop", "local")],
            at,
        )
        .await
        .unwrap()
}
