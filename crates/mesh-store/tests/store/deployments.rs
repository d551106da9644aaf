//! Deployments: numbering, statuses and logs.

use std::sync::Arc;

use mesh_store::Store;
use mesh_types::Version;
use mesh_types::api::{CreateStack, DeploymentStatus, Formula, NewDeployment};

use crate::support::*;

both!(
    versions_count_up_per_stack,
    concurrent_deployments_get_distinct_versions,
    status_changes_finish_and_promote,
    logs_are_appended_in_order,
    builds_steps_and_the_current_deployment_are_kept,
);

fn new(by: &str) -> NewDeployment {
    NewDeployment {
        formula: Formula::Dockerfile,
        source_digest: Some(format!("sha256:{by}")),
        created_by: by.into(),
        description: "build".into(),
        image: None,
        processes: Default::default(),
        release_command: None,
    }
}

async fn versions_count_up_per_stack(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .create_stack(
            "shop",
            &CreateStack {
                name: name("api"),
                formula: None,
            },
            T,
        )
        .await
        .unwrap();
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(
            store
                .create_deployment("shop", "app", &new("alice"), T + i)
                .await
                .unwrap(),
        );
    }
    let versions: Vec<_> = made.iter().map(|d| d.version.to_string()).collect();
    assert_eq!(versions, ["v0", "v1", "v2"]);
    let d = &made[1];
    assert_eq!(d.status, DeploymentStatus::Pending);
    assert_eq!(d.formula, Formula::Dockerfile);
    assert_eq!(d.source_digest.as_deref(), Some("sha256:alice"));
    assert_eq!((d.created_at, d.finished_at), (T + 1, None));
    assert_eq!(d.environment.as_str(), "shop");
    assert_eq!(d.stack.as_str(), "app");

    // Each stack counts on its own.
    let api = store
        .create_deployment("shop", "api", &new("bob"), T)
        .await
        .unwrap();
    assert_eq!(api.version, Version(0));
    assert_eq!(store.list_deployments("shop", "app").await.unwrap(), made);
    assert_eq!(
        store
            .get_deployment("shop", "app", Version(1))
            .await
            .unwrap(),
        made[1]
    );
    not_found(
        store.get_deployment("shop", "app", Version(9)).await,
        "deployment v9 of stack \"app\" in environment \"shop\"",
    );
    not_found(
        store.create_deployment("shop", "nope", &new("x"), T).await,
        "stack \"nope\" in environment \"shop\"",
    );
    not_found(
        store.list_deployments("nope", "app").await,
        "environment \"nope\"",
    );
}

async fn concurrent_deployments_get_distinct_versions(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_deployment("shop", "app", &new(&format!("user{i}")), T)
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().unwrap().version.0);
    }
    versions.sort();
    assert_eq!(versions, (0..10).collect::<Vec<_>>());
    let next = store
        .create_deployment("shop", "app", &new("last"), T)
        .await
        .unwrap();
    assert_eq!(next.version, Version(10));
}

async fn status_changes_finish_and_promote(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    for _ in 0..2 {
        store
            .create_deployment("shop", "app", &new("alice"), T)
            .await
            .unwrap();
    }
    let set = |v, status, message: Option<&'static str>, at| {
        let store = store.clone();
        async move {
            store
                .set_deployment_status("shop", "app", Version(v), status, message, at)
                .await
        }
    };
    let building = set(0, DeploymentStatus::Building, None, T + 1)
        .await
        .unwrap();
    assert_eq!(building.status, DeploymentStatus::Building);
    assert_eq!(building.finished_at, None);
    let done = set(0, DeploymentStatus::Succeeded, Some("deployed"), T + 2)
        .await
        .unwrap();
    assert_eq!(done.finished_at, Some(T + 2));
    assert_eq!(done.message.as_deref(), Some("deployed"));
    let stack = store.get_stack("shop", "app").await.unwrap();
    assert_eq!(stack.current_deployment, Some(Version(0)));

    // A failure leaves the running version alone.
    let failed = set(
        1,
        DeploymentStatus::Failed,
        Some("build failed: exit 1"),
        T + 3,
    )
    .await
    .unwrap();
    assert_eq!(failed.finished_at, Some(T + 3));
    let stack = store.get_stack("shop", "app").await.unwrap();
    assert_eq!(stack.current_deployment, Some(Version(0)));
    // No message keeps the last one.
    let again = set(1, DeploymentStatus::RolledBack, None, T + 4)
        .await
        .unwrap();
    assert_eq!(again.message.as_deref(), Some("build failed: exit 1"));
    assert_eq!(again.finished_at, Some(T + 4));

    not_found(
        set(7, DeploymentStatus::Succeeded, None, T).await,
        "deployment v7 of stack \"app\" in environment \"shop\"",
    );
}

async fn logs_are_appended_in_order(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .create_deployment("shop", "app", &new("alice"), T)
        .await
        .unwrap();
    store
        .create_deployment("shop", "app", &new("alice"), T)
        .await
        .unwrap();
    assert_eq!(
        store
            .deployment_log("shop", "app", Version(0))
            .await
            .unwrap(),
        ""
    );
    for chunk in ["-----> Building\n", "Step 1/3 ", "done\n", "✓ released\n"] {
        store
            .append_deployment_log("shop", "app", Version(0), chunk)
            .await
            .unwrap();
    }
    store
        .append_deployment_log("shop", "app", Version(1), "other\n")
        .await
        .unwrap();
    assert_eq!(
        store
            .deployment_log("shop", "app", Version(0))
            .await
            .unwrap(),
        "-----> Building\nStep 1/3 done\n✓ released\n"
    );
    not_found(
        store
            .append_deployment_log("shop", "app", Version(5), "x")
            .await,
        "deployment v5 of stack \"app\" in environment \"shop\"",
    );
    not_found(
        store.deployment_log("shop", "app", Version(5)).await,
        "deployment v5 of stack \"app\" in environment \"shop\"",
    );
}

async fn builds_steps_and_the_current_deployment_are_kept(store: Arc<dyn Store>) {
    use mesh_types::api::{DeploymentBuild, DeploymentStep, UpdateStack};
    use mesh_types::desired::{BuiltImage, ImageConfig};
    world(store.as_ref()).await;
    let d = store
        .create_deployment("shop", "app", &new("alice"), T)
        .await
        .unwrap();
    assert_eq!(d.image, None);
    assert!(d.steps.is_empty());
    let image = BuiltImage {
        digest: "sha256:11".into(),
        base: Some("debian".into()),
        layers: vec!["sha256:22".into(), "sha256:33".into()],
        config: ImageConfig {
            workdir: Some("/app".into()),
            ..ImageConfig::default()
        },
    };
    let build = DeploymentBuild {
        image: image.clone(),
        processes: [("web".to_string(), "node server.js".to_string())].into(),
        release_command: Some("node migrate.js".into()),
    };
    let saved = store
        .set_deployment_build("shop", "app", d.version, &build)
        .await
        .unwrap();
    assert_eq!(saved.image.as_ref(), Some(&image));
    assert_eq!(saved.processes["web"], "node server.js");
    assert_eq!(saved.release_command.as_deref(), Some("node migrate.js"));
    let steps = vec![DeploymentStep {
        name: "build".into(),
        started_at: T,
        finished_at: Some(T + 1500),
        status: "succeeded".into(),
    }];
    store
        .set_deployment_steps("shop", "app", d.version, &steps)
        .await
        .unwrap();
    let got = store
        .get_deployment("shop", "app", d.version)
        .await
        .unwrap();
    assert_eq!(got.steps, steps);
    assert_eq!(got.steps[0].duration_ms(), Some(1500));
    assert_eq!(got.description, "build");

    // The stack points at a deployment (or none) without it finishing.
    let st = store
        .set_current_deployment("shop", "app", Some(d.version), T + 2)
        .await
        .unwrap();
    assert_eq!(st.current_deployment, Some(d.version));
    let st = store
        .set_current_deployment("shop", "app", None, T + 3)
        .await
        .unwrap();
    assert_eq!(st.current_deployment, None);

    // External buildpacks are kept in order, and other updates leave them.
    let list = vec![
        "https://example.com/a.tgz".to_string(),
        "/opt/bp".to_string(),
    ];
    let up = UpdateStack {
        buildpacks: Some(list.clone()),
        ..UpdateStack::default()
    };
    assert_eq!(
        store
            .update_stack("shop", "app", &up, T + 4)
            .await
            .unwrap()
            .buildpacks,
        list
    );
    let up = UpdateStack {
        release_command: Some("true".into()),
        ..UpdateStack::default()
    };
    assert_eq!(
        store
            .update_stack("shop", "app", &up, T + 5)
            .await
            .unwrap()
            .buildpacks,
        list
    );
}
