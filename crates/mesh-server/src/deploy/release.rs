//! The release command: a one-off instance of the new image with the stack's config, run once
//! per deployment however many racks the environment is on: on its first healthy rack (the
//! first in its list whose server is not lost, `domain::placement::first_healthy`), with that
//! rack's config, its output copied into the deployment's log. A non-zero exit fails the
//! deployment before anything is rolled out.

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_types::agent::Task;
use mesh_types::api::DEFAULT_PORT;
use mesh_types::config::resolve;
use mesh_types::desired::{BuiltImage, ImageRef};
use tokio::sync::broadcast::error::RecvError;

use mesh_store::StoreError;
use mesh_types::NameError;
use mesh_types::agent::TaskResult;

use super::log::DeployLog;
use crate::app::AppState;
use crate::domain::placement::{PlaceError, place};
use crate::tasks::{TaskError, new_id};

/// Longest a release command may run.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Why the release command failed, in the words the deployment's message gives.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Stack(#[from] NameError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("the agent went away before the release command ended")]
    AgentGone,
    #[error("it ran longer than {minutes} minutes")]
    TimedOut { minutes: u64 },
    /// The agent could not run it, in its own words.
    #[error("{0}")]
    NotRun(String),
    #[error("`{command}` exited with code {code}")]
    Exited { command: String, code: i32 },
    #[error("`{command}` ended without an exit code")]
    NoExitCode { command: String },
}

/// Runs the release command once, on the environment's first healthy rack.
pub async fn run(
    state: &AppState,
    env: &str,
    stack: &str,
    image: &BuiltImage,
    command: &str,
    log: &DeployLog,
) -> Result<(), ReleaseError> {
    let store = state.store();
    let environment = store.get_environment(env).await?;
    let (rack, server) = place(store, &environment.racks, None, state.liveness()).await?;
    let config = store.list_config(env, stack).await?;
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
        stack: stack.parse()?,
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
                break r.map_err(|_| ReleaseError::AgentGone);
            }
            _ = &mut deadline => {
                state.tasks().forget(&id);
                return Err(ReleaseError::TimedOut { minutes: RELEASE_TIMEOUT.as_secs() / 60 });
            }
        }
    };
    state.tasks().forget(&id);
    outcome(command, result?)
}

/// Whether the release command's run, as its agent reported it, lets the deployment go on.
fn outcome(command: &str, result: TaskResult) -> Result<(), ReleaseError> {
    let command = command.to_string();
    match (result.exit_code, result.error) {
        (_, Some(e)) => Err(ReleaseError::NotRun(e)),
        (Some(0), None) => Ok(()),
        (Some(code), None) => Err(ReleaseError::Exited { command, code }),
        (None, None) => Err(ReleaseError::NoExitCode { command }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(exit_code: Option<i32>, error: Option<&str>) -> TaskResult {
        TaskResult {
            exit_code,
            error: error.map(String::from),
            ..TaskResult::default()
        }
    }

    #[test]
    fn only_a_clean_exit_lets_the_deployment_go_on() {
        assert!(outcome("migrate", ended(Some(0), None)).is_ok());
        let said = |r: Result<(), ReleaseError>| r.unwrap_err().to_string();
        assert_eq!(
            said(outcome("migrate", ended(Some(3), None))),
            "`migrate` exited with code 3"
        );
        assert_eq!(
            said(outcome("migrate", ended(None, None))),
            "`migrate` ended without an exit code"
        );
        assert_eq!(
            said(outcome("migrate", ended(Some(0), Some("image not found")))),
            "image not found"
        );
    }

    #[test]
    fn a_release_that_runs_too_long_says_for_how_long() {
        let e = ReleaseError::TimedOut {
            minutes: RELEASE_TIMEOUT.as_secs() / 60,
        };
        assert_eq!(e.to_string(), "it ran longer than 30 minutes");
    }
}
