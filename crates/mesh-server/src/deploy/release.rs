//! The release command: a one-off instance of the new image with the stack's config, on the
//! environment's first rack, its output copied into the deployment's log. A non-zero exit fails
//! the deployment before anything is rolled out.

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_types::agent::Task;
use mesh_types::api::DEFAULT_PORT;
use mesh_types::config::resolve;
use mesh_types::desired::{BuiltImage, ImageRef};
use tokio::sync::broadcast::error::RecvError;

use super::log::DeployLog;
use crate::app::AppState;
use crate::domain::placement::place;
use crate::tasks::new_id;

/// Longest a release command may run.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub async fn run(
    state: &AppState,
    env: &str,
    stack: &str,
    image: &BuiltImage,
    command: &str,
    log: &DeployLog,
) -> Result<(), String> {
    let store = state.store();
    let environment = store
        .get_environment(env)
        .await
        .map_err(|e| e.to_string())?;
    let (rack, server) = place(store, &environment.racks)
        .await
        .map_err(|e| e.to_string())?;
    let config = store
        .list_config(env, stack)
        .await
        .map_err(|e| e.to_string())?;
    let mut vars: BTreeMap<String, String> =
        resolve(&config, "", rack.name.as_str(), rack.region.as_str())
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect();
    vars.insert("PORT".into(), DEFAULT_PORT.to_string());
    let id = new_id();
    let instance = mesh_types::agent::oneoff_instance_id(stack, "release", &id);
    let task = Task::Run {
        id: id.clone(),
        server,
        environment: environment.name.clone(),
        stack: stack.parse().map_err(|e| format!("{e}"))?,
        instance: instance.clone(),
        image: ImageRef::Built(image.clone()),
        command: command.to_string(),
        env: vars,
        limits: mesh_types::InstanceSize::default().limits(),
    };
    let mut lines = state.logs().follow(env);
    let mut done = state.tasks().send(rack.name.as_str(), task)?;
    let deadline = tokio::time::sleep(RELEASE_TIMEOUT);
    tokio::pin!(deadline);
    let result = loop {
        tokio::select! {
            biased;
            l = lines.recv() => match l {
                Ok(l) if l.instance == instance => log.line(format!("       {}", l.text)),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
            r = &mut done => {
                while let Ok(l) = lines.try_recv() {
                    if l.instance == instance {
                        log.line(format!("       {}", l.text));
                    }
                }
                break r.map_err(|_| "the agent went away before the release command ended".to_string());
            }
            _ = &mut deadline => {
                state.tasks().forget(&id);
                return Err(format!("it ran longer than {} minutes", RELEASE_TIMEOUT.as_secs() / 60));
            }
        }
    };
    state.tasks().forget(&id);
    let result = result?;
    match (result.exit_code, result.error) {
        (_, Some(e)) => Err(e),
        (Some(0), None) => Ok(()),
        (Some(code), None) => Err(format!("`{command}` exited with code {code}")),
        (None, None) => Err(format!("`{command}` ended without an exit code")),
    }
}
