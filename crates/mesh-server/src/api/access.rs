//! Tokens, the caller's identity and the audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{CreateToken, CreatedToken, Event, Role, Token, WhoAmI};
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
    let secret = tokens::generate();
    let token = state
        .store()
        .create_token(req.name.as_str(), Role::Admin, None, &tokens::hash(&secret))
        .await?;
    audit(&state, &caller, "token.create", req.name.as_str(), "").await;
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
    if target.role == Role::Admin && all.iter().filter(|t| t.role == Role::Admin).count() == 1 {
        return Err(ApiError::precondition(format!(
            "token {name:?} is the last admin token; create another with `mesh token create` first"
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
