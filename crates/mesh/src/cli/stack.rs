//! `mesh create stack` and `mesh stack`: stacks, their release command and builder.

use anyhow::Result;
use clap::{Args, Subcommand};
use mesh_types::Name;
use mesh_types::api::{CreateStack, Formula, Stack, UpdateStack};

use super::Ctx;
use super::config::{self, ConfigCmd};
use crate::confirm;
use crate::output::{datetime, fields, or_dash, print, print_json, table};

#[derive(Debug, Clone, Copy, Args)]
pub struct FormulaArgs {
    /// Build with buildpacks (the default for new stacks)
    #[arg(long, conflicts_with = "dockerfile")]
    pub buildpack: bool,
    /// Build with the Dockerfile of the source directory
    #[arg(long)]
    pub dockerfile: bool,
}

impl FormulaArgs {
    pub fn formula(self) -> Option<Formula> {
        match (self.buildpack, self.dockerfile) {
            (true, _) => Some(Formula::Buildpack),
            (_, true) => Some(Formula::Dockerfile),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CreateCmd {
    /// Create a stack in the chosen environment
    Stack {
        /// Unique in its environment [default: the chosen stack]
        name: Option<String>,
        #[command(flatten)]
        formula: FormulaArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum StackCmd {
    /// List the stacks of the chosen environment
    #[command(visible_alias = "list")]
    Ls,
    /// Show a stack
    Show {
        /// [default: the chosen stack]
        name: Option<String>,
    },
    /// Delete a stack and its services, config and deployments
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Set the command run on every deployment before the rollout: `-- rails db:migrate`
    SetReleaseCommand {
        /// Remove the release command
        #[arg(long, conflicts_with = "command")]
        clear: bool,
        /// The command and its arguments, after `--`
        #[arg(last = true, value_name = "CMD", required_unless_present = "clear")]
        command: Vec<String>,
    },
    /// Run a built-in image (busybox, debian) until the stack has a build
    SetImage {
        /// busybox or debian
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        image: Option<String>,
        /// Remove the image
        #[arg(long)]
        clear: bool,
    },
    /// Buildpack settings of the stack
    #[command(subcommand)]
    Buildpacks(BuildpacksCmd),
    /// Config variables of the stack, injected into every service as environment variables
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Debug, Subcommand)]
pub enum BuildpacksCmd {
    /// List the external buildpacks the stack builds with, in order
    #[command(visible_alias = "ls")]
    List,
    /// Add an external buildpack (Heroku interface: bin/detect, bin/compile, bin/release): a
    /// directory on the control plane's machine, a `.tgz` URL, or a git URL with `#ref`
    Add {
        buildpack: String,
        /// Put it at this position (1 is first) instead of last
        #[arg(long, value_name = "N")]
        index: Option<usize>,
    },
    /// Remove a buildpack, given as listed or by its position (1 is first)
    Remove { buildpack: String },
    /// Set the builder image, such as heroku/buildpacks:20 (an empty string clears it)
    SetBuilder { image: String },
}

pub async fn create(ctx: &Ctx, cmd: CreateCmd) -> Result<()> {
    let CreateCmd::Stack { name, formula } = cmd;
    let target = ctx.target()?;
    let env = target.env()?;
    let name = match name {
        Some(n) => n,
        None => target.stack()?.to_string(),
    };
    let req = CreateStack {
        name: Name::parse_as("stack name", &name)?,
        formula: formula.formula(),
    };
    let stack = ctx.client()?.create_stack(env, &req).await?;
    if ctx.json() {
        print_json(&stack);
    } else {
        print(format!(
            "created stack {} in environment {} (formula {})",
            stack.name, stack.environment, stack.formula
        ));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: StackCmd) -> Result<()> {
    let target = ctx.target()?;
    match cmd {
        StackCmd::Ls => {
            let env = target.env()?;
            let stacks = ctx.client()?.list_stacks(env).await?;
            if ctx.json() {
                print_json(&stacks);
            } else if stacks.is_empty() {
                print(format!(
                    "no stacks in environment {env}: create one with `mesh create stack NAME`"
                ));
            } else {
                print(stack_table(&stacks));
            }
        }
        StackCmd::Show { name } => {
            let env = target.env()?;
            let name = match name {
                Some(n) => n,
                None => target.stack()?.to_string(),
            };
            let s = ctx.client()?.stack(env, &name).await?;
            if ctx.json() {
                print_json(&s);
            } else {
                print(fields(&[
                    ("stack", s.name.to_string()),
                    ("environment", s.environment.to_string()),
                    ("formula", s.formula.to_string()),
                    ("deployment", or_dash(s.current_deployment)),
                    ("release command", or_dash(s.release_command)),
                    ("builder", or_dash(s.builder)),
                    ("image", or_dash(s.image)),
                    ("created", datetime(s.created_at)),
                    ("updated", datetime(s.updated_at)),
                ]));
            }
        }
        StackCmd::Delete { name, yes } => {
            let env = target.env()?;
            confirm::deletion(
                "stack",
                &name,
                " with its services, config and deployments",
                yes,
            )?;
            ctx.client()?.delete_stack(env, &name).await?;
            if !ctx.json() {
                print(format!("deleted stack {name} from environment {env}"));
            }
        }
        StackCmd::SetReleaseCommand { clear, command } => {
            let (env, stack) = target.env_stack()?;
            let cmd = if clear {
                String::new()
            } else {
                command.join(" ")
            };
            let req = UpdateStack {
                release_command: Some(cmd),
                ..UpdateStack::default()
            };
            let s = ctx.client()?.update_stack(env, stack, &req).await?;
            if ctx.json() {
                print_json(&s);
            } else {
                match &s.release_command {
                    Some(c) => print(format!("release command of stack {}: {c}", s.name)),
                    None => print(format!("stack {} has no release command now", s.name)),
                }
            }
        }
        StackCmd::SetImage { image, clear } => {
            let (env, stack) = target.env_stack()?;
            let req = UpdateStack {
                image: Some(if clear {
                    String::new()
                } else {
                    image.unwrap_or_default()
                }),
                ..UpdateStack::default()
            };
            let s = ctx.client()?.update_stack(env, stack, &req).await?;
            if ctx.json() {
                print_json(&s);
            } else {
                match &s.image {
                    Some(i) => print(format!("stack {} runs image {i}", s.name)),
                    None => print(format!("stack {} has no image now", s.name)),
                }
            }
        }
        StackCmd::Buildpacks(
            cmd @ (BuildpacksCmd::List | BuildpacksCmd::Add { .. } | BuildpacksCmd::Remove { .. }),
        ) => {
            let (env, stack) = target.env_stack()?;
            let client = ctx.client()?;
            let mut list = client.stack(env, stack).await?.buildpacks;
            let changed = match cmd {
                BuildpacksCmd::Add { buildpack, index } => {
                    if list.contains(&buildpack) {
                        anyhow::bail!("stack {stack} already builds with {buildpack}");
                    }
                    let at = index
                        .map(|i| i.clamp(1, list.len() + 1) - 1)
                        .unwrap_or(list.len());
                    list.insert(at, buildpack);
                    true
                }
                BuildpacksCmd::Remove { buildpack } => {
                    let at = match buildpack.parse::<usize>() {
                        Ok(i) if (1..=list.len()).contains(&i) => i - 1,
                        _ => list.iter().position(|b| b == &buildpack).ok_or_else(|| {
                            anyhow::anyhow!("stack {stack} does not build with {buildpack}; see `mesh stack buildpacks list`")
                        })?,
                    };
                    list.remove(at);
                    true
                }
                _ => false,
            };
            if changed {
                let req = UpdateStack {
                    buildpacks: Some(list.clone()),
                    ..UpdateStack::default()
                };
                list = client.update_stack(env, stack, &req).await?.buildpacks;
            }
            if ctx.json() {
                print_json(&list);
            } else if list.is_empty() {
                print(format!(
                    "stack {stack} uses the built-in buildpacks (detected from the source)"
                ));
            } else {
                for (i, b) in list.iter().enumerate() {
                    print(format!("{}. {b}", i + 1));
                }
            }
        }
        StackCmd::Buildpacks(BuildpacksCmd::SetBuilder { image }) => {
            let (env, stack) = target.env_stack()?;
            let req = UpdateStack {
                builder: Some(image),
                ..UpdateStack::default()
            };
            let s = ctx.client()?.update_stack(env, stack, &req).await?;
            if ctx.json() {
                print_json(&s);
            } else {
                match &s.builder {
                    Some(b) => print(format!("builder of stack {}: {b}", s.name)),
                    None => print(format!("stack {} uses the default builder now", s.name)),
                }
            }
        }
        StackCmd::Config(cmd) => config::run(ctx, cmd).await?,
    }
    Ok(())
}

fn stack_table(stacks: &[Stack]) -> String {
    let rows = stacks
        .iter()
        .map(|s| {
            vec![
                s.name.to_string(),
                s.formula.to_string(),
                or_dash(s.current_deployment),
                or_dash(
                    s.release_command
                        .as_deref()
                        .map(|c| crate::output::cell(c, 40)),
                ),
                or_dash(s.builder.as_deref()),
                or_dash(s.image.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "FORMULA",
            "DEPLOYMENT",
            "RELEASE COMMAND",
            "BUILDER",
        ],
        rows,
    )
}
