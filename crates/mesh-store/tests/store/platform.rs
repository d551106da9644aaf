//! Providers, racks and servers.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_store::Store;
use mesh_types::api::{
    CreateProvider, ProviderKind, RackRuntime, RackState, Role, Server, ServerState,
};

use crate::support::*;

both!(
    providers_keep_secrets,
    racks_and_servers,
    deleting_a_rack_or_provider_in_use_is_refused,
    kubernetes_racks_keep_their_kubeconfig_sealed,
);

fn provider(provider_name: &str, secrets: &[(&str, &str)]) -> CreateProvider {
    CreateProvider {
        name: name(provider_name),
        kind: ProviderKind::Ssh,
        secrets: secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn providers_keep_secrets(store: Arc<dyn Store>) {
    let created = store
        .create_provider(&provider("ovh", &[("token", "t0k"), ("app_key", "k3y")]), T)
        .await
        .unwrap();
    assert_eq!(created.name.as_str(), "ovh");
    assert_eq!(created.kind, ProviderKind::Ssh);
    assert_eq!(created.secret_keys, ["app_key", "token"]);
    assert_eq!(created.created_at, T);
    assert_eq!(store.get_provider("ovh").await.unwrap(), created);

    let secrets = store.provider_secrets("ovh").await.unwrap();
    let expected: BTreeMap<String, String> = [("app_key", "k3y"), ("token", "t0k")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(secrets, expected);

    exists(
        store.create_provider(&provider("ovh", &[]), T).await,
        "provider \"ovh\" already exists",
    );
    store
        .create_provider(&provider("aws", &[]), T)
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_providers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(names, ["aws", "ovh"]);
    // The cloud kinds are kept by their names.
    for (n, kind) in [("ec2", ProviderKind::Aws), ("hz", ProviderKind::Hetzner)] {
        let mut p = provider(n, &[("token", "t")]);
        p.kind = kind;
        store.create_provider(&p, T).await.unwrap();
        assert_eq!(store.get_provider(n).await.unwrap().kind, kind);
        store.delete_provider(n).await.unwrap();
    }

    not_found(store.get_provider("nope").await, "provider \"nope\"");
    not_found(store.provider_secrets("nope").await, "provider \"nope\"");
    not_found(store.delete_provider("nope").await, "provider \"nope\"");
    store.delete_provider("ovh").await.unwrap();
    not_found(store.get_provider("ovh").await, "provider \"ovh\"");
}

async fn racks_and_servers(store: Arc<dyn Store>) {
    not_found(
        store.create_rack(&rack("edge", "local", "192.0.2.1")).await,
        "provider \"local\"",
    );
    store
        .create_provider(&provider("local", &[]), T)
        .await
        .unwrap();
    let created = store
        .create_rack(&rack("edge", "local", "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(created, rack("edge", "local", "192.0.2.1"));
    exists(
        store.create_rack(&rack("edge", "local", "192.0.2.2")).await,
        "rack \"edge\" already exists",
    );
    store
        .create_rack(&rack("core", "local", "192.0.2.3"))
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_racks()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(names, ["core", "edge"]);

    let mut changed = rack("edge", "local", "192.0.2.9");
    changed.state = RackState::Upgrading;
    changed.size = "large".into();
    assert_eq!(store.update_rack(&changed).await.unwrap(), changed);
    assert_eq!(store.get_rack("edge").await.unwrap(), changed);
    not_found(
        store.update_rack(&rack("nope", "local", "x")).await,
        "rack \"nope\"",
    );
    not_found(store.get_rack("nope").await, "rack \"nope\"");

    let mut server = Server {
        name: name("s1"),
        rack: name("edge"),
        address: "10.0.0.1".into(),
        cpus: 2.5,
        memory_mb: 8192,
        state: ServerState::Ready,
        last_heartbeat: None,
        created_at: T,
        version: Some("0.1.0".into()),
        instances: 0,
        router: Some("10.0.0.1:80".into()),
    };
    assert_eq!(store.upsert_server(&server).await.unwrap(), server);
    // A later report updates the server but keeps when it first joined.
    let mut report = server.clone();
    report.address = "10.0.0.2".into();
    report.last_heartbeat = Some(T + 5);
    report.state = ServerState::Draining;
    report.created_at = T + 5;
    let stored = store.upsert_server(&report).await.unwrap();
    server.address = "10.0.0.2".into();
    server.last_heartbeat = Some(T + 5);
    server.state = ServerState::Draining;
    assert_eq!(stored, server);
    let mut s0 = server.clone();
    s0.name = name("s0");
    store.upsert_server(&s0).await.unwrap();
    assert_eq!(store.list_servers("edge").await.unwrap(), [s0, server]);
    assert!(store.list_servers("core").await.unwrap().is_empty());
    not_found(store.list_servers("nope").await, "rack \"nope\"");
    let mut lost = report.clone();
    lost.rack = name("nope");
    not_found(store.upsert_server(&lost).await, "rack \"nope\"");
}

async fn deleting_a_rack_or_provider_in_use_is_refused(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "blog").await;
    store
        .create_token(
            "edge-agent",
            Role::Agent,
            Some(&name("local")),
            "hash-agent",
        )
        .await
        .unwrap();

    precondition(
        store.delete_rack("local").await,
        "rack \"local\" still hosts environments: blog, shop",
    );
    precondition(
        store.delete_provider("local").await,
        "provider \"local\" is still used by racks: local",
    );
    // Refusals change nothing.
    assert_eq!(store.list_racks().await.unwrap().len(), 1);
    assert_eq!(store.list_environments().await.unwrap().len(), 2);

    store.delete_environment("shop").await.unwrap();
    precondition(
        store.delete_rack("local").await,
        "rack \"local\" still hosts environments: blog",
    );
    store.delete_environment("blog").await.unwrap();
    store.delete_rack("local").await.unwrap();
    // The rack's agent token went with it.
    assert!(store.token_by_hash("hash-agent").await.unwrap().is_none());
    store.delete_provider("local").await.unwrap();
    not_found(store.delete_rack("local").await, "rack \"local\"");
}

async fn kubernetes_racks_keep_their_kubeconfig_sealed(store: Arc<dyn Store>) {
    store
        .create_provider(&provider("local", &[]), T)
        .await
        .unwrap();
    let mut k = rack("k8s", "local", "192.0.2.9");
    k.runtime = RackRuntime::Kubernetes;
    let kubeconfig = "apiVersion: v1\nusers:\n- user: {token: s3cret-cluster-token}\n";
    let created = store.create_kube_rack(&k, kubeconfig).await.unwrap();
    assert_eq!(created.runtime, RackRuntime::Kubernetes);
    assert_eq!(store.get_rack("k8s").await.unwrap(), k);
    assert_eq!(
        store.rack_kubeconfig("k8s").await.unwrap().as_deref(),
        Some(kubeconfig)
    );
    // A native rack has none; a rack that is not there is not found.
    store
        .create_rack(&rack("edge", "local", "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(
        store.get_rack("edge").await.unwrap().runtime,
        RackRuntime::Native
    );
    assert_eq!(store.rack_kubeconfig("edge").await.unwrap(), None);
    not_found(store.rack_kubeconfig("nope").await, "rack \"nope\"");

    // A cluster a provider made: the rack first, its kubeconfig once its first server sends it.
    let mut made = rack("k3s", "local", "192.0.2.10");
    made.runtime = RackRuntime::Kubernetes;
    store.create_rack(&made).await.unwrap();
    assert_eq!(store.rack_kubeconfig("k3s").await.unwrap(), None);
    assert!(
        store
            .set_rack_kubeconfig("k3s", "apiVersion: v1\n# made\n")
            .await
            .unwrap()
    );
    // Once only: another is not set.
    assert!(
        !store
            .set_rack_kubeconfig("k3s", "apiVersion: v1\n# other\n")
            .await
            .unwrap()
    );
    assert_eq!(
        store.rack_kubeconfig("k3s").await.unwrap().as_deref(),
        Some("apiVersion: v1\n# made\n")
    );
    let e = store
        .set_rack_kubeconfig("edge", "apiVersion: v1\n")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, mesh_store::StoreError::FailedPrecondition(m) if m.contains("only a Kubernetes rack")),
        "{e}"
    );
    assert_eq!(store.rack_kubeconfig("edge").await.unwrap(), None);
    not_found(
        store.set_rack_kubeconfig("nope", "apiVersion: v1\n").await,
        "rack \"nope\"",
    );
}
