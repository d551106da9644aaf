//! One-off work the control plane hands this agent: `mesh run` (an instance of a stack's image
//! run to its end; its output goes out like any instance's) and `mesh exec` (a command inside a
//! running instance).

use std::sync::Arc;
use std::time::Duration;

use mesh_types::Name;
use mesh_types::agent::{Task, TaskResult};
use mesh_types::api::{HealthCheck, ServiceKind};

use crate::agent::Agent;
use crate::plan::Wanted;

/// Time for the last output of a run to be shipped before its end is reported.
const FLUSH: Duration = Duration::from_millis(1_500);
/// How long a finished run's instance is kept (its output stays readable meanwhile).
const KEEP: Duration = Duration::from_secs(30);
/// The longest a one-off run may take.
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);

impl Agent {
    /// Does `task` if it is for this server, and reports how it ended.
    pub(crate) async fn handle_task(self: Arc<Self>, task: Task) {
        if task.server() != self.server_name() {
            return;
        }
        let id = task.id().to_string();
        let result = match task {
            Task::Run {
                environment,
                stack,
                instance,
                image,
                command,
                env,
                limits,
                ..
            } => {
                let w = Wanted {
                    id: instance.clone(),
                    environment,
                    stack: stack.clone(),
                    service: Name::parse("run").unwrap_or_else(|_| stack.clone()),
                    deployment: None,
                    generation: "oneoff".into(),
                    kind: ServiceKind::Worker,
                    hostname: format!(
                        "{}-run",
                        stack
                            .as_str()
                            .chars()
                            .take(40)
                            .collect::<String>()
                            .trim_end_matches('-')
                    ),
                    image,
                    command: Some(command),
                    env,
                    limits,
                    port: 0,
                    health: HealthCheck::default(),
                };
                self.run_once(&w).await
            }
            Task::Exec {
                instance, command, ..
            } => match self.runtime().exec(&instance, &command).await {
                Ok(out) => TaskResult {
                    exit_code: Some(out.code),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    error: None,
                },
                Err(e) => TaskResult {
                    error: Some(e.to_string()),
                    ..TaskResult::default()
                },
            },
        };
        if let Err(e) = self.gateway().task_result(&id, &result).await {
            tracing::warn!(task = %id, error = %e, "cannot report a task's result");
        }
    }

    async fn run_once(self: &Arc<Self>, w: &Wanted) -> TaskResult {
        let _pin = self.pin_network(w.environment.as_str());
        if let Err(e) = self.prepare_network(w.environment.as_str()).await {
            return TaskResult {
                error: Some(format!("cannot set up the network: {e}")),
                ..TaskResult::default()
            };
        }
        if let Err(e) = self.start_instance(w, true).await {
            return TaskResult {
                error: Some(e),
                ..TaskResult::default()
            };
        }
        let ended = tokio::time::timeout(MAX_RUN, self.runtime().wait(&w.id)).await;
        tokio::time::sleep(FLUSH).await;
        let result = match ended {
            Ok(Ok(exit)) => TaskResult {
                exit_code: exit.code,
                error: exit
                    .oom_killed
                    .then(|| "killed for using more memory than its size allows".to_string()),
                ..TaskResult::default()
            },
            Ok(Err(e)) => TaskResult {
                error: Some(e.to_string()),
                ..TaskResult::default()
            },
            Err(_) => TaskResult {
                error: Some("the run took longer than a day and was stopped".into()),
                ..TaskResult::default()
            },
        };
        let agent = self.clone();
        let id = w.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP).await;
            agent.remove_instance(&id).await;
        });
        result
    }
}
