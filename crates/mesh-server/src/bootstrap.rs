//! First start: the `local` provider and rack (for `mesh up`) and the first admin token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use mesh_store::{Store, StoreError};
use mesh_types::Name;
use mesh_types::api::{CreateProvider, CreateRack, ProviderKind, Role};

use crate::clock::Clock;
use crate::domain::racks::{join_token_name, rack_from_request};
use crate::{ServerOptions, StartError, tokens};

/// The file in the data directory that holds the admin token made at first start.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The file in the data directory that holds the local rack's join token.
pub const LOCAL_JOIN_TOKEN_FILE: &str = "local-join-token";

fn name(s: &str) -> Name {
    // Constant names, valid by construction.
    Name::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Makes a fresh platform usable; a no-op on later starts. Returns the admin token kept in the
/// data directory, if any.
pub async fn bootstrap(
    store: &dyn Store,
    clock: &dyn Clock,
    opts: &ServerOptions,
) -> Result<Option<String>, StartError> {
    let now = clock.now_ms();
    let dir = &opts.data_dir;
    if opts.local_rack {
        let local = name("local");
        match store.get_provider("local").await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                let p = CreateProvider {
                    name: local.clone(),
                    kind: ProviderKind::Local,
                    secrets: Default::default(),
                };
                store.create_provider(&p, now).await?;
            }
            Err(e) => return Err(e.into()),
        }
        match store.get_rack("local").await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
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
                let rack = rack_from_request(&req, ProviderKind::Local, false, now)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                store.create_rack(&rack).await?;
                // The file first: a crash between the two leaves a token file without a token,
                // which the next start replaces, never a token nobody can read.
                let secret = tokens::generate();
                write_secret(&dir.join(LOCAL_JOIN_TOKEN_FILE), &secret)?;
                store
                    .create_token(
                        &join_token_name("local"),
                        Role::Agent,
                        Some(&local),
                        &tokens::hash(&secret),
                    )
                    .await?;
                store
                    .record_event(
                        "bootstrap",
                        "rack.create",
                        "local",
                        "provider local region local",
                        now,
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let admin_file = dir.join(ADMIN_TOKEN_FILE);
    let has_admin = store
        .list_tokens()
        .await?
        .iter()
        .any(|t| t.role == Role::Admin);
    if !has_admin {
        let secret = tokens::generate();
        write_secret(&admin_file, &secret)?;
        store
            .create_token("admin", Role::Admin, None, &tokens::hash(&secret))
            .await?;
        store
            .record_event(
                "bootstrap",
                "token.create",
                "admin",
                "first admin token",
                now,
            )
            .await?;
        return Ok(Some(secret));
    }
    Ok(std::fs::read_to_string(&admin_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Writes a secret readable by its owner only, atomically.
fn write_secret(path: &Path, secret: &str) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(secret.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}
