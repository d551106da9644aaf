use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_store::{MasterKey, ServiceSpec, SqlStore};
use mesh_types::api::{CreateProvider, CreateStack, HealthCheck, ProviderKind, RackState, Server};
use mesh_types::config::ConfigScope;
use mesh_types::{ConfigKey, Domain, InstanceSize, Name};
use sqlx::{AnyConnection, Connection, Executor};

use super::*;

/// Now, for documents whose cron placement does not matter.
const LIVE: Liveness = Liveness {
    now: 1_700_000_000_000,
    lost_after: 30_000,
};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// Rack `local` with environments `shop` and `bank`, each with stack `app`, service `web` and
/// a stack-wide `SECRET`.
async fn platform(path: &std::path::Path, key: MasterKey) -> (Arc<SqlStore>, Rack) {
    let store = Arc::new(SqlStore::open_sqlite_path(path, key).await.unwrap());
    store
        .create_provider(
            &CreateProvider {
                name: name("local"),
                kind: ProviderKind::Local,
                secrets: Default::default(),
            },
            1,
        )
        .await
        .unwrap();
    let rack = Rack {
        name: name("local"),
        provider: name("local"),
        region: name("local"),
        size: "local".into(),
        domain: Domain::parse("local.test").unwrap(),
        address: "203.0.113.10".into(),
        state: RackState::Ready,
        created_at: 1,
        runtime: Default::default(),
    };
    store.create_rack(&rack).await.unwrap();
    for env in ["shop", "bank"] {
        store
            .create_environment(&name(env), &[name("local")], &[], 1)
            .await
            .unwrap();
        store
            .create_stack(
                env,
                &CreateStack {
                    name: name("app"),
                    formula: None,
                },
                1,
            )
            .await
            .unwrap();
        store
            .create_service(
                env,
                "app",
                &ServiceSpec {
                    name: name("web"),
                    command: Some("run-web".into()),
                    schedule: None,
                    port: 5000,
                    instances: 1,
                    size: InstanceSize::Small,
                    health: HealthCheck::default(),
                },
                1,
            )
            .await
            .unwrap();
        let set: BTreeMap<ConfigKey, String> =
            [(ConfigKey::parse("SECRET").unwrap(), format!("{env}-secret"))].into();
        store
            .change_config(env, "app", &ConfigScope::default(), &set, &[], 1)
            .await
            .unwrap();
    }
    (store, rack)
}

fn secret(doc: &DesiredState, env: &str) -> Option<String> {
    let e = doc
        .environments
        .iter()
        .find(|e| e.environment.as_str() == env)?;
    let stack = e.stacks.iter().find(|s| s.name.as_str() == "app")?;
    stack.services[0].env.get("SECRET").cloned()
}

#[tokio::test]
async fn a_value_that_does_not_open_holds_up_its_stack_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let key = MasterKey::generate().unwrap();
    let (store, rack) = platform(&path, key.clone()).await;
    let before = for_rack(store.as_ref(), &rack, None, LIVE).await.unwrap();
    assert_eq!(secret(&before, "shop").as_deref(), Some("shop-secret"));
    assert_eq!(secret(&before, "bank").as_deref(), Some("bank-secret"));

    // shop's ciphertext copied over bank's, around the store.
    let mut conn = AnyConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    conn.execute(
        "UPDATE config_vars SET value = (SELECT c.value FROM config_vars c \
         JOIN stacks s ON s.id = c.stack_id JOIN environments e ON e.id = s.environment_id \
         WHERE e.name = 'shop') \
         WHERE stack_id = (SELECT s.id FROM stacks s JOIN environments e \
         ON e.id = s.environment_id WHERE e.name = 'bank')",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    // A first document: shop as usual, bank without the stack it cannot render.
    let first = for_rack(store.as_ref(), &rack, None, LIVE).await.unwrap();
    assert_eq!(secret(&first, "shop").as_deref(), Some("shop-secret"));
    let bank = first
        .environments
        .iter()
        .find(|e| e.environment.as_str() == "bank")
        .expect("bank is still in the document");
    assert!(bank.stacks.is_empty(), "{:?}", bank.stacks);
    // After a document that had it, the stack is kept as it was.
    let kept = for_rack(store.as_ref(), &rack, Some(&before), LIVE)
        .await
        .unwrap();
    assert_eq!(kept, before);

    // A wrong master key opens nothing: the document fails whole rather than dropping stacks.
    store.close().await;
    let wrong = SqlStore::open_sqlite_path(&path, MasterKey::generate().unwrap())
        .await
        .unwrap();
    let e = for_rack(&wrong, &rack, Some(&before), LIVE)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Crypto), "{e:?}");
    wrong.close().await;
}

/// Rack `east` beside `local`, a cron job `tick` in shop's stack, and a live server on each
/// rack (`box-a` with its router on 127.0.0.1:8080, `box-b` on 127.0.0.2:80).
async fn east_tick_and_servers(store: &SqlStore, local: &Rack) -> Rack {
    let east = Rack {
        name: name("east"),
        region: name("east"),
        domain: Domain::parse("east.test").unwrap(),
        ..local.clone()
    };
    store.create_rack(&east).await.unwrap();
    store
        .create_service(
            "shop",
            "app",
            &ServiceSpec {
                name: name("tick"),
                command: Some("date".into()),
                schedule: Some("@every 5s".parse().unwrap()),
                port: 5000,
                instances: 1,
                size: InstanceSize::Small,
                health: HealthCheck::default(),
            },
            1,
        )
        .await
        .unwrap();
    let t = LIVE.now;
    for (rack, server, router) in [
        ("local", "box-a", "127.0.0.1:8080"),
        ("east", "box-b", "127.0.0.2:80"),
    ] {
        let s = Server {
            name: name(server),
            rack: name(rack),
            address: "127.0.0.1".into(),
            cpus: 1.0,
            memory_mb: 1024,
            state: mesh_types::api::ServerState::Ready,
            last_heartbeat: Some(t),
            created_at: t,
            version: None,
            instances: 0,
            router: Some(router.into()),
        };
        store.claim_server(&s, &[]).await.unwrap();
    }
    east
}

fn cron_services(doc: &DesiredState) -> Vec<String> {
    doc.environments
        .iter()
        .flat_map(|e| &e.stacks)
        .flat_map(|s| &s.services)
        .filter(|s| s.schedule.is_some())
        .map(|s| s.name.to_string())
        .collect()
}

#[tokio::test]
async fn cron_jobs_go_to_the_first_healthy_rack_only() {
    let dir = tempfile::tempdir().unwrap();
    let (store, local) =
        platform(&dir.path().join("state.db"), MasterKey::generate().unwrap()).await;
    let east = east_tick_and_servers(&store, &local).await;
    store
        .update_environment_racks("shop", &[name("local"), name("east")], &[], &[], 1)
        .await
        .unwrap();
    let t = LIVE.now;
    let docs = |live| {
        let store = store.clone();
        let (local, east) = (local.clone(), east.clone());
        async move {
            (
                cron_services(&for_rack(store.as_ref(), &local, None, live).await.unwrap()),
                cron_services(&for_rack(store.as_ref(), &east, None, live).await.unwrap()),
            )
        }
    };
    // Both healthy: the first rack of the list runs cron, the other does not.
    let (on_local, on_east) = docs(LIVE).await;
    assert_eq!(on_local, ["tick"]);
    assert!(on_east.is_empty(), "{on_east:?}");
    // local's server goes quiet while east's keeps reporting: cron moves to east.
    store
        .heartbeat_server(
            "east",
            "box-b",
            t + 60_000,
            mesh_types::api::ServerState::Ready,
        )
        .await
        .unwrap();
    let later = Liveness {
        now: t + 60_000,
        ..LIVE
    };
    let (on_local, on_east) = docs(later).await;
    assert!(on_local.is_empty(), "{on_local:?}");
    assert_eq!(on_east, ["tick"]);
    // The web service still runs on both racks.
    let web = |doc: DesiredState| {
        doc.environments
            .iter()
            .filter(|e| e.environment.as_str() == "shop")
            .flat_map(|e| &e.stacks)
            .flat_map(|s| &s.services)
            .any(|s| s.name.as_str() == "web")
    };
    assert!(web(for_rack(store.as_ref(), &local, None, later)
        .await
        .unwrap()));
    assert!(web(for_rack(store.as_ref(), &east, None, later)
        .await
        .unwrap()));
}

#[tokio::test]
async fn a_rack_being_left_forwards_to_the_rest_and_its_alias_is_served_by_all() {
    use mesh_store::AliasSpec;
    use mesh_types::api::LeavingRack;

    let dir = tempfile::tempdir().unwrap();
    let (store, local) =
        platform(&dir.path().join("state.db"), MasterKey::generate().unwrap()).await;
    let east = east_tick_and_servers(&store, &local).await;
    let t = LIVE.now;
    let alias = |rack: &str| AliasSpec {
        domain: Domain::parse(&format!("shop.{rack}.test")).unwrap(),
        rack: name(rack),
    };
    let leaving = LeavingRack {
        rack: name("local"),
        since: t,
        drain_grace_ms: 60_000,
        forwarding_since: None,
    };
    let place = |leaving: LeavingRack| {
        let store = store.clone();
        async move {
            store
                .update_environment_racks(
                    "shop",
                    &[name("east")],
                    &[leaving],
                    &[alias("east"), alias("local")],
                    t,
                )
                .await
                .unwrap();
        }
    };
    place(leaving.clone()).await;
    let shop = |doc: DesiredState| {
        doc.environments
            .into_iter()
            .find(|e| e.environment.as_str() == "shop")
            .unwrap()
    };
    let hosts = |e: &EnvironmentDoc| {
        let mut h: Vec<String> = e.routes.iter().map(|r| r.host.clone()).collect();
        h.dedup();
        h
    };
    // Waiting for east: local still serves shop (its own instances), without cron.
    let on_local = shop(for_rack(store.as_ref(), &local, None, LIVE).await.unwrap());
    assert!(on_local.forward_to.is_empty());
    assert!(on_local.several_racks);
    assert!(
        cron_services(&DesiredState {
            rack: local.name.clone(),
            region: local.region.clone(),
            server_salt: None,
            environments: vec![on_local.clone()],
        })
        .is_empty()
    );
    assert!(
        on_local.stacks[0]
            .services
            .iter()
            .any(|s| s.name.as_str() == "web")
    );

    // Forwarding: local sends shop's hosts to east's router, east trusts local's.
    assert!(store.start_forwarding("shop", "local", t, t).await.unwrap());
    let on_local = shop(for_rack(store.as_ref(), &local, None, LIVE).await.unwrap());
    assert_eq!(on_local.forward_to, ["127.0.0.2:80"]);
    assert!(on_local.forwarded_from.is_empty());
    let on_east = shop(for_rack(store.as_ref(), &east, None, LIVE).await.unwrap());
    assert!(on_east.forward_to.is_empty());
    assert_eq!(on_east.forwarded_from, ["127.0.0.1:8080"]);
    // Routes of published services on local's alias reach east too (DNS caches point there).
    store
        .set_routes(
            "shop",
            "shop.local.test",
            &[mesh_types::api::Route {
                path: "/".into(),
                stack: name("app"),
                service: name("web"),
            }],
        )
        .await
        .unwrap();
    let on_east = shop(for_rack(store.as_ref(), &east, None, LIVE).await.unwrap());
    assert_eq!(hosts(&on_east), ["shop.local.test"]);
    let on_local = shop(for_rack(store.as_ref(), &local, None, LIVE).await.unwrap());
    assert_eq!(hosts(&on_local), ["shop.local.test"]);

    // The grace is over: shop leaves local's document, its alias goes.
    assert!(store.finish_leaving("shop", "local", t).await.unwrap());
    let doc = for_rack(store.as_ref(), &local, None, LIVE).await.unwrap();
    assert!(
        doc.environments
            .iter()
            .all(|e| e.environment.as_str() != "shop")
    );
    let on_east = shop(for_rack(store.as_ref(), &east, None, LIVE).await.unwrap());
    assert!(on_east.forwarded_from.is_empty());
    assert!(hosts(&on_east).is_empty());
    assert!(!on_east.several_racks);
}

#[tokio::test]
async fn the_two_servers_of_a_replacement_are_told_apart() {
    use mesh_types::api::{Replacement, ReplacementPhase, ServerState};
    let dir = tempfile::tempdir().unwrap();
    let (store, local) =
        platform(&dir.path().join("state.db"), MasterKey::generate().unwrap()).await;
    // A cron job `tick` in shop, and the rack's server box-a (east's box-b is not used here).
    east_tick_and_servers(&store, &local).await;
    let t = LIVE.now;
    let old = name("box-a");
    let new = name("box-c");
    store
        .start_replacement(
            &Replacement {
                rack: name("local"),
                old_server: old.clone(),
                new_server: new.clone(),
                size: "local".into(),
                version: "0.1.0".into(),
                phase: ReplacementPhase::Starting,
                since: t,
                phase_since: t,
                drain_grace_ms: 60_000,
                timeout_ms: 600_000,
                message: None,
            },
            RackState::Upgrading,
        )
        .await
        .unwrap();
    let joined = Server {
        name: new.clone(),
        rack: name("local"),
        address: "127.0.0.3".into(),
        cpus: 1.0,
        memory_mb: 1024,
        state: ServerState::Ready,
        last_heartbeat: Some(t + 1),
        created_at: t + 1,
        version: None,
        instances: 0,
        router: Some("127.0.0.3:80".into()),
    };
    store
        .join_server_beside(&joined, std::slice::from_ref(&old))
        .await
        .unwrap();
    let doc = |server: &'static str| {
        let (store, local) = (store.clone(), local.clone());
        async move {
            for_server(store.as_ref(), &local, Some(&name(server)), None, LIVE)
                .await
                .unwrap()
        }
    };
    let shop = |d: &DesiredState| {
        d.environments
            .iter()
            .find(|e| e.environment.as_str() == "shop")
            .cloned()
            .unwrap()
    };

    // Starting: the new server's instance ids are its own; cron stays on the old one; nobody
    // forwards yet.
    let (a, c) = (doc("box-a").await, doc("box-c").await);
    assert_eq!(a.server_salt, None);
    assert_eq!(c.server_salt.as_deref(), Some("box-c"));
    assert_eq!(cron_services(&a), ["tick"]);
    assert!(cron_services(&c).is_empty());
    assert!(shop(&a).forward_to.is_empty() && shop(&c).forwarded_from.is_empty());
    // The document of the rack as a whole (an agent that does not say its server) is the old
    // server's.
    let whole = for_rack(store.as_ref(), &local, None, LIVE).await.unwrap();
    assert_eq!(cron_services(&whole), ["tick"]);

    // Traffic moved: the old server forwards every host to the new one, which trusts it and
    // now runs cron.
    assert!(
        store
            .advance_replacement(
                "local",
                t,
                ReplacementPhase::Starting,
                ReplacementPhase::Forwarding,
                t + 2,
                None,
                Some("127.0.0.3"),
            )
            .await
            .unwrap()
    );
    let (a, c) = (doc("box-a").await, doc("box-c").await);
    for env in &a.environments {
        assert_eq!(env.forward_to, ["127.0.0.3:80"], "{}", env.environment);
    }
    // An old agent that does not say its server is the old server.
    let legacy = for_rack(store.as_ref(), &local, None, LIVE).await.unwrap();
    assert_eq!(shop(&legacy).forward_to, ["127.0.0.3:80"]);
    assert!(cron_services(&legacy).is_empty());
    // Both agents register again (a reconnect, a restart): the old one stays draining.
    let again = |server: &str, address: &str, router: &str| mesh_types::agent::RegisterServer {
        name: name(server),
        address: address.into(),
        cpus: 1.0,
        memory_mb: 1024,
        version: None,
        router: Some(router.into()),
    };
    let live = |at| Liveness { now: at, ..LIVE };
    let old_again = crate::domain::servers::register(
        store.as_ref(),
        &local,
        again("box-a", "127.0.0.1", "127.0.0.1:8080"),
        "rack-local-join",
        live(t + 3),
    )
    .await
    .unwrap();
    assert_eq!(old_again.state, ServerState::Draining);
    let new_again = crate::domain::servers::register(
        store.as_ref(),
        &local,
        again("box-c", "127.0.0.3", "127.0.0.3:80"),
        "rack-local-server-box-c-join",
        live(t + 3),
    )
    .await
    .unwrap();
    assert_eq!(new_again.state, ServerState::Ready);
    // A third agent of the rack is refused, whatever name it takes.
    let e = crate::domain::servers::register(
        store.as_ref(),
        &local,
        again("box-d", "127.0.0.4", "127.0.0.4:80"),
        "rack-local-join",
        live(t + 3),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("already has server"), "{e}");
    assert_eq!(shop(&c).forwarded_from, ["127.0.0.1:8080"]);
    assert!(cron_services(&a).is_empty());
    assert_eq!(cron_services(&c), ["tick"]);
    assert_eq!(c.server_salt.as_deref(), Some("box-c"));

    // Done: the new server alone keeps its salt, so its instances keep their ids.
    assert!(
        store
            .advance_replacement(
                "local",
                t,
                ReplacementPhase::Forwarding,
                ReplacementPhase::Removing,
                t + 3,
                None,
                None,
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .end_replacement("local", t, ReplacementPhase::Removing)
            .await
            .unwrap()
    );
    let c = doc("box-c").await;
    assert_eq!(c.server_salt.as_deref(), Some("box-c"));
    assert!(shop(&c).forwarded_from.is_empty());
    assert_eq!(cron_services(&c), ["tick"]);
}
