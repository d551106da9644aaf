//! Opening, migrating and sealing: what the database holds and how it is reopened.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_store::{CertificateRecord, Dialect, SqlStore, Store, StoreError};
use mesh_types::ConfigKey;
use mesh_types::api::{
    Certificate, CertificateSource, CertificateState, CreateProvider, ProviderKind, UpdateStack,
};
use mesh_types::config::ConfigScope;

use crate::support::*;

both_fixture!(
    reopening_keeps_data_and_migrations,
    concurrent_opens_migrate_once,
    a_wrong_master_key_cannot_open_secrets,
);

/// Writes `marker` into each sealed kind of value, and `plain` where nothing is sealed.
async fn write_secrets(store: &dyn Store, marker: &str, plain: &str) {
    world(store).await;
    let set: BTreeMap<ConfigKey, String> = [(
        ConfigKey::parse("SECRET").unwrap(),
        format!("config-{marker}"),
    )]
    .into();
    store
        .change_config("shop", "app", &ConfigScope::default(), &set, &[], T)
        .await
        .unwrap();
    store
        .create_provider(
            &CreateProvider {
                name: name("ssh"),
                kind: ProviderKind::Ssh,
                secrets: [("key".to_string(), format!("provider-{marker}"))].into(),
            },
            T,
        )
        .await
        .unwrap();
    store
        .add_certificate(&CertificateRecord {
            certificate: Certificate {
                environment: name("shop"),
                fingerprint: "f00d".into(),
                domains: vec!["shop.example.com".into()],
                source: CertificateSource::Uploaded,
                state: CertificateState::Issued,
                issuer: "Test CA".into(),
                not_before: T,
                not_after: T + 1,
                created_at: T,
            },
            chain_pem: "chain".into(),
            key_pem: format!("-----BEGIN PRIVATE KEY-----\ncert-{marker}\n"),
        })
        .await
        .unwrap();
    store
        .update_stack(
            "shop",
            "app",
            &UpdateStack {
                release_command: Some(plain.to_string()),
                ..Default::default()
            },
            T,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_secrets_never_reach_the_database_files() {
    run(Kind::Sqlite, |fixture: Arc<Fixture>| async move {
        let marker = "Zq7marker9Xv";
        let plain = "plainQ4sentinel";
        let store = fixture.open(key()).await.unwrap();
        write_secrets(&store, marker, plain).await;
        // Read them back while the WAL still holds the latest pages.
        assert_eq!(
            store.provider_secrets("ssh").await.unwrap()["key"],
            format!("provider-{marker}")
        );
        let path = fixture.sqlite_path().unwrap();
        assert!(
            std::path::Path::new(&format!("{}-wal", path.display())).exists(),
            "the database is not in WAL mode"
        );
        let mut scanned = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            if let Ok(bytes) = std::fs::read(&file) {
                scanned.extend_from_slice(&bytes);
            }
        }
        let contains = |needle: &str| {
            scanned
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        };
        // The scan would see plaintext: an unsealed value written the same way is found.
        assert!(contains(plain), "the scan found no plain value either");
        assert!(!contains(marker), "a secret reached the database files");
        store.close().await;
    })
    .await
}

async fn a_wrong_master_key_cannot_open_secrets(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    write_secrets(&store, "m", "p").await;
    store.close().await;

    let wrong = fixture.open(other_key()).await.unwrap();
    let crypto = |e: StoreError| assert!(matches!(e, StoreError::Crypto), "{e:?}");
    crypto(wrong.list_config("shop", "app").await.unwrap_err());
    crypto(wrong.provider_secrets("ssh").await.unwrap_err());
    crypto(wrong.get_certificate("shop", "f00d").await.unwrap_err());
    // Everything not sealed still reads.
    assert_eq!(
        wrong
            .get_stack("shop", "app")
            .await
            .unwrap()
            .release_command
            .as_deref(),
        Some("p")
    );
    assert_eq!(wrong.list_certificates("shop").await.unwrap().len(), 1);
    assert_eq!(
        wrong.get_provider("ssh").await.unwrap().secret_keys,
        ["key"]
    );
    wrong.close().await;

    let right = fixture.open(key()).await.unwrap();
    assert_eq!(
        right.list_config("shop", "app").await.unwrap()[0].value,
        "config-m"
    );
    right.close().await;
}

async fn reopening_keeps_data_and_migrations(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    let expected = match fixture.kind {
        Kind::Sqlite => Dialect::Sqlite,
        Kind::Postgres => Dialect::Postgres,
    };
    assert_eq!(store.dialect(), expected);
    world(&store).await;
    store.close().await;
    let applied = fixture.migrations().await;
    assert_eq!(
        applied.iter().map(|m| m.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );

    let again = fixture.open(key()).await.unwrap();
    assert_eq!(
        again.get_environment("shop").await.unwrap().racks,
        [name("local")]
    );
    assert_eq!(again.list_services("shop", None).await.unwrap().len(), 2);
    again.close().await;
    // Same rows, same times: nothing ran again.
    assert_eq!(fixture.migrations().await, applied);

    // A database migrated by a newer mesh is refused rather than misread.
    fixture
        .execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        .await;
    match fixture.open(key()).await {
        Err(StoreError::FailedPrecondition(m)) => assert!(m.contains("version 99"), "{m}"),
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
}

async fn concurrent_opens_migrate_once(fixture: Arc<Fixture>) {
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let fixture = fixture.clone();
            tokio::spawn(async move { fixture.open(key()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().unwrap());
    }
    assert_eq!(fixture.migrations().await.len(), 8);
    world(&stores[0]).await;
    assert_eq!(stores[3].list_environments().await.unwrap().len(), 1);
    for s in stores {
        s.close().await;
    }
}

#[tokio::test]
async fn sqlite_urls_and_paths_open_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    // Characters that mean something in a URL still make a plain file name.
    let path = dir.path().join("state #1?.db");
    let store = SqlStore::open_sqlite_path(&path, key()).await.unwrap();
    world(&store).await;
    store.close().await;
    assert!(path.exists());

    let plain = dir.path().join("state.db");
    let store = SqlStore::open(&format!("sqlite://{}", plain.display()), key())
        .await
        .unwrap();
    world(&store).await;
    store.close().await;
    let again = SqlStore::open_sqlite_path(&plain, key()).await.unwrap();
    assert_eq!(again.list_environments().await.unwrap().len(), 1);
    again.close().await;

    let e = SqlStore::open("mysql://root@localhost/x", key())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("\"mysql\" is not supported"), "{e}");
}
