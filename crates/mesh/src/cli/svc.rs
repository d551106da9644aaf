//! `mesh svc` and `mesh services`: web services, workers and cron jobs.

use anyhow::{Result, anyhow};
use clap::{ArgGroup, Args, Subcommand};
use mesh_types::api::{CreateService, ScaleService, Service, UpdateService};
use mesh_types::{InstanceSize, Name, Schedule};

use super::Ctx;
use super::config::{self, SetArgs, UnsetArgs};
use crate::confirm;
use crate::output::{cell, datetime, fields, or_dash, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum SvcCmd {
    /// Create a service in the chosen stack: `-n NAME [--schedule CRON] -- CMD...`
    Create(CreateArgs),
    /// Change a service's command, schedule, port or health check (an empty value clears it)
    Update(UpdateArgs),
    /// Change a service's instance count or size
    Scale(ScaleArgs),
    /// Delete a service
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List the services of the chosen stack
    #[command(visible_alias = "ls")]
    List,
    /// Show a service
    Show { name: String },
    /// Config variables of one service (they override the stack's)
    #[command(subcommand)]
    Config(SvcConfigCmd),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Service name; its hostname in the environment is <stack>-<name>
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    name: String,
    /// Run on a schedule (a cron job): 5-field cron (UTC), @hourly, @every 2m, ...
    #[arg(long, value_name = "CRON")]
    schedule: Option<String>,
    /// Port the service listens on, given to it as PORT [default: 5000]
    #[arg(long)]
    port: Option<u16>,
    /// Number of instances [default: 1]
    #[arg(long)]
    instances: Option<u32>,
    /// Instance size: nano, micro, small, medium, large, xlarge [default: small]
    #[arg(long)]
    size: Option<String>,
    /// HTTP path that answers 2xx/3xx when an instance is healthy [default: a TCP check]
    #[arg(long, value_name = "PATH")]
    health_path: Option<String>,
    /// The command and its arguments, after `--` [default: the image's command]
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)
    .args(["command", "schedule", "port", "health_path"])))]
pub struct UpdateArgs {
    name: String,
    /// Command run through /bin/sh -c
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    command: Option<String>,
    /// Cron schedule; "" makes it an always-on service again
    #[arg(long, value_name = "CRON")]
    schedule: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// HTTP health check path; "" goes back to a TCP check
    #[arg(long, value_name = "PATH")]
    health_path: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["instances", "size"])))]
pub struct ScaleArgs {
    name: String,
    #[arg(long)]
    instances: Option<u32>,
    /// nano, micro, small, medium, large, xlarge
    #[arg(long)]
    size: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SvcConfigCmd {
    /// List the service's own variables
    #[command(visible_alias = "ls")]
    List { name: String },
    /// Set variables of the service: NAME KEY=VALUE..., --file KEY=PATH, --stdin KEY=-
    Set {
        name: String,
        #[command(flatten)]
        args: SetArgs,
    },
    /// Remove variables of the service
    Unset {
        name: String,
        #[command(flatten)]
        args: UnsetArgs,
    },
    /// Show the environment variables the service gets on a rack, and where each comes from
    Resolved {
        name: String,
        /// [default: the environment's first rack]
        #[arg(long)]
        rack: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServicesCmd {
    /// List the services of the environment (of one stack with --stack)
    #[command(visible_alias = "ls")]
    List,
}

fn size(s: &str) -> Result<InstanceSize> {
    s.parse::<InstanceSize>().map_err(|e| anyhow!(e))
}

fn command_line(words: &[String]) -> Option<String> {
    (!words.is_empty()).then(|| words.join(" "))
}

/// Table headers and rows of services; with `stacks`, a STACK column first.
pub fn service_rows(services: &[Service], stacks: bool) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let mut headers = vec![
        "NAME",
        "KIND",
        "COMMAND",
        "SCHEDULE",
        "SIZE",
        "DESIRED/RUNNING/HEALTHY",
        "HOSTNAME",
    ];
    if stacks {
        headers.insert(0, "STACK");
    }
    let rows = services
        .iter()
        .map(|s| {
            let mut row = vec![
                s.name.to_string(),
                s.kind.to_string(),
                or_dash(s.command.as_deref().map(|c| cell(c, 40))),
                or_dash(s.schedule.as_ref()),
                s.size.to_string(),
                format!("{}/{}/{}", s.instances, s.status.running, s.status.healthy),
                s.hostname.clone(),
            ];
            if stacks {
                row.insert(0, s.stack.to_string());
            }
            row
        })
        .collect();
    (headers, rows)
}

fn print_services(ctx: &Ctx, services: &[Service], stacks: bool, empty: &str) {
    if ctx.json() {
        print_json(services);
    } else if services.is_empty() {
        print(empty);
    } else {
        let (headers, rows) = service_rows(services, stacks);
        print(table(&headers, rows));
    }
}

fn describe(s: &Service) -> String {
    let what = match &s.schedule {
        Some(sch) => format!("cron {sch}"),
        None => s.kind.to_string(),
    };
    format!(
        "{what}, {} × {}, port {}, hostname {}",
        s.instances, s.size, s.port, s.hostname
    )
}

pub async fn run(ctx: &Ctx, cmd: SvcCmd) -> Result<()> {
    let target = ctx.target()?;
    let (env, stack) = target.env_stack()?;
    match cmd {
        SvcCmd::Create(a) => {
            let req = CreateService {
                name: Name::parse_as("service name", &a.name)?,
                command: command_line(&a.command),
                schedule: a
                    .schedule
                    .as_deref()
                    .map(Schedule::parse)
                    .transpose()
                    .map_err(|e| anyhow!(e))?,
                port: a.port,
                instances: a.instances,
                size: a.size.as_deref().map(size).transpose()?,
                health_path: a.health_path,
            };
            let s = ctx.client()?.create_service(env, stack, &req).await?;
            if ctx.json() {
                print_json(&s);
            } else {
                print(format!(
                    "created service {} in stack {stack} ({})",
                    s.name,
                    describe(&s)
                ));
            }
        }
        SvcCmd::Update(a) => {
            let req = UpdateService {
                command: a.command,
                schedule: a.schedule,
                port: a.port,
                health_path: a.health_path,
            };
            let s = ctx
                .client()?
                .update_service(env, stack, &a.name, &req)
                .await?;
            if ctx.json() {
                print_json(&s);
            } else {
                print(format!(
                    "updated service {} ({}); command: {}",
                    s.name,
                    describe(&s),
                    or_dash(s.command.as_deref())
                ));
            }
        }
        SvcCmd::Scale(a) => {
            let req = ScaleService {
                instances: a.instances,
                size: a.size.as_deref().map(size).transpose()?,
            };
            let s = ctx
                .client()?
                .scale_service(env, stack, &a.name, &req)
                .await?;
            if ctx.json() {
                print_json(&s);
            } else {
                print(format!("service {}: {} × {}", s.name, s.instances, s.size));
            }
        }
        SvcCmd::Delete { name, yes } => {
            confirm::deletion("service", &name, " and its config", yes)?;
            ctx.client()?.delete_service(env, stack, &name).await?;
            if !ctx.json() {
                print(format!("deleted service {name} from stack {stack}"));
            }
        }
        SvcCmd::List => {
            let services = ctx.client()?.list_services(env, stack).await?;
            let empty = format!(
                "no services in stack {stack}: create one with `mesh svc create -n NAME -- CMD`"
            );
            print_services(ctx, &services, false, &empty);
        }
        SvcCmd::Show { name } => {
            let s = ctx.client()?.service(env, stack, &name).await?;
            if ctx.json() {
                print_json(&s);
            } else {
                print(fields(&[
                    ("service", s.name.to_string()),
                    ("stack", s.stack.to_string()),
                    ("environment", s.environment.to_string()),
                    ("kind", s.kind.to_string()),
                    ("command", or_dash(s.command.as_deref())),
                    ("schedule", or_dash(s.schedule.as_ref())),
                    ("port", s.port.to_string()),
                    ("instances", s.instances.to_string()),
                    ("size", s.size.to_string()),
                    (
                        "health check",
                        match &s.health.http_path {
                            Some(p) => format!("GET {p} (grace {}s)", s.health.grace_s),
                            None => format!("TCP port {} (grace {}s)", s.port, s.health.grace_s),
                        },
                    ),
                    ("hostname", s.hostname.clone()),
                    (
                        "status",
                        format!(
                            "{} desired, {} running, {} healthy",
                            s.instances, s.status.running, s.status.healthy
                        ),
                    ),
                    ("created", datetime(s.created_at)),
                    ("updated", datetime(s.updated_at)),
                ]));
            }
        }
        SvcCmd::Config(cmd) => service_config(ctx, env, stack, cmd).await?,
    }
    Ok(())
}

async fn service_config(ctx: &Ctx, env: &str, stack: &str, cmd: SvcConfigCmd) -> Result<()> {
    match cmd {
        SvcConfigCmd::List { name } => {
            let vars = ctx.client()?.service_config(env, stack, &name).await?;
            config::print_vars(
                ctx,
                &vars,
                &format!(
                    "no config variables on service {name} (it gets the stack's: `mesh svc config resolved {name}`)"
                ),
            );
        }
        SvcConfigCmd::Set { name, args } => {
            let change = config::set_change(&args)?;
            let vars = ctx
                .client()?
                .change_service_config(env, stack, &name, &change)
                .await?;
            let on = format!("service {name} of stack {stack}");
            config::print_change(ctx, &change, &vars, &on, &args.scope.describe());
        }
        SvcConfigCmd::Unset { name, args } => {
            let change = config::unset_change(&args)?;
            let vars = ctx
                .client()?
                .change_service_config(env, stack, &name, &change)
                .await?;
            let on = format!("service {name} of stack {stack}");
            config::print_change(ctx, &change, &vars, &on, &args.scope.describe());
        }
        SvcConfigCmd::Resolved { name, rack } => {
            let r = ctx
                .client()?
                .resolved_config(env, stack, &name, rack.as_deref())
                .await?;
            config::print_resolved(ctx, &r);
        }
    }
    Ok(())
}

/// `mesh services list`: the whole environment, or one stack with --stack.
pub async fn services(ctx: &Ctx, cmd: ServicesCmd) -> Result<()> {
    let ServicesCmd::List = cmd;
    let target = ctx.target()?;
    let env = target.env()?;
    let client = ctx.client()?;
    match target.stack_flag.as_deref() {
        Some(stack) => {
            let services = client.list_services(env, stack).await?;
            print_services(
                ctx,
                &services,
                false,
                &format!("no services in stack {stack}"),
            );
        }
        None => {
            let services = client.list_environment_services(env).await?;
            print_services(
                ctx,
                &services,
                true,
                &format!("no services in environment {env}"),
            );
        }
    }
    Ok(())
}
