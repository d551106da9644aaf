//! `mesh run -- CMD` (a one-off instance of the stack) and `mesh exec INSTANCE -- CMD`.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use mesh_types::agent::LogStream;
use mesh_types::api::{ExecRequest, RunEvent, RunRequest};
use mesh_types::{InstanceSize, Name};

use super::Ctx;
use crate::output::print_json;
use crate::sanitize::{self, Mode};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Use this service's config (and port) as well as the stack's
    #[arg(long, value_name = "SERVICE")]
    service: Option<String>,
    /// The instance size (nano, micro, small, medium, large, xlarge) [default: small]
    #[arg(long, value_name = "SIZE")]
    size: Option<InstanceSize>,
    /// Run on this rack of the environment [default: its first rack whose server is not lost]
    #[arg(long, value_name = "RACK")]
    rack: Option<String>,
    /// Print the command's control characters (escape sequences) as sent, not escaped
    #[arg(long)]
    raw: bool,
    /// The command, run through /bin/sh -c
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The instance (see `mesh instances`)
    #[arg(value_name = "INSTANCE")]
    instance: String,
    /// Print the command's control characters (escape sequences) as sent, not escaped
    #[arg(long)]
    raw: bool,
    /// The command and its arguments, run as given (no shell)
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The exit code of the command, as this process's.
fn exit_with(code: Option<i32>) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code.unwrap_or(1).clamp(0, 255));
}

/// Runs a one-off instance, streams its output, and exits with its exit code.
pub async fn run(ctx: &Ctx, args: RunArgs) -> Result<()> {
    let target = ctx.target()?;
    let (env, stack) = (target.env()?, target.stack()?);
    let service = args.service.as_deref().map(Name::parse).transpose()?;
    let rack = args.rack.as_deref().map(Name::parse).transpose()?;
    let req = RunRequest {
        command: args.command.join(" "),
        service,
        size: args.size,
        rack,
    };
    let mode = Mode::from_raw_flag(args.raw);
    let mut lines = ctx.client()?.run(env, stack, &req).await?;
    while let Some(line) = lines.next_line().await? {
        let event: RunEvent = serde_json::from_str(&line)
            .map_err(|e| anyhow!("unexpected answer from the API: {e}"))?;
        if ctx.json() {
            match mode {
                Mode::Raw => println!("{line}"),
                Mode::Escaped => println!("{}", sanitize::json_line(&line)),
            }
        }
        match event {
            RunEvent::Started { instance } => {
                if !ctx.json() {
                    eprintln!("running as instance {}", mode.apply(&instance));
                }
            }
            RunEvent::Output { line } => {
                if ctx.json() {
                    continue;
                }
                match line.stream {
                    LogStream::Stdout => println!("{}", mode.apply(&line.text)),
                    LogStream::Stderr => eprintln!("{}", mode.apply(&line.text)),
                    LogStream::System => {}
                }
            }
            RunEvent::Exit { code, error } => {
                if let Some(e) = error {
                    eprintln!("error: {}", mode.apply(&e));
                }
                exit_with(code);
            }
        }
    }
    bail!("the run's answer ended before its exit code; see `mesh logs` for its output")
}

/// Runs a command in a running instance; prints its output and exits with its exit code.
pub async fn exec(ctx: &Ctx, args: ExecArgs) -> Result<()> {
    let target = ctx.target()?;
    let env = target.env()?;
    let result = ctx
        .client()?
        .exec(
            env,
            &args.instance,
            &ExecRequest {
                command: args.command,
            },
        )
        .await?;
    if ctx.json() {
        print_json(&result);
        return Ok(());
    }
    let mode = Mode::from_raw_flag(args.raw);
    print!("{}", mode.apply(&result.stdout));
    eprint!("{}", mode.apply(&result.stderr));
    if let Some(e) = result.error {
        bail!("{}", mode.apply(&e));
    }
    exit_with(result.exit_code)
}
