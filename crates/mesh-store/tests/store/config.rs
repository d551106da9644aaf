//! Config variables in their scopes.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_store::Store;
use mesh_types::ConfigKey;
use mesh_types::config::{ConfigScope, resolve};

use crate::support::*;

both!(scopes_set_and_unset, changes_are_checked_and_atomic);

fn key_of(k: &str) -> ConfigKey {
    ConfigKey::parse(k).unwrap()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<ConfigKey, String> {
    pairs
        .iter()
        .map(|(k, v)| (key_of(k), v.to_string()))
        .collect()
}

fn scope(service: Option<&str>, region: Option<&str>, rack_name: Option<&str>) -> ConfigScope {
    ConfigScope {
        service: service.map(name),
        region: region.map(name),
        rack: rack_name.map(name),
    }
}

async fn scopes_set_and_unset(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let stack_scope = ConfigScope::default();
    let web = scope(Some("web"), None, None);
    let eu = scope(None, Some("eu"), None);
    let web_local = scope(Some("web"), None, Some("local"));

    let after = store
        .change_config(
            "shop",
            "app",
            &stack_scope,
            &vars(&[("A", "1"), ("B", "2")]),
            &[],
            T,
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    // The same key in every scope is a separate variable.
    for s in [&web, &eu, &web_local] {
        store
            .change_config("shop", "app", s, &vars(&[("A", &s.describe())]), &[], T + 1)
            .await
            .unwrap();
    }
    // Setting again replaces the value in that scope only.
    let all = store
        .change_config(
            "shop",
            "app",
            &stack_scope,
            &vars(&[("A", "one")]),
            &[],
            T + 2,
        )
        .await
        .unwrap();
    let listed: Vec<_> = all
        .iter()
        .map(|v| {
            (
                v.scope.describe(),
                v.key.to_string(),
                v.value.clone(),
                v.updated_at,
            )
        })
        .collect();
    let row = |s: &str, k: &str, v: &str, at| (s.to_string(), k.to_string(), v.to_string(), at);
    assert_eq!(
        listed,
        [
            row("stack", "A", "one", T + 2),
            row("stack", "B", "2", T),
            row("stack @region eu", "A", "stack @region eu", T + 1),
            row("service web", "A", "service web", T + 1),
            row(
                "service web @rack local",
                "A",
                "service web @rack local",
                T + 1
            ),
        ]
    );
    assert_eq!(store.list_config("shop", "app").await.unwrap(), all);
    let resolved = resolve(&all, "web", "local", "eu");
    assert_eq!(resolved["A"].value, "service web @rack local");
    assert_eq!(resolved["B"].value, "2");

    let after = store
        .change_config(
            "shop",
            "app",
            &web_local,
            &BTreeMap::new(),
            &[key_of("A")],
            T + 3,
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 4);
    not_found(
        store
            .change_config(
                "shop",
                "app",
                &web_local,
                &BTreeMap::new(),
                &[key_of("A")],
                T,
            )
            .await,
        "config variable \"A\" of stack \"app\" (service web @rack local)",
    );
    not_found(
        store
            .change_config(
                "shop",
                "app",
                &stack_scope,
                &BTreeMap::new(),
                &[key_of("C")],
                T,
            )
            .await,
        "config variable \"C\" of stack \"app\"",
    );
    // Deleting the service removes its variables.
    store.delete_service("shop", "app", "web").await.unwrap();
    let left: Vec<_> = store
        .list_config("shop", "app")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.scope.describe())
        .collect();
    assert_eq!(left, ["stack", "stack", "stack @region eu"]);
}

async fn changes_are_checked_and_atomic(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let stack_scope = ConfigScope::default();
    store
        .change_config("shop", "app", &stack_scope, &vars(&[("A", "1")]), &[], T)
        .await
        .unwrap();
    // An unknown unset fails the whole change, including its sets.
    not_found(
        store
            .change_config(
                "shop",
                "app",
                &stack_scope,
                &vars(&[("B", "2")]),
                &[key_of("A"), key_of("NOPE")],
                T,
            )
            .await,
        "config variable \"NOPE\" of stack \"app\"",
    );
    let left: Vec<_> = store
        .list_config("shop", "app")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.key.to_string(), v.value))
        .collect();
    assert_eq!(left, [("A".to_string(), "1".to_string())]);

    not_found(
        store
            .change_config(
                "shop",
                "app",
                &scope(Some("nope"), None, None),
                &vars(&[("A", "1")]),
                &[],
                T,
            )
            .await,
        "service \"nope\" in stack \"app\" of environment \"shop\"",
    );
    not_found(
        store
            .change_config("shop", "nope", &stack_scope, &vars(&[("A", "1")]), &[], T)
            .await,
        "stack \"nope\" in environment \"shop\"",
    );
    not_found(
        store.list_config("nope", "app").await,
        "environment \"nope\"",
    );
    invalid(
        store
            .change_config(
                "shop",
                "app",
                &scope(None, Some("eu"), Some("local")),
                &vars(&[("A", "1")]),
                &[],
                T,
            )
            .await,
        "not both",
    );
    invalid(
        store
            .change_config("shop", "app", &stack_scope, &vars(&[("A", "")]), &[], T)
            .await,
        "empty",
    );
    invalid(
        store
            .change_config(
                "shop",
                "app",
                &stack_scope,
                &vars(&[("A", "2")]),
                &[key_of("A")],
                T,
            )
            .await,
        "both set and unset",
    );
}
