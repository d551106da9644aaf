//! `mesh endpoint`: platform aliases and custom domains, and the services published on them.

use anyhow::Result;
use clap::Subcommand;
use mesh_types::api::{CreateEndpoint, Endpoint, PublishService, Route, UnpublishService};
use mesh_types::{Domain, Name};

use super::Ctx;
use super::env::kind;
use crate::output::{datetime, fields, or_dash, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Add a custom domain to the environment; prints the DNS record to create
    Create { domain: String },
    /// List the environment's endpoints and their routes
    #[command(visible_alias = "list")]
    Ls,
    /// Show an endpoint
    Show { domain: String },
    /// Remove a custom domain
    Delete { domain: String },
    /// Change an endpoint's settings
    Update {
        domain: String,
        /// Redirect plain HTTP requests to HTTPS (308), or stop doing so
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        https_redirect: String,
    },
    /// Route a path prefix of an endpoint to a service of the chosen stack
    Publish {
        domain: String,
        /// The service (of --stack) to route to
        #[arg(long, value_name = "SVC")]
        service: String,
        /// Path prefix; the longest matching prefix wins
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// Remove a service's routes from an endpoint (only the one at --path if given)
    Unpublish {
        domain: String,
        #[arg(long, value_name = "SVC")]
        service: String,
        #[arg(long)]
        path: Option<String>,
    },
}

/// `/ -> app-web, /api -> api-web`
pub fn routes_cell(routes: &[Route]) -> String {
    if routes.is_empty() {
        return "-".into();
    }
    routes
        .iter()
        .map(|r| format!("{} -> {}-{}", r.path, r.stack, r.service))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dns_table(ep: &Endpoint) -> String {
    let rows = ep
        .dns
        .iter()
        .map(|r| vec![r.record_type.clone(), r.name.clone(), r.value.clone()])
        .collect();
    table(&["TYPE", "NAME", "VALUE"], rows)
}

fn show(ep: &Endpoint) -> String {
    let mut out = fields(&[
        ("endpoint", ep.domain.to_string()),
        ("environment", ep.environment.to_string()),
        ("kind", kind(ep.kind).to_string()),
        ("rack", or_dash(ep.rack.as_ref())),
        ("routes", routes_cell(&ep.routes)),
        ("created", datetime(ep.created_at)),
    ]);
    if !ep.dns.is_empty() {
        out.push_str("\n\nDNS records:\n");
        out.push_str(&dns_table(ep));
    }
    out
}

pub async fn run(ctx: &Ctx, cmd: EndpointCmd) -> Result<()> {
    let target = ctx.target()?;
    let env = target.env()?;
    match cmd {
        EndpointCmd::Create { domain } => {
            let req = CreateEndpoint {
                domain: Domain::parse(&domain)?,
            };
            let ep = ctx.client()?.create_endpoint(env, &req).await?;
            if ctx.json() {
                print_json(&ep);
                return Ok(());
            }
            print(format!(
                "created endpoint {} in environment {env}",
                ep.domain
            ));
            match ep.dns.len() {
                0 => print("no DNS record is needed"),
                1 => print(format!(
                    "create this DNS record at your DNS provider:\n{}",
                    dns_table(&ep)
                )),
                _ => print(format!(
                    "create these DNS records at your DNS provider:\n{}",
                    dns_table(&ep)
                )),
            }
            print(format!(
                "then route it to a service with `mesh endpoint publish {} --service SVC`",
                ep.domain
            ));
        }
        EndpointCmd::Ls => {
            let eps = ctx.client()?.list_endpoints(env).await?;
            if ctx.json() {
                print_json(&eps);
            } else if eps.is_empty() {
                print(format!("no endpoints in environment {env}"));
            } else {
                let rows = eps
                    .iter()
                    .map(|ep| {
                        vec![
                            ep.domain.to_string(),
                            kind(ep.kind).into(),
                            routes_cell(&ep.routes),
                        ]
                    })
                    .collect();
                print(table(&["DOMAIN", "KIND", "ROUTES"], rows));
            }
        }
        EndpointCmd::Show { domain } => {
            let ep = ctx.client()?.endpoint(env, &domain).await?;
            if ctx.json() {
                print_json(&ep);
            } else {
                print(show(&ep));
            }
        }
        EndpointCmd::Update {
            domain,
            https_redirect,
        } => {
            let req = mesh_types::api::UpdateEndpoint {
                https_redirect: Some(https_redirect == "on"),
            };
            let ep = ctx.client()?.update_endpoint(env, &domain, &req).await?;
            if ctx.json() {
                print_json(&ep);
            } else if ep.https_redirect {
                print(format!("{domain}: plain HTTP is redirected to HTTPS"));
            } else {
                print(format!("{domain}: plain HTTP is served"));
            }
        }
        EndpointCmd::Delete { domain } => {
            ctx.client()?.delete_endpoint(env, &domain).await?;
            if !ctx.json() {
                print(format!("deleted endpoint {domain} from environment {env}"));
            }
        }
        EndpointCmd::Publish {
            domain,
            service,
            path,
        } => {
            let stack = target.stack()?;
            let req = PublishService {
                stack: Name::parse_as("stack name", stack)?,
                service: Name::parse_as("service name", &service)?,
                path: Some(path.clone()),
            };
            let ep = ctx.client()?.publish(env, &domain, &req).await?;
            if ctx.json() {
                print_json(&ep);
            } else {
                print(format!(
                    "published {stack}-{service} on {}{path}; routes: {}",
                    ep.domain,
                    routes_cell(&ep.routes)
                ));
            }
        }
        EndpointCmd::Unpublish {
            domain,
            service,
            path,
        } => {
            let stack = target.stack()?;
            let req = UnpublishService {
                stack: Name::parse_as("stack name", stack)?,
                service: Name::parse_as("service name", &service)?,
                path,
            };
            let ep = ctx.client()?.unpublish(env, &domain, &req).await?;
            if ctx.json() {
                print_json(&ep);
            } else {
                print(format!(
                    "unpublished {stack}-{service} from {}; routes: {}",
                    ep.domain,
                    routes_cell(&ep.routes)
                ));
            }
        }
    }
    Ok(())
}
