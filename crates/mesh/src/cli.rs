//! The command tree and what every command shares: the target, the API client, `--json`.

mod access;
mod cert;
mod config;
mod deploy;
mod endpoint;
mod env;
mod provider;
mod rack;
mod replace;
mod run;
mod scope;
mod ship;
mod stack;
mod svc;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use mesh_client::Client;

use crate::role;
use crate::settings;
use crate::target::{self, Target};

pub use scope::{EnvTarget, StackTarget};
use scope::{Flags, Given, Scope};

/// Widemesh: deploy and run apps on servers you own.
///
/// `mesh up` starts the whole platform on this machine and logs this user's CLI in to it;
/// every other command talks to the API.
#[derive(Debug, Parser)]
#[command(name = "mesh", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print the API's JSON instead of tables and text
    #[arg(long, global = true)]
    pub json: bool,
    /// `mesh -e ENV COMMAND`: --env before the command, still accepted for the commands that
    /// take it (see `scope`); hidden so that only those commands show it
    #[arg(
        short = 'e',
        long = "env",
        id = "env_before",
        hide = true,
        value_name = "ENV",
        action = clap::ArgAction::Append
    )]
    pub env_before: Vec<String>,
    /// `mesh -s STACK COMMAND`: --stack before the command, as --env above
    #[arg(
        short = 's',
        long = "stack",
        id = "stack_before",
        hide = true,
        value_name = "STACK"
    )]
    pub stack_before: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform on this machine (control plane and local rack) until stopped
    Up(role::UpArgs),
    /// Run the control plane alone
    Server(role::ServerArgs),
    /// Run an agent: one server of a rack, joining with the rack's token
    Agent(role::AgentArgs),
    /// Run an agent with the rack's edge router on (`mesh agent` listening on ports 80 and 443)
    Router(role::RouterArgs),
    /// Remove what a stopped agent made on this server: its instances (killed), networks,
    /// firewall table and cgroups (the ssh provider runs it when it deletes a server)
    #[command(hide = true)]
    AgentPurge(role::PurgeArgs),
    /// Point the CLI at a control plane: checks the token, then saves the URL and token
    Login(access::LoginArgs),
    /// Show who the CLI's token belongs to
    Whoami,
    /// Link this directory to an environment and stack (writes .mesh/link.toml)
    ///
    /// `mesh link --env ENV --stack STACK` writes .mesh/link.toml here; commands run in this
    /// directory or below use it when --env / --stack (MESH_ENV / MESH_STACK) are not given.
    /// The first successful `mesh deploy` writes it too.
    Link {
        #[command(flatten)]
        target: StackTarget,
    },
    /// Environments: network-isolated groups of stacks
    #[command(subcommand)]
    Env(env::EnvCmd),
    /// Create things (`mesh create stack`)
    Create {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: stack::CreateCmd,
    },
    /// Stacks: one version of source code plus shared config
    Stack {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: stack::StackCmd,
    },
    /// Config variables of the chosen stack (same as `mesh stack config`)
    Config {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
    /// Services: web services, workers and cron jobs of a stack
    #[command(visible_alias = "service")]
    Svc {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: svc::SvcCmd,
    },
    /// Services of the environment and their status
    Services {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: svc::ServicesCmd,
    },
    /// Endpoints: platform aliases and custom domains routing to services
    Endpoint {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: endpoint::EndpointCmd,
    },
    /// TLS certificates of the environment's endpoints
    #[command(visible_alias = "cert")]
    Certificate {
        #[command(flatten)]
        target: EnvTarget,
        #[command(subcommand)]
        cmd: cert::CertCmd,
    },
    /// Racks: groups of same-size servers of one provider in one region
    #[command(subcommand)]
    Rack(rack::RackCmd),
    /// Providers: credentials the platform creates servers with
    #[command(subcommand)]
    Provider(provider::ProviderCmd),
    /// Deployments of the chosen stack: v0, v1, ...
    Deployments {
        #[command(flatten)]
        target: StackTarget,
        #[command(subcommand)]
        cmd: deploy::DeploymentsCmd,
    },
    /// Build and release this directory to the chosen stack (created, with its environment,
    /// on a first deploy) and follow it until it answers
    Deploy {
        #[command(flatten)]
        target: StackTarget,
        #[command(flatten)]
        args: ship::DeployArgs,
    },
    /// Return the stack to an earlier deployment's image, as a new deployment
    Rollback {
        #[command(flatten)]
        target: StackTarget,
        #[command(flatten)]
        args: ship::RollbackArgs,
    },
    /// Show the output of the environment's instances
    Logs {
        #[command(flatten)]
        target: StackTarget,
        #[command(flatten)]
        args: deploy::LogsArgs,
    },
    /// List the running instances of the environment
    Instances {
        #[command(flatten)]
        target: StackTarget,
    },
    /// Run a command in a new one-off instance of the stack, with its config; exits with the
    /// command's exit code
    Run {
        #[command(flatten)]
        target: StackTarget,
        #[command(flatten)]
        args: run::RunArgs,
    },
    /// Run a command inside a running instance; exits with the command's exit code
    Exec {
        #[command(flatten)]
        target: StackTarget,
        #[command(flatten)]
        args: run::ExecArgs,
    },
    /// API tokens
    #[command(subcommand)]
    Token(access::TokenCmd),
    /// Show the audit log: who changed what
    Events(access::EventsArgs),
    /// Print a shell completion script (bash, zsh, fish, ...)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Roles log at info, client commands only at warn.
    pub fn is_role(&self) -> bool {
        matches!(
            self,
            Command::Up(_)
                | Command::Server(_)
                | Command::Agent(_)
                | Command::Router(_)
                | Command::AgentPurge(_)
        )
    }
}

impl Command {
    /// Which of `--env` / `--stack` the command takes and what it was given. The one place that
    /// says which commands act on an environment or a stack.
    fn scope(&self) -> (Scope, Given) {
        let stack = |t: &StackTarget| (Scope::EnvStack, Given::from(t));
        let env = |t: &EnvTarget| (Scope::Env, Given::from(t));
        let none = || (Scope::None, Given::default());
        match self {
            Command::Up(_) => none(),
            Command::Server(_) => none(),
            Command::Agent(_) => none(),
            Command::Router(_) => none(),
            Command::AgentPurge(_) => none(),
            Command::Login(_) => none(),
            Command::Whoami => none(),
            Command::Link { target } => stack(target),
            Command::Env(env::EnvCmd::Show { target, .. }) => env(target),
            Command::Env(_) => none(),
            Command::Create { target, .. } => stack(target),
            Command::Stack { target, .. } => stack(target),
            Command::Config { target, .. } => stack(target),
            Command::Svc { target, .. } => stack(target),
            Command::Services { target, .. } => stack(target),
            Command::Endpoint { target, .. } => stack(target),
            Command::Certificate { target, .. } => env(target),
            Command::Rack(_) => none(),
            Command::Provider(_) => none(),
            Command::Deployments { target, .. } => stack(target),
            Command::Deploy { target, .. } => stack(target),
            Command::Rollback { target, .. } => stack(target),
            Command::Logs { target, .. } => stack(target),
            Command::Instances { target } => stack(target),
            Command::Run { target, .. } => stack(target),
            Command::Exec { target, .. } => stack(target),
            Command::Token(access::TokenCmd::Create(args)) => (
                Scope::Env,
                Given {
                    env: args.env.clone(),
                    stack: None,
                },
            ),
            Command::Token(_) => none(),
            Command::Events(_) => none(),
            Command::Completions { .. } => none(),
        }
    }
}

/// What every client command needs, loaded on first use.
#[derive(Debug)]
pub struct Ctx {
    pub global: Global,
    /// `--env` / `--stack` as the command took them (see `scope`).
    pub flags: Flags,
    pub cwd: PathBuf,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Cli {
    /// The command's `--env` / `--stack`, merged with those given before it and the variables.
    pub fn flags(&self) -> Result<Flags> {
        let (scope, after) = self.command.scope();
        let before = Given {
            env: self.global.env_before.clone(),
            stack: self.global.stack_before.clone(),
        };
        scope::merge(scope, after, before, &env_var)
    }
}

impl Ctx {
    pub fn json(&self) -> bool {
        self.global.json
    }

    pub fn settings(&self) -> Result<settings::Resolved> {
        settings::resolve(&env_var)
    }

    pub fn client(&self) -> Result<Client> {
        self.settings()?.client()
    }

    /// The flags and the link file of the current directory.
    pub fn target(&self) -> Result<Target> {
        let link = target::find_link(&self.cwd)?.map(|(_, l)| l);
        Ok(Target {
            env_flag: self.flags.one_env()?,
            stack_flag: self.flags.stack.clone(),
            link,
        })
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot tell the current directory")?;
    let flags = cli.flags()?;
    let ctx = Ctx {
        global: cli.global,
        flags,
        cwd,
    };
    match cli.command {
        Command::Up(args) => role::up(args).await,
        Command::Server(args) => role::server(args).await,
        Command::Agent(args) => role::agent(args).await,
        Command::Router(args) => role::router(args).await,
        Command::AgentPurge(args) => role::purge(args).await,
        Command::Login(args) => access::login(&ctx, args).await,
        Command::Whoami => access::whoami(&ctx).await,
        Command::Link { .. } => link(&ctx).await,
        Command::Env(cmd) => env::run(&ctx, cmd).await,
        Command::Create { cmd, .. } => stack::create(&ctx, cmd).await,
        Command::Stack { cmd, .. } => stack::run(&ctx, cmd).await,
        Command::Config { cmd, .. } => config::run(&ctx, cmd).await,
        Command::Svc { cmd, .. } => svc::run(&ctx, cmd).await,
        Command::Services { cmd, .. } => svc::services(&ctx, cmd).await,
        Command::Endpoint { cmd, .. } => endpoint::run(&ctx, cmd).await,
        Command::Certificate { cmd, .. } => cert::run(&ctx, cmd).await,
        Command::Rack(cmd) => rack::run(&ctx, cmd).await,
        Command::Provider(cmd) => provider::run(&ctx, cmd).await,
        Command::Deployments { cmd, .. } => deploy::deployments(&ctx, cmd).await,
        Command::Deploy { args, .. } => ship::deploy(&ctx, args).await,
        Command::Rollback { args, .. } => ship::rollback(&ctx, args).await,
        Command::Logs { args, .. } => deploy::logs(&ctx, args).await,
        Command::Instances { .. } => deploy::instances(&ctx).await,
        Command::Run { args, .. } => run::run(&ctx, args).await,
        Command::Exec { args, .. } => run::exec(&ctx, args).await,
        Command::Token(cmd) => access::token(&ctx, cmd).await,
        Command::Events(args) => access::events(&ctx, args).await,
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "mesh", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// `mesh link`: checks the environment (and stack) exist, then writes the link file here.
async fn link(ctx: &Ctx) -> Result<()> {
    let env = ctx.flags.one_env()?.ok_or_else(|| {
        crate::failure::hinted(
            "`mesh link` needs an environment: pass --env ENV",
            "list environments with `mesh env ls`",
        )
    })?;
    let stack = ctx.flags.stack.clone();
    let client = ctx.client()?;
    let details = client.environment(&env).await?;
    let path = target::write_link(
        &ctx.cwd,
        &target::Link {
            environment: Some(env.clone()),
            stack: stack.clone(),
        },
    )?;
    if ctx.json() {
        crate::output::print_json(&serde_json::json!({
            "path": path, "environment": env, "stack": stack,
        }));
        return Ok(());
    }
    let what = match &stack {
        Some(s) => format!("environment {env}, stack {s}"),
        None => format!("environment {env}"),
    };
    crate::output::print(format!(
        "linked {} to {what} ({})",
        ctx.cwd.display(),
        path.display()
    ));
    if let Some(s) = &stack
        && !details.stacks.iter().any(|st| st.name.as_str() == s)
    {
        crate::output::print(format!(
            "note: stack {s} does not exist yet: create it with `mesh create stack`"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "cli/tests.rs"]
mod tests;
