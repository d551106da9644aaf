//! `mesh login`, `mesh whoami`, `mesh token` and `mesh events`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mesh_types::Name;
use mesh_types::api::{CreateToken, Role};

use super::Ctx;
use crate::failure::hinted;
use crate::output::{cell, datetime, or_dash, print, print_json, table};
use crate::settings::{self, Settings};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The control plane's API, such as http://mesh.example.com:7440
    url: String,
    /// A token (`mesh token create`, or the admin-token file of the server's data dir)
    #[arg(long, env = "MESH_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; its secret is shown only once
    Create(CreateTokenArgs),
    /// List API tokens
    #[command(visible_alias = "ls")]
    List,
    /// Delete an API token (not the last admin token)
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    name: String,
    /// admin (everything), developer (deploy, config, services, endpoints, logs, run/exec in
    /// its environments) or viewer (reads its environments: no config values, no exec);
    /// required, so an admin token is made only on request
    #[arg(long)]
    role: Option<String>,
    /// How long the token works, such as 30d or 12h; without it, until deleted
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
    /// An environment the token reaches (developer and viewer tokens); once for each
    #[arg(short = 'e', long = "env", value_name = "ENV", action = clap::ArgAction::Append)]
    pub env: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// How many events to show, newest first (at most 1000)
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

fn role(r: Role) -> &'static str {
    r.as_str()
}

/// `envs`: `--env`, given once for each environment the token reaches.
fn create_request(args: CreateTokenArgs, envs: &[String]) -> Result<CreateToken> {
    let Some(r) = args.role else {
        anyhow::bail!(
            "say which role the token has: --role developer --env ENV, --role viewer --env ENV, \
             or --role admin"
        );
    };
    let role: Role = r.parse().map_err(anyhow::Error::msg)?;
    if role == Role::Agent {
        anyhow::bail!("agent tokens come with their rack (`mesh rack create`)");
    }
    let environments = envs
        .iter()
        .filter(|e| !e.is_empty())
        .map(|e| Name::parse_as("environment name", e))
        .collect::<Result<Vec<_>, _>>()?;
    if role == Role::Admin && !environments.is_empty() {
        anyhow::bail!(
            "an admin token reaches every environment: drop --env (and unset MESH_ENV if it is set)"
        );
    }
    let expires_in_secs = match args.expires.as_deref() {
        None => None,
        Some(d) => {
            let secs = mesh_types::schedule::parse_duration(d)
                .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
            if secs == 0 {
                anyhow::bail!("--expires {d:?} is no time at all; use such as 30d or 12h");
            }
            Some(secs)
        }
    };
    Ok(CreateToken {
        name: Name::parse_as("token name", &args.name)?,
        role: Some(role),
        environments,
        expires_in_secs,
    })
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Checks the token against the API, then saves both in the CLI config.
pub async fn login(ctx: &Ctx, args: LoginArgs) -> Result<()> {
    let url = settings::normalize_url(&args.url);
    let token = args.token.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("the token is empty: pass --token TOKEN");
    }
    let client = mesh_client::Client::new(&url, token.clone())?;
    let me = match client.whoami().await {
        Ok(me) => me,
        Err(e @ mesh_client::Error::Api { .. }) => {
            return Err(hinted(
                format!("{url} refused the token: {e}"),
                "check the token: `mesh token create NAME --role ROLE` makes one, and `mesh up` keeps the first in <data-dir>/admin-token",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let path = settings::config_path(&env_var)?;
    settings::save(
        &path,
        &Settings {
            api_url: Some(url.clone()),
            token: Some(token),
        },
    )
    .context("cannot save the login")?;
    if ctx.json() {
        print_json(&me);
    } else {
        print(format!(
            "logged in to {url} as {} (role {}, server {}); saved in {}",
            me.token,
            role(me.role),
            me.server_version,
            path.display()
        ));
    }
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> Result<()> {
    let settings = ctx.settings()?;
    let me = settings.client()?.whoami().await?;
    if ctx.json() {
        print_json(&me);
    } else {
        let of = if me.environments.is_empty() {
            String::new()
        } else {
            format!(" of {}", join(&me.environments))
        };
        let until = me
            .expires_at
            .map(|at| format!(", expires {}", datetime(at)))
            .unwrap_or_default();
        print(format!(
            "{} (role {}{of}{until}) at {}, server {}",
            me.token,
            role(me.role),
            settings.api_url,
            me.server_version
        ));
    }
    Ok(())
}

pub async fn token(ctx: &Ctx, cmd: TokenCmd) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        TokenCmd::Create(args) => {
            let req = create_request(args, &ctx.flags.env)?;
            let created = client.create_token(&req).await?;
            if ctx.json() {
                print_json(&created);
            } else {
                let t = &created.token;
                let reach = if t.environments.is_empty() {
                    String::new()
                } else {
                    format!(" of {}", join(&t.environments))
                };
                let until = t
                    .expires_at
                    .map(|at| format!(", expires {}", datetime(at)))
                    .unwrap_or_default();
                print(format!(
                    "created {} token {}{reach}{until}",
                    role(t.role),
                    t.name
                ));
                print(format!("secret: {}", created.secret));
                print(
                    "the secret is shown only once: keep it safe (`mesh login URL --token SECRET` uses it)",
                );
            }
        }
        TokenCmd::List => {
            let tokens = client.list_tokens().await?;
            if ctx.json() {
                print_json(&tokens);
            } else {
                let rows = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            role(t.role).into(),
                            scope(t),
                            or_dash(t.expires_at.map(datetime)),
                            datetime(t.created_at),
                            or_dash(t.last_used_at.map(datetime)),
                        ]
                    })
                    .collect();
                print(table(
                    &["NAME", "ROLE", "SCOPE", "EXPIRES", "CREATED", "LAST USED"],
                    rows,
                ));
            }
        }
        TokenCmd::Delete { name } => {
            client.delete_token(&name).await?;
            if !ctx.json() {
                print(format!("deleted token {name}"));
            }
        }
    }
    Ok(())
}

fn join(names: &[Name]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// What a token reaches: every environment, some, or a rack's agent gateway.
fn scope(t: &mesh_types::api::Token) -> String {
    match (t.role, &t.rack) {
        (Role::Admin, _) => "all".into(),
        (Role::Agent, Some(rack)) => format!("rack {rack}"),
        _ if t.environments.is_empty() => "none (its environments were deleted)".into(),
        _ => join(&t.environments),
    }
}

pub async fn events(ctx: &Ctx, args: EventsArgs) -> Result<()> {
    let events = ctx.client()?.list_events(Some(args.limit)).await?;
    if ctx.json() {
        print_json(&events);
    } else if events.is_empty() {
        print("no events yet");
    } else {
        let rows = events
            .iter()
            .map(|e| {
                vec![
                    datetime(e.at),
                    e.actor.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    or_dash(Some(cell(&e.detail, 60))),
                ]
            })
            .collect();
        print(table(
            &["TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"],
            rows,
        ));
    }
    Ok(())
}
