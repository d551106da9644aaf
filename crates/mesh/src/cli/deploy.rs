//! `mesh deploy`, `mesh deployments`, `mesh logs` and `mesh instances`.

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use mesh_client::LogQuery;
use mesh_types::Version;
use mesh_types::agent::{LogLine, LogStream};
use mesh_types::api::{Deployment, InstanceState};

use super::Ctx;
use crate::output::{age, cell, datetime, now_ms, or_dash, print, print_json, table};
use crate::sanitize::{self, Mode};

#[derive(Debug, Subcommand)]
pub enum DeploymentsCmd {
    /// List the chosen stack's deployments, newest first
    #[command(visible_alias = "ls")]
    List,
    /// Print the output of a deployment (build, release, first service lines); with --json its
    /// record
    Show {
        /// v0, v1, ...
        #[arg(value_name = "VERSION")]
        vn: String,
        /// Print the log's control characters (escape sequences) as sent, not escaped
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// How far back to start, such as 30s, 15m, 1h (logs are kept for an hour) [default: 1m]
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// Keep printing new output until interrupted
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only this service's output (of --stack, if given)
    #[arg(long, value_name = "SVC")]
    service: Option<String>,
    /// Only this instance's output
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
    /// Print control characters (escape sequences) as the app sent them, not escaped
    #[arg(long)]
    raw: bool,
}

fn status_word(d: &Deployment) -> &'static str {
    d.status.as_str()
}

pub async fn deployments(ctx: &Ctx, cmd: DeploymentsCmd) -> Result<()> {
    let target = ctx.target()?;
    let (env, stack) = target.env_stack()?;
    let client = ctx.client()?;
    match cmd {
        DeploymentsCmd::List => {
            let deps = client.list_deployments(env, stack).await?;
            if ctx.json() {
                print_json(&deps);
            } else if deps.is_empty() {
                print(format!(
                    "no deployments of stack {stack} yet: deploy with `mesh deploy`"
                ));
            } else {
                let rows =
                    deps.iter()
                        .map(|d| {
                            vec![
                                d.version.to_string(),
                                status_word(d).into(),
                                d.description.clone(),
                                d.formula.to_string(),
                                or_dash(
                                    d.source_digest
                                        .as_deref()
                                        .map(|s| s[..s.len().min(19)].to_string()),
                                ),
                                or_dash(d.finished_at.map(|f| {
                                    format!("{:.1}s", (f - d.created_at) as f64 / 1000.0)
                                })),
                                datetime(d.created_at),
                                or_dash(d.finished_at.map(datetime)),
                                d.created_by.clone(),
                                or_dash(d.message.as_deref().map(|m| cell(m, 60))),
                            ]
                        })
                        .collect();
                print(table(
                    &[
                        "VERSION", "STATUS", "WHAT", "FORMULA", "SOURCE", "TOOK", "CREATED",
                        "FINISHED", "BY", "MESSAGE",
                    ],
                    rows,
                ));
            }
        }
        DeploymentsCmd::Show { vn, raw } => {
            let mode = Mode::from_raw_flag(raw);
            let v = Version::parse(&vn)?;
            let d = client.deployment(env, stack, v).await?;
            if ctx.json() {
                print_json(&d);
            } else if !d.status.is_finished() {
                // A live deployment: follow it to its end.
                return super::ship::follow(ctx, &client, env, stack, d, false, mode).await;
            } else {
                let log = client.deployment_log(env, stack, v).await?;
                print(format!(
                    "deployment {v} of {env}/{stack}: {} {}, by {} at {}",
                    mode.apply(&d.description),
                    status_word(&d),
                    mode.apply(&d.created_by),
                    datetime(d.created_at)
                ));
                for s in &d.steps {
                    print(format!(
                        "  {:<8} {:<9} {}",
                        s.name,
                        s.status,
                        s.duration_ms()
                            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                            .unwrap_or_default()
                    ));
                }
                if let Some(m) = &d.message {
                    print(format!("  {}", mode.apply(m)));
                }
                if !log.is_empty() {
                    print(mode.apply(log.trim_end_matches('\n')));
                }
            }
        }
    }
    Ok(())
}

/// One log line as people read it: `2025-03-01 14:05:09 app-web[ab12cd] text`, its control
/// characters escaped unless `mode` is raw.
pub fn log_line(l: &LogLine, mode: Mode) -> String {
    let marker = match l.stream {
        LogStream::Stdout => "",
        LogStream::Stderr => " (stderr)",
        LogStream::System => " (platform)",
    };
    format!(
        "{} {}-{}[{}]{marker} {}",
        datetime(l.at),
        l.stack,
        l.service,
        mode.apply(&l.instance),
        mode.apply(l.text.trim_end_matches(['\r', '\n']))
    )
}

/// `mesh logs`: the environment's instance output, printed as it arrives.
pub async fn logs(ctx: &Ctx, args: LogsArgs) -> Result<()> {
    if let Some(s) = &args.since {
        mesh_types::schedule::parse_duration(s).map_err(|e| anyhow!("--since: {e}"))?;
    }
    let target = ctx.target()?;
    let env = target.env()?;
    let query = LogQuery {
        since: args.since,
        stack: target.stack_flag.clone(),
        service: args.service,
        instance: args.instance,
        follow: args.follow,
    };
    let mode = Mode::from_raw_flag(args.raw);
    let mut lines = ctx.client()?.logs(env, &query).await?;
    while let Some(line) = lines.next_line().await? {
        if ctx.json() {
            print(match mode {
                Mode::Raw => line,
                Mode::Escaped => sanitize::json_line(&line),
            });
            continue;
        }
        match serde_json::from_str::<LogLine>(&line) {
            Ok(l) => print(log_line(&l, mode)),
            Err(_) => print(mode.apply(&line)),
        }
    }
    Ok(())
}

fn instance_state(s: InstanceState) -> &'static str {
    match s {
        InstanceState::Starting => "starting",
        InstanceState::Running => "running",
        InstanceState::Healthy => "healthy",
        InstanceState::Crashed => "crashed",
        InstanceState::BackingOff => "backing_off",
        InstanceState::Stopped => "stopped",
        InstanceState::OomKilled => "oom_killed",
        InstanceState::Unknown => "unknown",
    }
}

/// `mesh instances`: every instance of the environment (of one stack with --stack).
pub async fn instances(ctx: &Ctx) -> Result<()> {
    let target = ctx.target()?;
    let env = target.env()?;
    let mut list = ctx.client()?.list_instances(env).await?;
    let now = now_ms();
    if let Some(stack) = target.stack_flag.as_deref() {
        list.retain(|i| i.stack.as_str() == stack);
    }
    if ctx.json() {
        print_json(&list);
    } else if list.is_empty() {
        print(format!("no instances running in environment {env}"));
    } else {
        let rows = list
            .iter()
            .map(|i| {
                vec![
                    i.id.clone(),
                    format!("{}-{}", i.stack, i.service),
                    instance_state(i.state).into(),
                    or_dash(i.deployment),
                    or_dash(i.rack.as_ref()),
                    or_dash(i.server.as_ref()),
                    or_dash(i.address.as_deref()),
                    i.restarts.to_string(),
                    or_dash(i.started_at.map(|t| age(now - t))),
                    cell(i.message.as_deref().unwrap_or(""), 48),
                ]
            })
            .collect();
        print(table(
            &[
                "ID",
                "SERVICE",
                "STATE",
                "DEPLOYMENT",
                "RACK",
                "SERVER",
                "ADDRESS",
                "RESTARTS",
                "AGE",
                "NOTE",
            ],
            rows,
        ));
    }
    Ok(())
}
