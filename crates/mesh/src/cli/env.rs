//! `mesh env`: environments.

use anyhow::Result;
use clap::Subcommand;
use mesh_types::Name;
use mesh_types::api::{CreateEnvironment, Environment, UpdateEnvironment};

use super::Ctx;
use super::endpoint::routes_cell;
use super::svc::service_rows;
use crate::confirm;
use crate::output::{datetime, fields, or_dash, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// Create an empty environment
    Create {
        /// Unique on the whole platform: lowercase letters, digits and dashes
        name: String,
        /// Racks to place it on, in order [default: the platform's default rack]
        #[arg(long, value_delimiter = ',', value_name = "RACK,...")]
        rack: Vec<String>,
    },
    /// List environments
    #[command(visible_alias = "list")]
    Ls,
    /// Show an environment with its stacks, services and endpoints
    Show {
        /// [default: the chosen environment]
        name: Option<String>,
        #[command(flatten)]
        target: super::EnvTarget,
    },
    /// Delete an environment and everything in it
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Place an environment on racks: `--rack old,new` while moving (the new rack last)
    Update {
        name: String,
        /// The racks, in order, the newest last
        #[arg(long, value_delimiter = ',', value_name = "RACK,...", required = true)]
        rack: Vec<String>,
    },
}

fn rack_names(racks: &[String]) -> Result<Vec<Name>> {
    Ok(racks
        .iter()
        .map(|r| Name::parse_as("rack name", r.trim()))
        .collect::<Result<_, _>>()?)
}

fn join(names: &[Name]) -> String {
    names
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(ctx: &Ctx, cmd: EnvCmd) -> Result<()> {
    match cmd {
        EnvCmd::Create { name, rack } => {
            let req = CreateEnvironment {
                name: Name::parse_as("environment name", &name)?,
                racks: rack_names(&rack)?,
            };
            let env = ctx.client()?.create_environment(&req).await?;
            if ctx.json() {
                print_json(&env);
            } else {
                print(format!(
                    "created environment {} on {} {}",
                    env.name,
                    if env.racks.len() == 1 {
                        "rack"
                    } else {
                        "racks"
                    },
                    join(&env.racks)
                ));
            }
        }
        EnvCmd::Ls => {
            let envs = ctx.client()?.list_environments().await?;
            if ctx.json() {
                print_json(&envs);
            } else if envs.is_empty() {
                print("no environments yet: create one with `mesh env create NAME`");
            } else {
                print(env_table(&envs));
            }
        }
        EnvCmd::Show { name, .. } => {
            let name = match name {
                Some(n) => n,
                None => ctx.target()?.env()?.to_string(),
            };
            let d = ctx.client()?.environment(&name).await?;
            if ctx.json() {
                print_json(&d);
                return Ok(());
            }
            let e = &d.environment;
            let mut out = fields(&[
                ("environment", e.name.to_string()),
                ("racks", join(&e.racks)),
                ("created", datetime(e.created_at)),
                ("updated", datetime(e.updated_at)),
            ]);
            out.push_str("\n\nstacks:\n");
            if d.stacks.is_empty() {
                out.push_str("  none: create one with `mesh create stack NAME`");
            } else {
                let rows = d
                    .stacks
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.to_string(),
                            s.formula.to_string(),
                            or_dash(s.current_deployment),
                        ]
                    })
                    .collect();
                out.push_str(&indent(&table(&["NAME", "FORMULA", "DEPLOYMENT"], rows)));
            }
            out.push_str("\n\nservices:\n");
            if d.services.is_empty() {
                out.push_str("  none");
            } else {
                let (headers, rows) = service_rows(&d.services, true);
                out.push_str(&indent(&table(&headers, rows)));
            }
            out.push_str("\n\nendpoints:\n");
            if d.endpoints.is_empty() {
                out.push_str("  none");
            } else {
                let rows = d
                    .endpoints
                    .iter()
                    .map(|ep| {
                        vec![
                            ep.domain.to_string(),
                            kind(ep.kind).into(),
                            routes_cell(&ep.routes),
                        ]
                    })
                    .collect();
                out.push_str(&indent(&table(&["DOMAIN", "KIND", "ROUTES"], rows)));
            }
            print(out);
        }
        EnvCmd::Delete { name, yes } => {
            confirm::deletion(
                "environment",
                &name,
                " and everything in it (stacks, services, config, endpoints, certificates)",
                yes,
            )?;
            ctx.client()?.delete_environment(&name).await?;
            if !ctx.json() {
                print(format!("deleted environment {name}"));
            }
        }
        EnvCmd::Update { name, rack } => {
            let req = UpdateEnvironment {
                racks: rack_names(&rack)?,
            };
            let env = ctx.client()?.update_environment(&name, &req).await?;
            if ctx.json() {
                print_json(&env);
            } else {
                print(format!(
                    "environment {} is now on {} {}",
                    env.name,
                    if env.racks.len() == 1 {
                        "rack"
                    } else {
                        "racks"
                    },
                    join(&env.racks)
                ));
            }
        }
    }
    Ok(())
}

fn env_table(envs: &[Environment]) -> String {
    let rows = envs
        .iter()
        .map(|e| {
            vec![
                e.name.to_string(),
                e.racks
                    .iter()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                datetime(e.created_at),
            ]
        })
        .collect();
    table(&["NAME", "RACKS", "CREATED"], rows)
}

pub fn kind(k: mesh_types::api::EndpointKind) -> &'static str {
    match k {
        mesh_types::api::EndpointKind::Alias => "alias",
        mesh_types::api::EndpointKind::Custom => "custom",
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
