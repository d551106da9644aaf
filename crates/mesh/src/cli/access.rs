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
    /// An admin token (`mesh token create`, or the admin-token file of the server's data dir)
    #[arg(long, env = "MESH_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an admin API token; its secret is shown only once
    Create { name: String },
    /// List API tokens
    #[command(visible_alias = "ls")]
    List,
    /// Delete an API token (not the last admin token)
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// How many events to show, newest first (at most 1000)
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Agent => "agent",
    }
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
                "check the token: `mesh token create NAME` makes one, and `mesh up` keeps the first in <data-dir>/admin-token",
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
        print(format!(
            "{} (role {}) at {}, server {}",
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
        TokenCmd::Create { name } => {
            let req = CreateToken {
                name: Name::parse_as("token name", &name)?,
            };
            let created = client.create_token(&req).await?;
            if ctx.json() {
                print_json(&created);
            } else {
                print(format!("created token {}", created.token.name));
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
                            or_dash(t.rack.as_ref()),
                            datetime(t.created_at),
                            or_dash(t.last_used_at.map(datetime)),
                        ]
                    })
                    .collect();
                print(table(
                    &["NAME", "ROLE", "RACK", "CREATED", "LAST USED"],
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
