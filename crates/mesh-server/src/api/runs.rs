//! `mesh run` (a one-off instance of a stack) and `mesh exec` (a command in a running instance).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use futures_util::stream;
use mesh_types::ErrorCode;
use mesh_types::agent::{Task, TaskResult};
use mesh_types::api::{DEFAULT_PORT, ExecRequest, Instance, RunEvent, RunRequest, check_command};
use mesh_types::config::resolve;
use tokio::sync::broadcast::error::RecvError;

use super::{JsonBody, audit};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::placement::place;
use crate::error::{ApiError, ApiResult};
use crate::ndjson;
use crate::tasks::new_id;

/// How long `exec` waits for the agent's answer.
const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

fn unavailable(message: String) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, message)
}

/// The program a command runs, for the audit log: its first word only, as the rest may hold
/// secrets typed on a command line.
fn program(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or_default()
}

pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<RunRequest>,
) -> ApiResult<Response> {
    check_command("command", &req.command).map_err(ApiError::invalid)?;
    let environment = state.store().get_environment(&env).await?;
    let stack = state.store().get_stack(&env, &stack).await?;
    let image = crate::deploy::stack_image(state.store(), &stack)
        .await?
        .ok_or_else(|| {
            ApiError::precondition(format!(
                "stack {} has no image to run yet: deploy it with `mesh deploy` (or give it a built-in one with `mesh stack set-image`)",
                stack.name
            ))
        })?;
    let port = match &req.service {
        Some(svc) => {
            state
                .store()
                .get_service(&env, stack.name.as_str(), svc.as_str())
                .await?
                .port
        }
        None => DEFAULT_PORT,
    };
    let (rack, server) = place(
        state.store(),
        &environment.racks,
        req.rack.as_ref(),
        state.liveness(),
    )
    .await?;
    let config = state.store().list_config(&env, stack.name.as_str()).await?;
    let service = req
        .service
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut vars: std::collections::BTreeMap<String, String> =
        resolve(&config, &service, rack.name.as_str(), rack.region.as_str())
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect();
    vars.insert("PORT".into(), port.to_string());
    let id = new_id();
    let instance = mesh_types::agent::oneoff_instance_id(stack.name.as_str(), "run", &id);
    let detail = serde_json::json!({"instance": instance, "program": program(&req.command)});
    let task = Task::Run {
        id: id.clone(),
        server,
        environment: environment.name.clone(),
        stack: stack.name.clone(),
        instance: instance.clone(),
        image,
        command: req.command,
        env: vars,
        limits: req.size.unwrap_or_default().limits(),
    };
    // Follow the environment's output before the run starts, so no line is missed.
    let logs = state.logs().follow(environment.name.as_str());
    let done = state.tasks().send(rack.name.as_str(), task)?;
    let target = format!("{env}/{}", stack.name);
    audit(&state, &caller, "run.start", &target, &detail.to_string()).await;
    let started = stream::iter([ndjson::line(&RunEvent::Started {
        instance: instance.clone(),
    })]);
    let follow = stream::unfold(
        Some((
            logs,
            done,
            instance,
            state.clone(),
            id,
            std::collections::VecDeque::new(),
        )),
        |st| async move {
            let (mut logs, mut done, instance, state, id, mut pending) = st?;
            loop {
                if let Some(event) = pending.pop_front() {
                    let last = matches!(event, RunEvent::Exit { .. });
                    let next = (!last).then_some((logs, done, instance, state, id, pending));
                    return Some((ndjson::line(&event), next));
                }
                tokio::select! {
                    // Output first: a line already here must not lose the race to the exit.
                    biased;
                    _ = state.shutting_down() => return None,
                    l = logs.recv() => match l {
                        Ok(l) if l.instance == instance => pending.push_back(RunEvent::Output { line: l }),
                        Ok(_) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => continue,
                    },
                    result = &mut done => {
                        // The agent reports the end after the last output was shipped: take what
                        // is buffered, then the exit.
                        while let Ok(l) = logs.try_recv() {
                            if l.instance == instance {
                                pending.push_back(RunEvent::Output { line: l });
                            }
                        }
                        pending.push_back(match result {
                            Ok(r) => RunEvent::Exit { code: r.exit_code, error: r.error },
                            Err(_) => RunEvent::Exit { code: None, error: Some("the agent went away before the run ended".into()) },
                        });
                        state.tasks().forget(&id);
                    }
                }
            }
        },
    );
    use futures_util::StreamExt;
    let body = Body::from_stream(started.chain(follow));
    Ok(ndjson::response(body))
}

pub async fn exec(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, instance)): Path<(String, String)>,
    JsonBody(req): JsonBody<ExecRequest>,
) -> ApiResult<Json<TaskResult>> {
    if req.command.is_empty() || req.command.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::invalid(
            "give the command to run, such as `-- ls -l /`",
        ));
    }
    let environment = state.store().get_environment(&env).await?;
    let instances: Vec<Instance> = state.store().list_instances(&env).await?;
    let found = instances
        .into_iter()
        .find(|i| i.id == instance)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "instance {instance:?} in environment {env:?} (list them with `mesh instances`)"
            ))
        })?;
    let server = found
        .server
        .ok_or_else(|| unavailable(format!("instance {instance} has no server")))?;
    let mut rack = None;
    for r in &environment.racks {
        if state
            .store()
            .list_servers(r.as_str())
            .await?
            .iter()
            .any(|s| s.name == server)
        {
            rack = Some(r.clone());
        }
    }
    let rack = rack.ok_or_else(|| {
        unavailable(format!(
            "server {server} of instance {instance} is not in the environment's racks"
        ))
    })?;
    let detail = serde_json::json!({"program": req.command.first().map(|c| program(c))});
    let target = format!("{env}/{instance}");
    let id = new_id();
    let task = Task::Exec {
        id: id.clone(),
        server,
        environment: environment.name,
        instance,
        command: req.command,
    };
    let done = state.tasks().send(rack.as_str(), task)?;
    audit(
        &state,
        &caller,
        "instance.exec",
        &target,
        &detail.to_string(),
    )
    .await;
    match tokio::time::timeout(EXEC_TIMEOUT, done).await {
        Ok(Ok(result)) => Ok(Json(result)),
        Ok(Err(_)) => Err(unavailable(
            "the agent went away before the command ended".into(),
        )),
        Err(_) => {
            state.tasks().forget(&id);
            Err(unavailable(format!(
                "the command did not end within {} s",
                EXEC_TIMEOUT.as_secs()
            )))
        }
    }
}
