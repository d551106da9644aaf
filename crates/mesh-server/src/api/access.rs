//! Tokens, the caller's identity and the audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{
    CreateToken, CreatedToken, Event, MAX_TOKEN_LIFETIME_SECS, Role, Token, WhoAmI,
};
use serde::Deserialize;

use super::{Created, JsonBody, QueryArgs, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::tokens;

pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        token: caller.name,
        role: caller.role,
        environments: caller.environments,
        expires_at: caller.expires_at,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

pub async fn list_tokens(State(state): State<AppState>) -> ApiResult<Json<Vec<Token>>> {
    Ok(Json(state.store().list_tokens().await?))
}

pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<CreateToken>,
) -> ApiResult<Created<CreatedToken>> {
    let role = req.role.ok_or_else(|| {
        ApiError::invalid(
            "say which role the token has: \"role\": \"developer\" or \"viewer\" (with the \
             environments it reaches), or \"admin\" (everything)",
        )
    })?;
    match role {
        Role::Admin if !req.environments.is_empty() => {
            return Err(ApiError::invalid(
                "an admin token reaches every environment; name no environments, or make a \
                 developer or viewer token",
            ));
        }
        Role::Developer | Role::Viewer if req.environments.is_empty() => {
            return Err(ApiError::invalid(format!(
                "a {role} token needs at least one environment it reaches (\"environments\", \
                 `--env NAME`)"
            )));
        }
        Role::Agent => {
            return Err(ApiError::invalid(
                "agent tokens are made with their rack (`mesh rack create`); use admin, \
                 developer or viewer",
            ));
        }
        _ => {}
    }
    let expires_at = match req.expires_in_secs {
        None => None,
        Some(s) if (1..=MAX_TOKEN_LIFETIME_SECS).contains(&s) => {
            Some(state.now() + i64::try_from(s * 1000).unwrap_or(i64::MAX))
        }
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "expires_in_secs {s} is out of range: use 1 to {MAX_TOKEN_LIFETIME_SECS} \
                 (ten years), or leave it out for a token that does not expire"
            )));
        }
    };
    let secret = tokens::generate();
    let token = state
        .store()
        .create_scoped_token(
            req.name.as_str(),
            role,
            &req.environments,
            expires_at,
            &tokens::hash(&secret),
        )
        .await?;
    let detail = serde_json::json!({
        "role": role,
        "environments": token.environments,
        "expires_at": expires_at,
    })
    .to_string();
    audit(&state, &caller, "token.create", req.name.as_str(), &detail).await;
    Ok(created(CreatedToken { token, secret }))
}

pub async fn delete_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let all = state.store().list_tokens().await?;
    let target = all
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ApiError::not_found(format!("token {name:?}")))?;
    // An expired admin token cannot stand in for the last working one.
    let now = state.now();
    let working_admins = all
        .iter()
        .filter(|t| t.role == Role::Admin && t.expires_at.is_none_or(|at| at > now))
        .count();
    let target_works = target.expires_at.is_none_or(|at| at > now);
    if target.role == Role::Admin && target_works && working_admins == 1 {
        return Err(ApiError::precondition(format!(
            "token {name:?} is the last admin token that works; create another with `mesh token \
             create NAME --role admin` first"
        )));
    }
    state.store().delete_token(&name).await?;
    state.tokens().evict_name(&name);
    audit(&state, &caller, "token.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn list_events(
    State(state): State<AppState>,
    QueryArgs(q): QueryArgs<EventsQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.store().list_events(limit).await?))
}
