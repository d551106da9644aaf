//! Who may call which route: every route of [`crate::routes`] has exactly one [`Policy`] here,
//! checked by the authentication middleware before its handler runs. A route missing from this
//! table is refused (and a test walking the route table fails).

use axum::http::Method;
use mesh_types::Name;
use mesh_types::api::Role;

/// What a route demands of the caller's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Any valid token, an agent's included (`/v1/whoami`, the OpenAPI document).
    AnyToken,
    /// Admin only: tokens, the audit log, providers, racks, metrics, environment lifecycle.
    Admin,
    /// Any admin, developer or viewer token; the handler shows only the caller's environments.
    EnvList,
    /// Reading the environment in the path (admin, developer or viewer of it).
    EnvRead,
    /// Reading config values (secrets) of the environment in the path (admin or its developer).
    EnvSecretRead,
    /// Changing the environment in the path (admin or its developer).
    EnvWrite,
    /// `run` and `exec` in the environment in the path (admin or its developer).
    EnvExec,
    /// Uploading a source or image archive for a later deployment: admin or any developer
    /// (content-addressed; a deployment of an environment it may write is what uses it).
    Upload,
    /// A rack's join token: the agent gateway and the registry API (`/v2/`), for that rack only.
    Agent,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::AnyToken => "any_token",
            Policy::Admin => "admin",
            Policy::EnvList => "env_list",
            Policy::EnvRead => "env_read",
            Policy::EnvSecretRead => "env_secret_read",
            Policy::EnvWrite => "env_write",
            Policy::EnvExec => "env_exec",
            Policy::Upload => "upload",
            Policy::Agent => "agent",
        }
    }
}

const ENV: &str = "/v1/environments/{env}";

/// The policy of a route, by its method and path template (`/v1/environments/{env}/...`).
pub fn of(method: &Method, template: &str) -> Option<Policy> {
    use Policy::*;
    let m = method.as_str();
    let p = template;
    Some(match (m, p) {
        (_, "/healthz") => return None,
        ("GET", "/v1/whoami" | "/v1/openapi.json") => AnyToken,
        ("GET", "/metrics") => Admin,
        (_, "/v1/tokens" | "/v1/tokens/{token}" | "/v1/events") => Admin,
        (_, p) if p.starts_with("/v1/providers") || p.starts_with("/v1/racks") => Admin,
        ("GET", "/v1/environments") => EnvList,
        ("POST", "/v1/environments") => Admin,
        ("PUT", "/v1/sources/{digest}") => Upload,
        (_, p) if p.starts_with("/v1/agent/") => Agent,
        ("GET" | "HEAD", p) if p.starts_with("/v2/") => Agent,
        (m, p) if p == ENV => match m {
            "GET" => EnvRead,
            // Which racks run it and whether it exists are the platform's business.
            "PATCH" | "DELETE" => Admin,
            _ => return None,
        },
        (m, p) if p.starts_with(ENV) => {
            let rest = &p[ENV.len()..];
            if rest.ends_with("/runs") || rest.ends_with("/exec") {
                match m {
                    "POST" => EnvExec,
                    _ => return None,
                }
            } else if rest.contains("/config") {
                match m {
                    "GET" => EnvSecretRead,
                    "PATCH" => EnvWrite,
                    _ => return None,
                }
            } else {
                match m {
                    "GET" => EnvRead,
                    "POST" | "PUT" | "PATCH" | "DELETE" => EnvWrite,
                    _ => return None,
                }
            }
        }
        _ => return None,
    })
}

/// The caller as far as policy is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub role: Role,
    pub environments: &'a [Name],
}

/// Why a call was refused, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this token is an agent's join token; it may only use /v1/agent")]
    AgentToken,
    #[error("only a rack's join token may use the agent gateway")]
    AgentGateway,
    /// A developer or viewer token of other environments; `reaches` lists them.
    #[error("this {role} token does not reach environment {env:?}; it reaches {reaches}")]
    OutOfReach {
        role: Role,
        env: String,
        reaches: String,
    },
    /// The token reaches the environment but its role may not do `what` there.
    #[error("a {role} token may not {what}; ask an admin for a developer token of {env:?}")]
    Role {
        role: Role,
        what: &'static str,
        env: String,
    },
    #[error("this route needs an admin token; this one is a {role} token (of {reaches})")]
    AdminOnly { role: Role, reaches: String },
    #[error("a {role} token may not upload sources; that needs a developer or admin token")]
    Upload { role: Role },
}

/// Whether `who` may call a route of `policy`, `env` being the environment in its path.
pub fn check(policy: Policy, who: Who<'_>, env: Option<&str>) -> Result<(), Denied> {
    use Policy::*;
    let role = who.role;
    if role == Role::Agent {
        return match policy {
            Agent | AnyToken => Ok(()),
            _ => Err(Denied::AgentToken),
        };
    }
    if policy == Agent {
        return Err(Denied::AgentGateway);
    }
    if role == Role::Admin {
        return Ok(());
    }
    let reaches = |env: &str| who.environments.iter().any(|e| e.as_str() == env);
    let scoped = |what: &'static str, allowed: bool| -> Result<(), Denied> {
        let env = env.unwrap_or_default();
        if !reaches(env) {
            return Err(Denied::OutOfReach {
                role,
                env: env.to_string(),
                reaches: list(who.environments),
            });
        }
        if allowed {
            Ok(())
        } else {
            Err(Denied::Role {
                role,
                what,
                env: env.to_string(),
            })
        }
    };
    let developer = role == Role::Developer;
    match policy {
        AnyToken | EnvList => Ok(()),
        Admin => Err(Denied::AdminOnly {
            role,
            reaches: list(who.environments),
        }),
        EnvRead => scoped("read", true),
        EnvSecretRead => scoped("read config values", developer),
        EnvWrite => scoped("change anything", developer),
        EnvExec => scoped("run or exec commands", developer),
        Upload if developer => Ok(()),
        Upload => Err(Denied::Upload { role }),
        Agent => unreachable!("handled above"),
    }
}

fn list(envs: &[Name]) -> String {
    if envs.is_empty() {
        return "no environment".into();
    }
    envs.iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The environment named in a request path under `/v1/environments/{env}`.
pub fn env_of(template: &str, path: &str) -> Option<String> {
    if !template.starts_with(ENV) {
        return None;
    }
    path.split('/').nth(3).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn refusals_read_as_they_always_did() {
        let envs = [n("shop"), n("bank")];
        let viewer = Who {
            role: Role::Viewer,
            environments: &envs,
        };
        let said = |p, env| check(p, viewer, env).unwrap_err().to_string();
        assert_eq!(
            said(Policy::EnvRead, Some("other")),
            "this viewer token does not reach environment \"other\"; it reaches shop, bank"
        );
        assert_eq!(
            said(Policy::EnvWrite, Some("shop")),
            "a viewer token may not change anything; ask an admin for a developer token of \"shop\""
        );
        assert_eq!(
            said(Policy::Admin, None),
            "this route needs an admin token; this one is a viewer token (of shop, bank)"
        );
        assert_eq!(
            said(Policy::Upload, None),
            "a viewer token may not upload sources; that needs a developer or admin token"
        );
        assert_eq!(
            said(Policy::Agent, None),
            "only a rack's join token may use the agent gateway"
        );
    }

    #[test]
    fn developers_and_viewers_act_only_in_their_environments() {
        let envs = [n("shop")];
        let dev = Who {
            role: Role::Developer,
            environments: &envs,
        };
        let viewer = Who {
            role: Role::Viewer,
            environments: &envs,
        };
        for p in [
            Policy::EnvRead,
            Policy::EnvWrite,
            Policy::EnvSecretRead,
            Policy::EnvExec,
        ] {
            assert!(check(p, dev, Some("shop")).is_ok(), "{p:?}");
            let e = check(p, dev, Some("bank")).unwrap_err().to_string();
            assert!(e.contains("does not reach environment \"bank\""), "{e}");
            assert!(check(p, viewer, Some("bank")).is_err());
        }
        assert!(check(Policy::EnvRead, viewer, Some("shop")).is_ok());
        for p in [Policy::EnvWrite, Policy::EnvSecretRead, Policy::EnvExec] {
            let e = check(p, viewer, Some("shop")).unwrap_err().to_string();
            assert!(e.contains("a viewer token may not"), "{e}");
        }
        assert!(check(Policy::Admin, dev, None).is_err());
        assert!(check(Policy::Agent, dev, None).is_err());
        assert!(check(Policy::Upload, dev, None).is_ok());
        assert!(check(Policy::Upload, viewer, None).is_err());
    }

    #[test]
    fn admins_reach_everything_but_the_gateway_and_agents_only_the_gateway() {
        let admin = Who {
            role: Role::Admin,
            environments: &[],
        };
        let agent = Who {
            role: Role::Agent,
            environments: &[],
        };
        assert!(check(Policy::EnvExec, admin, Some("any")).is_ok());
        assert!(check(Policy::Admin, admin, None).is_ok());
        assert!(check(Policy::Agent, admin, None).is_err());
        assert!(check(Policy::Agent, agent, None).is_ok());
        assert!(check(Policy::AnyToken, agent, None).is_ok());
        let e = check(Policy::EnvList, agent, None).unwrap_err().to_string();
        assert!(e.contains("join token"), "{e}");
    }

    #[test]
    fn every_route_has_a_policy() {
        let mut missing = Vec::new();
        for (method, path) in crate::routes::ROUTES.iter() {
            if path == "/healthz" {
                continue;
            }
            match of(method, path) {
                None => missing.push(format!("{method} {path}")),
                // A route checked against the environment in its path must have one.
                Some(
                    Policy::EnvRead | Policy::EnvWrite | Policy::EnvSecretRead | Policy::EnvExec,
                ) => assert!(path.starts_with(ENV), "{method} {path}"),
                Some(_) => {}
            }
        }
        assert!(missing.is_empty(), "routes without a policy: {missing:?}");
        assert_eq!(of(&Method::GET, "/healthz"), None);
        assert_eq!(of(&Method::GET, "/v1/unknown"), None);
    }

    #[test]
    fn the_environment_comes_from_the_path() {
        assert_eq!(
            env_of(
                "/v1/environments/{env}/stacks/{stack}",
                "/v1/environments/shop/stacks/web"
            )
            .as_deref(),
            Some("shop")
        );
        assert_eq!(env_of("/v1/racks/{rack}", "/v1/racks/local"), None);
    }
}
