//! Bearer-token authentication of every API request but `/healthz`.
//!
//! Tokens are looked up by their SHA-256 hash. A short-lived cache keeps the hot path off the
//! store; deleting a token evicts it here at once, and other control planes sharing the database
//! forget it within [`CACHE_TTL_MS`].

pub mod policy;

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mesh_types::api::Role;
use mesh_types::{ErrorCode, Name, UnixMs};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::ApiError;
use crate::tokens;

/// How long a verified token is trusted without asking the store again.
pub const CACHE_TTL_MS: UnixMs = 2_000;
/// How often the last use of a token is written back.
const TOUCH_EVERY_MS: UnixMs = 60_000;
/// Entries above this are dropped wholesale: only a flood of distinct valid tokens gets there.
const CACHE_MAX: usize = 10_000;

/// Who is calling, put in the request's extensions by the middleware.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub rack: Option<Name>,
    /// The environments a developer or viewer token reaches.
    pub environments: Vec<Name>,
    pub expires_at: Option<UnixMs>,
}

impl Caller {
    /// Whether this caller may see environment `env` at all.
    pub fn reaches(&self, env: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Developer | Role::Viewer => self.environments.iter().any(|e| e.as_str() == env),
            Role::Agent => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    caller: Caller,
    verified_at: UnixMs,
    touched_at: UnixMs,
}

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, Cached>>,
}

impl TokenCache {
    fn get(&self, hash: &str, now: UnixMs) -> Option<Cached> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash)
            .filter(|c| now - c.verified_at < CACHE_TTL_MS)
            .cloned()
    }

    fn put(&self, hash: String, entry: Cached) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(hash, entry);
    }

    /// Forgets a token at once (it was deleted).
    pub fn evict_name(&self, name: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| c.caller.name != name);
    }
}

fn unauthenticated(message: &str) -> Response {
    ApiError::new(ErrorCode::Unauthenticated, message).into_response()
}

/// The token a request carries: `Authorization: Bearer <token>`, or under the registry API
/// (`/v2`, where container runtimes send Basic credentials) the password of
/// `Authorization: Basic`, whatever the user name.
fn bearer(req: &Request) -> Option<String> {
    if let Some(token) = bearer_header(req.headers()) {
        return Some(token);
    }
    let value = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic")
        && crate::agent::registry::is_registry_path(req.uri().path())
    {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        let (_, password) = pair.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer_header(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Applies the route's [`policy`] to the caller. Requests that matched no route go on to the
/// 404/405 fallbacks, which reveal nothing.
fn authorize(req: &Request, caller: &Caller) -> Result<(), Box<Response>> {
    let Some(matched) = req.extensions().get::<MatchedPath>() else {
        let path = req.uri().path();
        if caller.role == Role::Agent
            && !path.starts_with("/v1/agent/")
            && !crate::agent::registry::is_registry_path(path)
        {
            return Err(Box::new(denied(
                "this token is an agent's join token; it may only use /v1/agent",
            )));
        }
        return Ok(());
    };
    let template = matched.as_str();
    let Some(policy) = policy::of(req.method(), template) else {
        // A route is being served with no policy: refuse rather than guess.
        if crate::routes::ROUTES
            .iter()
            .any(|(m, p)| m == req.method() && p == template)
        {
            tracing::error!(route = template, "a route has no access policy; refused");
            return Err(Box::new(denied("this route has no access policy; refused")));
        }
        return Ok(());
    };
    let env = policy::env_of(template, req.uri().path());
    let who = policy::Who {
        role: caller.role,
        environments: &caller.environments,
    };
    policy::check(policy, who, env.as_deref()).map_err(|m| Box::new(denied(&m.to_string())))
}

fn denied(message: &str) -> Response {
    ApiError::new(ErrorCode::PermissionDenied, message).into_response()
}

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return unauthenticated(
            "missing bearer token: send `Authorization: Bearer <token>` (the CLI gets one from `mesh up` or `mesh login`)",
        );
    };
    let hash = tokens::hash(&token);
    let now = state.now();
    let cached = match state.tokens().get(&hash, now) {
        Some(c) => c,
        None => {
            let record = match state.store().token_by_hash(&hash).await {
                Ok(r) => r,
                Err(e) => return ApiError::from(e).into_response(),
            };
            // The lookup was by hash; compare again in constant time so a store that matched
            // loosely (collation, truncation) can never let a wrong token in.
            let Some(record) =
                record.filter(|r| bool::from(r.hash.as_bytes().ct_eq(hash.as_bytes())))
            else {
                return unauthenticated(
                    "the bearer token is not valid: it may have been deleted; run `mesh login`",
                );
            };
            let c = Cached {
                caller: Caller {
                    name: record.token.name,
                    role: record.token.role,
                    rack: record.token.rack,
                    environments: record.token.environments,
                    expires_at: record.token.expires_at,
                },
                verified_at: now,
                touched_at: record.token.last_used_at.unwrap_or(0),
            };
            state.tokens().put(hash.clone(), c.clone());
            c
        }
    };
    if let Some(at) = cached.caller.expires_at
        && now >= at
    {
        return unauthenticated(&format!(
            "the bearer token {:?} expired at {} (Unix ms); ask an admin for a new one \
             (`mesh token create`)",
            cached.caller.name, at
        ));
    }
    if let Err(resp) = authorize(&req, &cached.caller) {
        return *resp;
    }
    if now - cached.touched_at >= TOUCH_EVERY_MS {
        let mut c = cached.clone();
        c.touched_at = now;
        state.tokens().put(hash, c);
        let (st, name) = (state.clone(), cached.caller.name.clone());
        tokio::spawn(async move {
            if let Err(e) = st.store().touch_token(&name, now).await {
                tracing::warn!(token = %name, error = %e, "could not record token use");
            }
        });
    }
    req.extensions_mut().insert(cached.caller);
    next.run(req).await
}
