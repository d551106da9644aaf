//! A rack's server: claimed, replaced, kept alive by heartbeats and marked lost.

use std::sync::Arc;

use mesh_store::{SqlStore, Store};
use mesh_types::Version;
use mesh_types::api::{
    Instance, InstanceState, RackState, Replacement, ReplacementPhase, Server, ServerState,
};

use crate::support::*;

both!(
    a_claim_replaces_only_the_servers_it_names,
    heartbeats_and_lost_servers,
    a_replacement_goes_phase_by_phase_and_ends_done_or_undone,
);

both_fixture!(servers_registered_before_versions_keep_working);

fn server(n: &str, at: i64) -> Server {
    Server {
        name: name(n),
        rack: name("local"),
        address: "10.0.0.1".into(),
        cpus: 2.0,
        memory_mb: 4096,
        state: ServerState::Ready,
        last_heartbeat: Some(at),
        created_at: at,
        version: Some("0.1.0".into()),
        instances: 0,
        router: None,
    }
}

fn instance(id: &str, server: &str) -> Instance {
    Instance {
        id: id.into(),
        environment: name("shop"),
        stack: name("app"),
        service: name("web"),
        deployment: Some(Version(0)),
        server: Some(name(server)),
        rack: None,
        state: InstanceState::Healthy,
        address: Some("10.231.7.2".into()),
        restarts: 0,
        exit_code: None,
        message: None,
        started_at: Some(T),
        updated_at: T,
    }
}

async fn a_claim_replaces_only_the_servers_it_names(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let first = store.claim_server(&server("s1", T), &[]).await.unwrap();
    assert_eq!(first, server("s1", T));
    store
        .replace_server_instances("s1", &[instance("web-1", "s1"), instance("web-2", "s1")])
        .await
        .unwrap();
    assert_eq!(store.list_servers("local").await.unwrap()[0].instances, 2);
    // Re-registration of the same server replaces nothing and keeps its instances.
    let mut again = server("s1", T + 5);
    again.version = Some("0.2.0".into());
    let stored = store.claim_server(&again, &[]).await.unwrap();
    assert_eq!(stored.version.as_deref(), Some("0.2.0"));
    assert_eq!(stored.created_at, T);
    assert_eq!(stored.instances, 2);

    // A claim that did not see s1 changes nothing.
    precondition(
        store.claim_server(&server("s2", T + 6), &[]).await,
        "the servers of rack local changed while server s2 registered (now: s1); register again",
    );
    assert_eq!(store.list_servers("local").await.unwrap().len(), 1);

    // Naming s1 removes it and its instances.
    let s2 = store
        .claim_server(&server("s2", T + 7), &[name("s1")])
        .await
        .unwrap();
    assert_eq!(s2.name.as_str(), "s2");
    let servers = store.list_servers("local").await.unwrap();
    assert_eq!(servers, [s2]);
    assert!(store.list_instances("shop").await.unwrap().is_empty());
    let elsewhere = Server {
        rack: name("nope"),
        ..server("s3", T)
    };
    not_found(store.claim_server(&elsewhere, &[]).await, "rack \"nope\"");
}

async fn heartbeats_and_lost_servers(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store.claim_server(&server("s1", T), &[]).await.unwrap();
    store
        .replace_server_instances("s1", &[instance("web-1", "s1")])
        .await
        .unwrap();

    // A look that is out of date marks nothing.
    assert!(!store.mark_server_lost("local", "s1", T - 1).await.unwrap());
    assert!(store.mark_server_lost("local", "s1", T).await.unwrap());
    // Marking again is a no-op: one of several control planes says it.
    assert!(!store.mark_server_lost("local", "s1", T).await.unwrap());
    let s1 = &store.list_servers("local").await.unwrap()[0];
    assert_eq!(s1.state, ServerState::Lost);
    let instances = store.list_instances("shop").await.unwrap();
    assert_eq!(instances[0].state, InstanceState::Unknown);
    assert_eq!(
        store
            .get_service("shop", "app", "web")
            .await
            .unwrap()
            .status
            .healthy,
        0
    );

    store
        .heartbeat_server("local", "s1", T + 40, ServerState::Ready)
        .await
        .unwrap();
    let s1 = &store.list_servers("local").await.unwrap()[0];
    assert_eq!(s1.state, ServerState::Ready);
    assert_eq!(s1.last_heartbeat, Some(T + 40));
    // A heartbeat after the sweeper looked wins over its marking.
    assert!(!store.mark_server_lost("local", "s1", T).await.unwrap());
    assert_eq!(
        store.list_servers("local").await.unwrap()[0].state,
        ServerState::Ready
    );
    not_found(
        store
            .heartbeat_server("local", "nope", T, ServerState::Ready)
            .await,
        "server \"nope\" of rack \"local\"",
    );
}

/// A database of before migration 4 (no server versions) keeps its servers, with no version.
async fn servers_registered_before_versions_keep_working(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    world(&store).await;
    store.upsert_server(&server("s1", T)).await.unwrap();
    store.close().await;
    for sql in [
        "ALTER TABLE servers DROP COLUMN version",
        "DELETE FROM schema_migrations WHERE version = 4",
    ] {
        fixture.execute(sql).await;
    }
    let store: SqlStore = fixture.open(key()).await.unwrap();
    let servers = store.list_servers("local").await.unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].version, None);
    assert_eq!(servers[0].name.as_str(), "s1");
    store.claim_server(&server("s1", T + 1), &[]).await.unwrap();
    assert_eq!(
        store.list_servers("local").await.unwrap()[0]
            .version
            .as_deref(),
        Some("0.1.0")
    );
    store.close().await;
}

fn replacement(old: &str, new: &str, since: i64) -> Replacement {
    Replacement {
        rack: name("local"),
        old_server: name(old),
        new_server: name(new),
        size: "big".into(),
        version: "0.1.0".into(),
        phase: ReplacementPhase::Making,
        since,
        phase_since: since,
        drain_grace_ms: 10_000,
        timeout_ms: 60_000,
        message: Some("making".into()),
    }
}

async fn a_replacement_goes_phase_by_phase_and_ends_done_or_undone(store: Arc<dyn Store>) {
    use ReplacementPhase::*;
    world(store.as_ref()).await;
    store.claim_server(&server("s1", T), &[]).await.unwrap();
    store
        .replace_server_instances("s1", &[instance("web-1", "s1")])
        .await
        .unwrap();
    assert_eq!(store.get_replacement("local").await.unwrap(), None);
    let r = replacement("s1", "s2", T + 1);
    store
        .start_replacement(&r, RackState::Resizing)
        .await
        .unwrap();
    assert_eq!(
        store.get_rack("local").await.unwrap().state,
        RackState::Resizing
    );
    // One at a time per rack.
    let e = store
        .start_replacement(&replacement("s1", "s3", T + 2), RackState::Upgrading)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("is replacing a server already"),
        "{e}"
    );
    // The new server joins beside the old one (only beside exactly the servers it saw).
    precondition(
        store.join_server_beside(&server("s2", T + 3), &[]).await,
        "the servers of rack local changed while server s2 registered (now: s1); register again",
    );
    store
        .join_server_beside(&server("s2", T + 3), &[name("s1")])
        .await
        .unwrap();
    store
        .replace_server_instances("s2", &[instance("web-2", "s2")])
        .await
        .unwrap();
    // Steps are conditional: from the phase it is in, for the replacement it is.
    assert!(
        !store
            .advance_replacement("local", T + 1, Starting, Forwarding, T + 4, None, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_replacement("local", T + 9, Making, Starting, T + 4, None, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_replacement(
                "local",
                T + 1,
                Making,
                Starting,
                T + 4,
                Some("joining"),
                None
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_replacement(
                "local",
                T + 1,
                Starting,
                Forwarding,
                T + 5,
                None,
                Some("203.0.113.20")
            )
            .await
            .unwrap()
    );
    let got = store.get_replacement("local").await.unwrap().unwrap();
    assert_eq!(
        (got.phase, got.phase_since, got.message),
        (Forwarding, T + 5, None)
    );
    assert_eq!(store.list_replacements().await.unwrap().len(), 1);
    // Traffic moved: the rack's address is the new server's, the old one drains (and stays
    // draining when its agent registers again).
    assert_eq!(
        store.get_rack("local").await.unwrap().address,
        "203.0.113.20"
    );
    let servers = store.list_servers("local").await.unwrap();
    assert_eq!(
        servers
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect::<Vec<_>>(),
        [("s1", ServerState::Draining), ("s2", ServerState::Ready)]
    );
    let e = store
        .end_replacement("local", T + 1, Forwarding)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("ends from removing or undoing"),
        "{e}"
    );
    assert!(
        store
            .advance_replacement("local", T + 1, Forwarding, Removing, T + 6, None, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .end_replacement("local", T + 1, Removing)
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_replacement("local", T + 1, Removing)
            .await
            .unwrap()
    );
    // Done: the old server and its instances are gone, the rack has the new size and salt.
    let rack = store.get_rack("local").await.unwrap();
    assert_eq!((rack.size.as_str(), rack.state), ("big", RackState::Ready));
    assert_eq!(
        store.instance_salt("local").await.unwrap().as_deref(),
        Some("s2")
    );
    let servers = store.list_servers("local").await.unwrap();
    assert_eq!(
        servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["s2"]
    );
    let ids: Vec<String> = store
        .list_instances("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, ["web-2"]);

    // Undone: the new server goes, the old one stays as it was.
    store
        .start_replacement(&replacement("s2", "s3", T + 10), RackState::Upgrading)
        .await
        .unwrap();
    store
        .join_server_beside(&server("s3", T + 11), &[name("s2")])
        .await
        .unwrap();
    assert!(
        store
            .advance_replacement(
                "local",
                T + 10,
                Making,
                Undoing,
                T + 12,
                Some("timed out"),
                None
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .end_replacement("local", T + 10, Undoing)
            .await
            .unwrap()
    );
    let rack = store.get_rack("local").await.unwrap();
    assert_eq!((rack.size.as_str(), rack.state), ("big", RackState::Ready));
    assert_eq!(
        store.instance_salt("local").await.unwrap().as_deref(),
        Some("s2")
    );
    let servers = store.list_servers("local").await.unwrap();
    assert_eq!(
        servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["s2"]
    );
    assert_eq!(store.get_replacement("local").await.unwrap(), None);
    not_found(store.get_replacement("nope").await, "rack \"nope\"");
}
