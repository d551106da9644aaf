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

/// One log line as people read it: `2025-03-01 14:05:09 app-web[ab12cd] text`, with the rack
/// it came from (`app-web[ab12cd@east]`) when `racks` says the environment is on several, its
/// control characters escaped unless `mode` is raw.
pub fn log_line(l: &LogLine, mode: Mode, racks: bool) -> String {
    let marker = match l.stream {
        LogStream::Stdout => "",
        LogStream::Stderr => " (stderr)",
        LogStream::System => " (platform)",
    };
    let rack = match (&l.rack, racks) {
        (Some(r), true) => format!("@{r}"),
        _ => String::new(),
    };
    format!(
        "{} {}-{}[{}{rack}]{marker} {}",
        datetime(l.at),
        l.stack,
        l.service,
        mode.apply(&l.instance),
        mode.apply(l.text.trim_end_matches(['\r', '\n']))
    )
}

/// How long `mesh logs -f` keeps trying to reach the control plane after the stream broke: a
/// restart takes seconds, an upgrade of the binary a little longer.
const RECONNECT_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// The pause between attempts: quick enough to lose little time, slow enough not to hammer a
/// control plane that is starting.
const RECONNECT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// `mesh logs`: the environment's instance output, printed as it arrives. Following survives a
/// control plane restart: the stream is picked up again after the last line printed.
pub async fn logs(ctx: &Ctx, args: LogsArgs) -> Result<()> {
    if let Some(s) = &args.since {
        mesh_types::schedule::parse_duration(s).map_err(|e| anyhow!("--since: {e}"))?;
    }
    let target = ctx.target()?;
    let env = target.env()?;
    let query = LogQuery {
        since: args.since,
        after: None,
        stack: target.stack_flag.clone(),
        service: args.service,
        instance: args.instance,
        follow: args.follow,
    };
    let mode = Mode::from_raw_flag(args.raw);
    let client = ctx.client()?;
    // Lines name their rack when the environment runs on several.
    let racks = match client.environment(env).await {
        Ok(d) => d.environment.racks.len() + d.environment.leaving.len() > 1,
        Err(_) => false,
    };
    let mut lines = client.logs(env, &query).await?;
    let mut last: Option<i64> = None;
    loop {
        let why = match lines.next_line().await {
            Ok(Some(line)) => {
                last = line_id(&line).or(last);
                print_log_line(ctx, mode, racks, line);
                continue;
            }
            Ok(None) if !args.follow => return Ok(()),
            Err(e) if !args.follow => return Err(e.into()),
            Ok(None) => "the control plane ended the stream".to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "mesh: lost the log stream ({why}); reconnecting for up to {}s",
            RECONNECT_FOR.as_secs()
        );
        lines = reconnect(&client, env, &resume(&query, last)).await?;
        eprintln!("mesh: reconnected; following again");
    }
}

fn print_log_line(ctx: &Ctx, mode: Mode, racks: bool, line: String) {
    if ctx.json() {
        print(match mode {
            Mode::Raw => line,
            Mode::Escaped => sanitize::json_line(&line),
        });
        return;
    }
    match serde_json::from_str::<LogLine>(&line) {
        Ok(l) => print(log_line(&l, mode, racks)),
        Err(_) => print(mode.apply(&line)),
    }
}

/// The id the API gives each line, the cursor to resume after.
fn line_id(line: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    serde_json::from_str::<Id>(line).ok().map(|i| i.id)
}

/// The query that picks a broken follow up again: after the last line printed, or, if none was,
/// as first asked.
fn resume(query: &LogQuery, last: Option<i64>) -> LogQuery {
    match last {
        Some(id) => LogQuery {
            since: None,
            after: Some(id),
            ..query.clone()
        },
        None => query.clone(),
    }
}

/// Whether an error may pass once the control plane is back: nothing answered, the connection
/// broke, or a proxy in front answered for a control plane that is away.
fn worth_retrying(e: &mesh_client::Error) -> bool {
    match e {
        mesh_client::Error::Connect { .. } | mesh_client::Error::Other(_) => true,
        mesh_client::Error::Api { status, .. } => *status >= 500,
    }
}

async fn reconnect(
    client: &mesh_client::Client,
    env: &str,
    query: &LogQuery,
) -> Result<mesh_client::JsonLines> {
    let deadline = tokio::time::Instant::now() + RECONNECT_FOR;
    loop {
        tokio::time::sleep(RECONNECT_EVERY).await;
        match client.logs(env, query).await {
            Ok(lines) => return Ok(lines),
            Err(e) if worth_retrying(&e) && tokio::time::Instant::now() < deadline => {}
            Err(e) if worth_retrying(&e) => {
                return Err(anyhow!(
                    "the control plane did not come back within {}s ({e}); run `mesh logs -f` \
                     again once it is up",
                    RECONNECT_FOR.as_secs()
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_follow_resumes_after_the_last_line_printed() {
        let asked = LogQuery {
            since: Some("5m".into()),
            service: Some("web".into()),
            follow: true,
            ..LogQuery::default()
        };
        let again = resume(&asked, Some(41));
        assert_eq!(again.after, Some(41));
        assert_eq!(again.since, None, "the cursor replaces the window");
        assert_eq!(again.service.as_deref(), Some("web"));
        assert!(again.follow);
        // Nothing printed yet: ask again as at first.
        assert_eq!(resume(&asked, None).since.as_deref(), Some("5m"));
        assert_eq!(resume(&asked, None).after, None);
    }

    #[test]
    fn the_cursor_is_the_lines_id() {
        assert_eq!(line_id(r#"{"id":7,"text":"hi","offset":3}"#), Some(7));
        assert_eq!(line_id(r#"{"text":"no id"}"#), None);
        assert_eq!(line_id("not json"), None);
    }

    #[test]
    fn only_an_absent_control_plane_is_waited_for() {
        let api = |status| mesh_client::Error::Api {
            status,
            code: mesh_types::error::ErrorCode::NotFound,
            message: String::new(),
        };
        assert!(worth_retrying(&mesh_client::Error::Connect {
            url: "u".into()
        }));
        assert!(worth_retrying(&mesh_client::Error::Other("broke".into())));
        assert!(worth_retrying(&api(503)));
        assert!(
            !worth_retrying(&api(404)),
            "a deleted environment ends the follow"
        );
        assert!(!worth_retrying(&api(401)));
    }
}
