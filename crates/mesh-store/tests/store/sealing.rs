//! Config values are sealed bound to their owner (environment, stack, scope, key): a ciphertext
//! copied to another row in SQL, around the store, does not open there, with an error that names
//! the key; values sealed in the old format are resealed by schema version 2.

use std::collections::BTreeMap;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use mesh_store::{Store, StoreError};
use mesh_types::ConfigKey;
use mesh_types::api::CreateStack;
use mesh_types::config::ConfigScope;
use sqlx::{AnyConnection, Connection};

use crate::support::*;

both_fixture!(
    a_value_copied_to_another_row_does_not_open,
    old_format_values_are_resealed_and_still_read,
);

/// A config row, by the names that own it.
struct Row<'a> {
    env: &'a str,
    stack: &'a str,
    service: Option<&'a str>,
    region: Option<&'a str>,
    key: &'a str,
}

const fn row<'a>(env: &'a str, stack: &'a str, key: &'a str) -> Row<'a> {
    Row {
        env,
        stack,
        service: None,
        region: None,
        key,
    }
}

impl Row<'_> {
    /// A scalar subquery for the row's id (names here are test constants, never user input).
    fn id(&self) -> String {
        format!(
            "(SELECT c.id FROM config_vars c JOIN stacks s ON s.id = c.stack_id \
             JOIN environments e ON e.id = s.environment_id \
             LEFT JOIN services sv ON sv.id = c.service_id \
             WHERE e.name = '{}' AND s.name = '{}' AND c.key = '{}' \
             AND COALESCE(sv.name, '') = '{}' AND COALESCE(c.region, '') = '{}')",
            self.env,
            self.stack,
            self.key,
            self.service.unwrap_or(""),
            self.region.unwrap_or("")
        )
    }

    fn scope(&self) -> ConfigScope {
        ConfigScope {
            service: self.service.map(name),
            region: self.region.map(name),
            rack: None,
        }
    }
}

/// Copies the sealed value of `from` over that of `to`, in SQL, as someone with write access
/// to the database (or a restored backup) could.
async fn copy(fixture: &Fixture, from: &Row<'_>, to: &Row<'_>) {
    fixture
        .execute(&format!(
            "UPDATE config_vars SET value = (SELECT value FROM config_vars WHERE id = {}) \
             WHERE id = {}",
            from.id(),
            to.id()
        ))
        .await;
}

async fn set(store: &dyn Store, at: &Row<'_>, value: &str) {
    let vars: BTreeMap<ConfigKey, String> =
        [(ConfigKey::parse(at.key).unwrap(), value.to_string())].into();
    store
        .change_config(at.env, at.stack, &at.scope(), &vars, &[], T)
        .await
        .unwrap();
}

fn values(vars: &[mesh_types::config::ConfigVar]) -> Vec<(String, String, String)> {
    vars.iter()
        .map(|v| (v.scope.describe(), v.key.to_string(), v.value.clone()))
        .collect()
}

const MOVED: &str = "its value was sealed for a different owner (another environment, stack, \
                     scope or key; it was copied from another row) or is damaged";

async fn a_value_copied_to_another_row_does_not_open(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    world(&store).await;
    environment(&store, "bank").await;
    store
        .create_stack(
            "bank",
            &CreateStack {
                name: name("api"),
                formula: None,
            },
            T,
        )
        .await
        .unwrap();
    let shop = row("shop", "app", "SECRET");
    let bank = row("bank", "app", "SECRET");
    let bank_other = row("bank", "app", "OTHER");
    let bank_api = row("bank", "api", "SECRET");
    set(&store, &shop, "shop-secret").await;
    set(&store, &bank, "bank-secret").await;
    set(&store, &bank_other, "bank-other").await;
    set(&store, &bank_api, "bank-api").await;

    // Another environment's ciphertext in bank's row: bank/app names the key and the reason.
    copy(&fixture, &shop, &bank).await;
    precondition(
        store.list_config("bank", "app").await,
        &format!(
            "config variable \"SECRET\" of environment \"bank\", stack \"app\" (stack) cannot be \
             opened: {MOVED}; set it again with `mesh config set SECRET=...` or remove it with \
             `mesh config unset SECRET`"
        ),
    );
    // The row it came from, and bank's other stack, read as before.
    assert_eq!(
        values(&store.list_config("shop", "app").await.unwrap()),
        [("stack".into(), "SECRET".into(), "shop-secret".into())]
    );
    assert_eq!(
        store.list_config("bank", "api").await.unwrap()[0].value,
        "bank-api"
    );
    // While the bad value is there, no change to the stack's config goes through (it would
    // answer with the stack's config, which cannot be read), and nothing is written.
    let other: BTreeMap<ConfigKey, String> =
        [(ConfigKey::parse("OTHER").unwrap(), "changed".into())].into();
    let e = store
        .change_config("bank", "app", &ConfigScope::default(), &other, &[], T)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::FailedPrecondition(m) if m.contains(MOVED)),
        "{e:?}"
    );
    // Setting the value again repairs it.
    set(&store, &bank, "bank-secret-2").await;
    assert_eq!(
        values(&store.list_config("bank", "app").await.unwrap()),
        [
            ("stack".into(), "OTHER".into(), "bank-other".into()),
            ("stack".into(), "SECRET".into(), "bank-secret-2".into()),
        ]
    );

    // Another key's ciphertext in the same stack and scope.
    copy(&fixture, &bank, &bank_other).await;
    let e = store.list_config("bank", "app").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::FailedPrecondition(m)
            if m.starts_with("config variable \"OTHER\" of environment \"bank\"")
                && m.contains(MOVED)),
        "{e:?}"
    );
    // Removing it repairs it too.
    store
        .change_config(
            "bank",
            "app",
            &ConfigScope::default(),
            &BTreeMap::new(),
            &[ConfigKey::parse("OTHER").unwrap()],
            T,
        )
        .await
        .unwrap();

    // The same key in another scope (stack-wide to a service, or to a region).
    let web = Row {
        service: Some("web"),
        ..row("shop", "app", "SECRET")
    };
    let eu = Row {
        region: Some("eu"),
        ..row("shop", "app", "SECRET")
    };
    set(&store, &web, "web-secret").await;
    set(&store, &eu, "eu-secret").await;
    copy(&fixture, &shop, &web).await;
    precondition(
        store.list_config("shop", "app").await,
        &format!(
            "config variable \"SECRET\" of environment \"shop\", stack \"app\" (service web) \
             cannot be opened: {MOVED}; set it again with `mesh svc config set web SECRET=...` \
             or remove it with `mesh svc config unset web SECRET`"
        ),
    );
    set(&store, &web, "web-secret").await;
    copy(&fixture, &web, &eu).await;
    let e = store.list_config("shop", "app").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::FailedPrecondition(m)
            if m.contains("(stack @region eu)") && m.contains("--region eu SECRET=...")),
        "{e:?}"
    );
    set(&store, &eu, "eu-secret").await;
    assert_eq!(store.list_config("shop", "app").await.unwrap().len(), 3);

    // A wrong master key is still told apart from a moved value.
    store.close().await;
    let wrong = fixture.open(other_key()).await.unwrap();
    let e = wrong.list_config("shop", "app").await.unwrap_err();
    assert!(matches!(e, StoreError::Crypto), "{e:?}");
    wrong.close().await;
}

/// A config value in format 1, as a mesh before schema version 2 sealed it.
fn seal_v1(value: &str, nonce: u8) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&[42; 32]));
    let nonce = [nonce; 24];
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: value.as_bytes(),
                aad: b"widemesh config value",
            },
        )
        .unwrap();
    let mut out = vec![1];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Writes `value` sealed in format 1 into `at`'s row.
async fn write_v1(fixture: &Fixture, at: &Row<'_>, value: &str, nonce: u8) {
    let mut conn = AnyConnection::connect(&fixture.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE config_vars SET value = $1 WHERE id = {}",
        at.id()
    )))
    .bind(seal_v1(value, nonce))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
}

/// The first byte of each config value, in row order.
async fn formats(fixture: &Fixture) -> Vec<u8> {
    let mut conn = AnyConnection::connect(&fixture.url).await.unwrap();
    let rows = sqlx::query("SELECT value FROM config_vars ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    rows.iter()
        .map(|r| sqlx::Row::try_get::<Vec<u8>, _>(r, "value").unwrap()[0])
        .collect()
}

async fn old_format_values_are_resealed_and_still_read(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    world(&store).await;
    let rows = [
        row("shop", "app", "A"),
        Row {
            service: Some("web"),
            ..row("shop", "app", "A")
        },
        Row {
            region: Some("eu"),
            ..row("shop", "app", "B")
        },
    ];
    for r in &rows {
        set(&store, r, "placeholder").await;
    }
    store.close().await;
    // The database as a mesh before version 2 left it: values in format 1, version 1 only.
    for (i, r) in rows.iter().enumerate() {
        write_v1(&fixture, r, &format!("old-{i}"), i as u8).await;
    }
    fixture
        .execute("DELETE FROM schema_migrations WHERE version = 2")
        .await;
    assert_eq!(formats(&fixture).await, [1, 1, 1]);

    // With the wrong master key the reseal refuses to start, names the value and changes
    // nothing.
    match fixture.open(other_key()).await {
        Err(StoreError::FailedPrecondition(m)) => {
            assert!(m.starts_with("cannot reseal config variable \"A\" of environment \"shop\", stack \"app\" (stack)"), "{m}");
            assert!(m.contains("does not open with this master key"), "{m}");
        }
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
    assert_eq!(formats(&fixture).await, [1, 1, 1]);
    // Versions 1, 3 (token scopes), 4 (server versions), 5 (logs), 6 (moves between racks)
    // 7 (server replacements) and 8 (Kubernetes racks) stay applied; 2 is the one missing.
    assert_eq!(fixture.migrations().await.len(), 7);

    let store = fixture.open(key()).await.unwrap();
    assert_eq!(formats(&fixture).await, [2, 2, 2]);
    assert_eq!(
        values(&store.list_config("shop", "app").await.unwrap()),
        [
            ("stack".into(), "A".into(), "old-0".into()),
            ("stack @region eu".into(), "B".into(), "old-2".into()),
            ("service web".into(), "A".into(), "old-1".into()),
        ]
    );
    let applied = fixture.migrations().await;
    assert_eq!(
        applied.iter().map(|m| m.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    // Resealed values are bound: moving one still fails.
    copy(&fixture, &rows[0], &rows[1]).await;
    let e = store.list_config("shop", "app").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::FailedPrecondition(m) if m.contains(MOVED)),
        "{e:?}"
    );
    set(&store, &rows[1], "new").await;
    store.close().await;

    // Reopening runs nothing again.
    let again = fixture.open(key()).await.unwrap();
    assert_eq!(fixture.migrations().await, applied);
    // A format-1 value written after the migration (by an older mesh still running, or
    // restored from an old backup) is refused: it does not name its owner.
    write_v1(&fixture, &rows[2], "replayed", 9).await;
    let e = again.list_config("shop", "app").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::FailedPrecondition(m)
            if m.contains("\"B\"") && m.contains("sealed in the old format that does not name its owner")),
        "{e:?}"
    );
    again.close().await;
}
