//! API tokens and the audit log.

use std::sync::Arc;

use mesh_store::SqlStore;
use mesh_store::Store;
use mesh_types::api::Role;

use crate::support::*;

both_fixture!(tokens_made_before_scopes_keep_working);

both!(
    tokens_are_found_by_hash,
    scoped_tokens_name_their_environments_and_expiry,
    events_list_newest_first
);

async fn tokens_are_found_by_hash(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let admin = store
        .create_token("ci", Role::Admin, None, "hash-ci")
        .await
        .unwrap();
    assert_eq!(admin.name, "ci");
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.rack, None);
    assert_eq!(admin.last_used_at, None);
    assert!(admin.created_at > 0);
    let agent = store
        .create_token(
            "local-agent",
            Role::Agent,
            Some(&name("local")),
            "hash-agent",
        )
        .await
        .unwrap();
    assert_eq!(agent.rack, Some(name("local")));

    exists(
        store
            .create_token("ci", Role::Admin, None, "hash-other")
            .await,
        "token \"ci\" already exists",
    );
    exists(
        store
            .create_token("ci2", Role::Admin, None, "hash-ci")
            .await,
        "token \"ci2\" or one with the same secret already exists",
    );
    not_found(
        store
            .create_token("x", Role::Agent, Some(&name("nope")), "hash-x")
            .await,
        "rack \"nope\"",
    );

    let found = store.token_by_hash("hash-agent").await.unwrap().unwrap();
    assert_eq!(found.token, agent);
    assert_eq!(found.hash, "hash-agent");
    assert!(store.token_by_hash("hash-nope").await.unwrap().is_none());

    store.touch_token("ci", T + 10).await.unwrap();
    // Never backwards, and touching a missing token is harmless.
    store.touch_token("ci", T + 5).await.unwrap();
    store.touch_token("gone", T).await.unwrap();
    let listed = store.list_tokens().await.unwrap();
    let names: Vec<_> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ci", "local-agent"]);
    assert_eq!(listed[0].last_used_at, Some(T + 10));

    store.delete_token("ci").await.unwrap();
    not_found(store.delete_token("ci").await, "token \"ci\"");
    assert!(store.token_by_hash("hash-ci").await.unwrap().is_none());
}

async fn scoped_tokens_name_their_environments_and_expiry(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "staging").await;
    let dev = store
        .create_scoped_token(
            "dev",
            Role::Developer,
            &[name("staging"), name("shop"), name("shop")],
            Some(T + 1000),
            "hash-dev",
        )
        .await
        .unwrap();
    assert_eq!(dev.role, Role::Developer);
    assert_eq!(dev.environments, [name("shop"), name("staging")]);
    assert_eq!(dev.expires_at, Some(T + 1000));
    assert_eq!(dev.rack, None);
    let found = store.token_by_hash("hash-dev").await.unwrap().unwrap();
    assert_eq!(found.token, dev);
    not_found(
        store
            .create_scoped_token("v", Role::Viewer, &[name("nope")], None, "hash-v")
            .await,
        "environment \"nope\"",
    );
    assert!(
        store.token_by_hash("hash-v").await.unwrap().is_none(),
        "a failed create leaves nothing behind"
    );
    // Deleting an environment takes it out of every token's reach.
    store.delete_environment("staging").await.unwrap();
    let listed = store.list_tokens().await.unwrap();
    let dev = listed.iter().find(|t| t.name == "dev").unwrap();
    assert_eq!(dev.environments, [name("shop")]);
    assert_eq!(dev.expires_at, Some(T + 1000));
}

async fn events_list_newest_first(store: Arc<dyn Store>) {
    assert!(store.list_events(10).await.unwrap().is_empty());
    for i in 0..5 {
        store
            .record_event("alice", "env.create", &format!("env-{i}"), "{}", T + i)
            .await
            .unwrap();
    }
    let events = store.list_events(3).await.unwrap();
    let targets: Vec<_> = events.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["env-4", "env-3", "env-2"]);
    assert!(events[0].id > events[1].id);
    assert_eq!(events[0].at, T + 4);
    assert_eq!(events[0].actor, "alice");
    assert_eq!(events[0].action, "env.create");
    assert_eq!(events[0].detail, "{}");
    assert_eq!(store.list_events(100).await.unwrap().len(), 5);
    assert!(store.list_events(0).await.unwrap().is_empty());
}

/// A database of before migration 3 (no scopes, no expiry) is migrated with its tokens intact.
async fn tokens_made_before_scopes_keep_working(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    world(&store).await;
    store
        .create_token("old", Role::Admin, None, "hash-old")
        .await
        .unwrap();
    store.close().await;
    for sql in [
        "DROP TABLE token_environments",
        "ALTER TABLE tokens DROP COLUMN expires_at",
        "DELETE FROM schema_migrations WHERE version = 3",
    ] {
        fixture.execute(sql).await;
    }
    let store: SqlStore = fixture.open(key()).await.unwrap();
    let found = store.token_by_hash("hash-old").await.unwrap().unwrap();
    assert_eq!(found.token.role, Role::Admin);
    assert!(found.token.environments.is_empty());
    assert_eq!(found.token.expires_at, None);
    let dev = store
        .create_scoped_token("dev", Role::Developer, &[name("shop")], None, "hash-dev")
        .await
        .unwrap();
    assert_eq!(dev.environments, [name("shop")]);
    store.close().await;
}
