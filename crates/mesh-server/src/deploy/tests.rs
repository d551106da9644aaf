use std::sync::Arc;

use mesh_store::{MasterKey, SqlStore, Store, StoreError};
use mesh_types::Name;
use mesh_types::api::{
    CreateProvider, CreateRack, CreateStack, DeploymentStatus, NewDeployment, ProviderKind,
};
use mesh_types::desired::BuiltImage;

use super::*;
use crate::AppState;
use crate::clock::SystemClock;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// Environment `shop` on the local rack, with stack `app` that never deployed.
async fn platform(dir: &std::path::Path) -> AppState {
    let key = MasterKey::generate().unwrap();
    let store = SqlStore::open_sqlite_path(&dir.join("db"), key)
        .await
        .unwrap();
    let local = name("local");
    let provider = CreateProvider {
        name: local.clone(),
        kind: ProviderKind::Local,
        secrets: Default::default(),
    };
    store.create_provider(&provider, 1).await.unwrap();
    let req = CreateRack {
        name: local.clone(),
        provider: local.clone(),
        region: local.clone(),
        size: None,
        domain: None,
        address: None,
        runtime: None,
        kubeconfig: None,
        servers: None,
    };
    let rack =
        crate::domain::racks::rack_from_request(&req, ProviderKind::Local, false, 1).unwrap();
    store.create_rack(&rack).await.unwrap();
    store
        .create_environment(&name("shop"), &[local], &[], 1)
        .await
        .unwrap();
    let stack = CreateStack {
        name: name("app"),
        formula: None,
    };
    store.create_stack("shop", &stack, 1).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    AppState::new(store, Arc::new(SystemClock))
}

/// Makes `shop/app` run a finished deployment of a built image.
async fn deployed(state: &AppState) -> Version {
    let new = NewDeployment {
        formula: Default::default(),
        source_digest: None,
        created_by: "test".into(),
        description: String::new(),
        image: Some(BuiltImage {
            digest: "sha256:00".into(),
            base: None,
            layers: Vec::new(),
            config: Default::default(),
        }),
        processes: Default::default(),
        release_command: None,
    };
    let store = state.store();
    let d = store
        .create_deployment("shop", "app", &new, 1)
        .await
        .unwrap();
    store
        .set_deployment_status(
            "shop",
            "app",
            d.version,
            DeploymentStatus::Succeeded,
            None,
            1,
        )
        .await
        .unwrap();
    store
        .set_current_deployment("shop", "app", Some(d.version), 1)
        .await
        .unwrap();
    d.version
}

#[tokio::test]
async fn a_config_change_of_a_missing_stack_is_an_error_not_silence() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let e = config_changed(&state, "test", "shop", "nope", "set [A]")
        .await
        .unwrap_err();
    assert!(
        matches!(e, DeployError::Store(StoreError::NotFound(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_stack_without_an_image_is_not_deployed_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let done = config_changed(&state, "test", "shop", "app", "set [A]").await;
    assert_eq!(done.unwrap(), Redeploy::NoImage);
    let deployments = state.store().list_deployments("shop", "app").await.unwrap();
    assert!(deployments.is_empty());
}

#[tokio::test]
async fn a_running_deployment_takes_the_change_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    deployed(&state).await;
    let _running = state.deploys().claim("shop", "app").unwrap();
    let done = config_changed(&state, "test", "shop", "app", "set [A]").await;
    assert_eq!(done.unwrap(), Redeploy::AlreadyRunning);
    let deployments = state.store().list_deployments("shop", "app").await.unwrap();
    assert_eq!(deployments.len(), 1, "no second deployment");
}

#[tokio::test]
async fn a_stack_runs_one_deployment_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let first = claim(&state, "shop", "app").await.unwrap();
    let e = claim(&state, "shop", "app").await.err().unwrap();
    assert!(matches!(e, DeployError::Busy { .. }), "{e:?}");
    drop(first);
    // Nothing held here, but the store still has an unfinished deployment: busy too.
    let v = deployed(&state).await;
    state
        .store()
        .set_deployment_status("shop", "app", v, DeploymentStatus::Building, None, 2)
        .await
        .unwrap();
    let e = claim(&state, "shop", "app").await.err().unwrap();
    assert_eq!(
        e.to_string(),
        "a deployment of shop/app is already running; follow it with `mesh deployments show` or wait for it to end"
    );
}
