use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_store::{MasterKey, ServiceSpec, SqlStore};
use mesh_types::api::{CreateProvider, CreateStack, HealthCheck, ProviderKind, RackState};
use mesh_types::config::ConfigScope;
use mesh_types::{ConfigKey, Domain, InstanceSize, Name};
use sqlx::{AnyConnection, Connection, Executor};

use super::*;

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
    let before = for_rack(store.as_ref(), &rack, None).await.unwrap();
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
    let first = for_rack(store.as_ref(), &rack, None).await.unwrap();
    assert_eq!(secret(&first, "shop").as_deref(), Some("shop-secret"));
    let bank = first
        .environments
        .iter()
        .find(|e| e.environment.as_str() == "bank")
        .expect("bank is still in the document");
    assert!(bank.stacks.is_empty(), "{:?}", bank.stacks);
    // After a document that had it, the stack is kept as it was.
    let kept = for_rack(store.as_ref(), &rack, Some(&before))
        .await
        .unwrap();
    assert_eq!(kept, before);

    // A wrong master key opens nothing: the document fails whole rather than dropping stacks.
    store.close().await;
    let wrong = SqlStore::open_sqlite_path(&path, MasterKey::generate().unwrap())
        .await
        .unwrap();
    let e = for_rack(&wrong, &rack, Some(&before)).await.unwrap_err();
    assert!(matches!(e, StoreError::Crypto), "{e:?}");
    wrong.close().await;
}
