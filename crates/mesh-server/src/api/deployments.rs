//! Deployments: start one from an upload, roll back to an earlier one, read or follow the log.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use mesh_types::Version;
use mesh_types::api::{
    CreateDeployment, Deployment, DeploymentStatus, NewDeployment, RollbackRequest, UpdateStack,
};
use serde::Deserialize;

use super::{Created, JsonBody, QueryArgs, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::deploy::{self, Job, Source};
use crate::error::{ApiError, ApiResult};

/// How often a followed log looks for more.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn version(v: &str) -> ApiResult<Version> {
    Version::parse(v).map_err(ApiError::from)
}

pub async fn list(
    State(state): State<AppState>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Deployment>>> {
    state.store().get_stack(&env, &stack).await?;
    Ok(Json(state.store().list_deployments(&env, &stack).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path((env, stack, v)): Path<(String, String, String)>,
) -> ApiResult<Json<Deployment>> {
    Ok(Json(
        state
            .store()
            .get_deployment(&env, &stack, version(&v)?)
            .await?,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: bool,
}

/// The deployment's log as text; with `follow`, streamed until the deployment ends.
pub async fn log(
    State(state): State<AppState>,
    Path((env, stack, v)): Path<(String, String, String)>,
    QueryArgs(q): QueryArgs<LogQuery>,
) -> ApiResult<Response> {
    let v = version(&v)?;
    let text = state.store().deployment_log(&env, &stack, v).await?;
    let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !q.follow {
        return Ok((plain, text).into_response());
    }
    let body = stream::unfold(Some((0usize, false)), move |st| {
        let state = state.clone();
        let (env, stack) = (env.clone(), stack.clone());
        async move {
            let (sent, ended) = st?;
            if ended {
                return None;
            }
            loop {
                // Read the status first: a log read after it holds every line of an ended one.
                let finished = match state.store().get_deployment(&env, &stack, v).await {
                    Ok(d) => d.status.is_finished(),
                    Err(_) => true,
                };
                let text = state
                    .store()
                    .deployment_log(&env, &stack, v)
                    .await
                    .unwrap_or_default();
                if text.len() > sent || finished {
                    let chunk = text.get(sent..).unwrap_or_default().to_string();
                    return Some((
                        Ok::<_, std::io::Error>(chunk),
                        Some((text.len().max(sent), finished)),
                    ));
                }
                tokio::select! {
                    _ = state.shutting_down() => return None,
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                }
            }
        }
    });
    Ok((plain, Body::from_stream(body)).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<CreateDeployment>,
) -> ApiResult<Created<Deployment>> {
    let current = state.store().get_stack(&env, &stack).await?;
    let opts = state
        .deploys()
        .options()
        .cloned()
        .ok_or_else(|| ApiError::not_available("this control plane keeps no uploads"))?;
    let (source, digest, description) = match (&req.source, &req.image_archive) {
        (Some(d), None) => {
            if opts.builder.is_none() {
                return Err(ApiError::not_available(
                    "this control plane cannot build sources (it runs with --builder none, or without the root and runc that builds need); deploy a prebuilt image with `mesh deploy --image ARCHIVE`",
                ));
            }
            let formula = req.formula.unwrap_or(current.formula);
            (
                Source::Build {
                    digest: d.clone(),
                    formula,
                },
                d.clone(),
                "build",
            )
        }
        (None, Some(d)) => (
            Source::Import { digest: d.clone() },
            d.clone(),
            "image import",
        ),
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of source (an uploaded source archive) and image_archive (an uploaded image archive)",
            ));
        }
    };
    if !opts.blobs.contains(&digest) {
        return Err(ApiError::precondition(format!(
            "{digest} is not uploaded: upload it first with PUT /v1/sources/{digest}"
        )));
    }
    let claim = deploy::claim(&state, &env, &stack).await?;
    let formula = match &source {
        Source::Build { formula, .. } => *formula,
        _ => current.formula,
    };
    if formula != current.formula {
        let update = UpdateStack {
            formula: Some(formula),
            ..UpdateStack::default()
        };
        state
            .store()
            .update_stack(&env, &stack, &update, state.now())
            .await?;
    }
    let new = NewDeployment {
        formula,
        source_digest: Some(digest.clone()),
        created_by: caller.name.clone(),
        description: description.into(),
        image: None,
        processes: Default::default(),
        release_command: None,
    };
    let d = state
        .store()
        .create_deployment(&env, &stack, &new, state.now())
        .await?;
    audit(
        &state,
        &caller,
        "deployment.create",
        &format!("{env}/{stack}/{}", d.version),
        &format!("{description} of {digest}"),
    )
    .await;
    let job = Job {
        env: env.clone(),
        stack: stack.clone(),
        version: d.version,
        source,
        release: true,
        previous: current.current_deployment,
    };
    deploy::start(state.clone(), job, claim);
    Ok(created(d))
}

pub async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<RollbackRequest>,
) -> ApiResult<Created<Deployment>> {
    let current = state.store().get_stack(&env, &stack).await?;
    let deployments = state.store().list_deployments(&env, &stack).await?;
    let target = match req.version {
        Some(v) => deployments
            .iter()
            .find(|d| d.version == v)
            .ok_or_else(|| ApiError::not_found(format!("deployment {v} of stack {stack:?}")))?,
        None => {
            let now = current.current_deployment.ok_or_else(|| {
                ApiError::precondition(format!(
                    "stack {stack} runs no deployment to roll back from"
                ))
            })?;
            deployments
                .iter()
                .filter(|d| d.version < now && d.status == DeploymentStatus::Succeeded)
                .filter(|d| d.image.is_some())
                .max_by_key(|d| d.version)
                .ok_or_else(|| {
                    ApiError::precondition(format!(
                        "stack {stack} has no earlier successful deployment than {now} to roll back to"
                    ))
                })?
        }
    };
    let image = target.image.clone().ok_or_else(|| {
        ApiError::precondition(format!(
            "deployment {} never produced an image (it {}); pick one that did (`mesh deployments list`)",
            target.version,
            target.status.as_str()
        ))
    })?;
    let claim = deploy::claim(&state, &env, &stack).await?;
    let new = NewDeployment {
        formula: target.formula,
        source_digest: target.source_digest.clone(),
        created_by: caller.name.clone(),
        description: format!("rollback to {}", target.version),
        image: Some(image),
        processes: target.processes.clone(),
        release_command: target.release_command.clone(),
    };
    let d = state
        .store()
        .create_deployment(&env, &stack, &new, state.now())
        .await?;
    audit(
        &state,
        &caller,
        "deployment.rollback",
        &format!("{env}/{stack}/{}", d.version),
        &new.description,
    )
    .await;
    let job = Job {
        env,
        stack,
        version: d.version,
        source: Source::Reuse,
        release: false,
        previous: current.current_deployment,
    };
    deploy::start(state.clone(), job, claim);
    Ok(created(d))
}
