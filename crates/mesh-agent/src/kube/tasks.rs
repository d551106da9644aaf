//! One-off work on a Kubernetes rack: `mesh run` and release commands as pods run once to their
//! end (their output ships like any pod's), `mesh exec` through the pods' exec API.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use mesh_types::agent::{Task, TaskResult};
use tokio::io::AsyncReadExt;

use super::agent::KubeAgent;
use super::objects::{self, OneOff};
use mesh_kube::names;

/// Time for the last output of a run to be shipped before its end is reported.
const FLUSH: Duration = Duration::from_millis(2_500);
/// How long a finished run's pod is kept (its output stays readable meanwhile).
const KEEP: Duration = Duration::from_secs(30);
/// The longest a one-off run may take.
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
/// How often a run's pod is looked at while it runs.
const POLL: Duration = Duration::from_millis(250);

fn failed(error: String) -> TaskResult {
    TaskResult {
        error: Some(error),
        ..TaskResult::default()
    }
}

impl KubeAgent {
    /// Does `task` if it is for this server, and reports how it ended.
    pub(crate) async fn handle_task(self: Arc<Self>, task: Task) {
        if task.server() != &self.opts.server_name {
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
                let o = OneOff {
                    rack: self.rack.to_string(),
                    environment,
                    stack,
                    instance,
                    image,
                    command,
                    env,
                    limits,
                };
                self.run_once(&o).await
            }
            Task::Exec {
                environment,
                instance,
                command,
                ..
            } => self.exec(environment.as_str(), &instance, command).await,
        };
        if let Err(e) = self.gateway.task_result(&id, &result).await {
            tracing::warn!(task = %id, error = %e, "cannot report a task's result");
        }
    }

    async fn run_once(self: &Arc<Self>, o: &OneOff) -> TaskResult {
        let ctx = match self.context() {
            Ok(c) => c,
            Err(e) => return failed(e.to_string()),
        };
        let ns = names::namespace(o.environment.as_str());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api
            .create(&PostParams::default(), &objects::oneoff_pod(o, &ctx))
            .await
        {
            return failed(mesh_kube::KubeError::api("starting the run's pod", e).to_string());
        }
        let ended = tokio::time::timeout(MAX_RUN, async {
            loop {
                match api.get_opt(&o.instance).await {
                    Ok(Some(pod)) => {
                        if let Some(r) = ended(&pod) {
                            return r;
                        }
                    }
                    Ok(None) => return failed("the run's pod was deleted before it ended".into()),
                    Err(e) => tracing::debug!(error = %e, "cannot read the run's pod yet"),
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await
        .unwrap_or_else(|_| failed("the run took longer than a day and was stopped".into()));
        tokio::time::sleep(FLUSH).await;
        let name = o.instance.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP).await;
            let _ = api.delete(&name, &DeleteParams::background()).await;
        });
        ended
    }

    async fn exec(&self, environment: &str, pod: &str, command: Vec<String>) -> TaskResult {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &names::namespace(environment));
        let params = AttachParams::default()
            .container(names::CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut attached = match api.exec(pod, command, &params).await {
            Ok(a) => a,
            Err(e) => {
                return failed(mesh_kube::KubeError::api(&format!("exec in {pod}"), e).to_string());
            }
        };
        let (mut out, mut err) = (String::new(), String::new());
        let status = attached.take_status();
        let (mut so, mut se) = (attached.stdout(), attached.stderr());
        let read_out = async {
            if let Some(s) = so.as_mut() {
                let _ = s.read_to_string(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = se.as_mut() {
                let _ = s.read_to_string(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let _ = attached.join().await;
        TaskResult {
            exit_code: status.as_ref().map(exit_code),
            stdout: out,
            stderr: err,
            error: None,
        }
    }
}

/// The exit code a finished exec's status carries: 0 on success, else its `ExitCode` cause.
fn exit_code(s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if s.status.as_deref() == Some("Success") {
        return 0;
    }
    s.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_ref()?.parse().ok())
        .unwrap_or(1)
}

/// How a run's pod ended, once it did.
fn ended(pod: &Pod) -> Option<TaskResult> {
    let status = pod.status.as_ref()?;
    let terminated = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.name == names::CONTAINER))
        .and_then(|c| c.state.as_ref()?.terminated.clone());
    if let Some(t) = terminated {
        return Some(TaskResult {
            exit_code: Some(t.exit_code),
            error: (t.reason.as_deref() == Some("OOMKilled"))
                .then(|| "killed for using more memory than its size allows".to_string()),
            ..TaskResult::default()
        });
    }
    // Never started: an image that cannot be pulled, a command that cannot run.
    let waiting = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.name == names::CONTAINER))
        .and_then(|c| c.state.as_ref()?.waiting.clone());
    match waiting {
        Some(w)
            if matches!(
                w.reason.as_deref(),
                Some(
                    "ErrImagePull"
                        | "ImagePullBackOff"
                        | "InvalidImageName"
                        | "CreateContainerError"
                        | "RunContainerError"
                )
            ) =>
        {
            Some(failed(format!(
                "the run could not start: {}{}",
                w.reason.unwrap_or_default(),
                w.message.map(|m| format!(": {m}")).unwrap_or_default()
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

    #[test]
    fn an_execs_exit_code_comes_from_its_status() {
        let ok = Status {
            status: Some("Success".into()),
            ..Default::default()
        };
        assert_eq!(exit_code(&ok), 0);
        let three = Status {
            status: Some("Failure".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    field: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(exit_code(&three), 3);
    }
}
