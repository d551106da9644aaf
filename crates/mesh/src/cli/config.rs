//! `mesh config`, `mesh stack config` and `mesh svc config`: config variables, with region and
//! rack overrides.

use std::io::Read;

use anyhow::Result;
use clap::{Args, Subcommand};
use mesh_types::Name;
use mesh_types::config::{ConfigChange, ConfigVar, ResolvedConfig};

use super::Ctx;
use crate::kv::{self, ValueArgs};
use crate::output::{cell, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// List the stack's variables (KEY, VALUE, SCOPE), overrides and service ones included
    #[command(visible_alias = "ls")]
    List,
    /// Set variables: KEY=VALUE..., --file KEY=PATH, --stdin KEY=-
    Set(SetArgs),
    /// Remove variables
    Unset(UnsetArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Variables to set
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Read the value of KEY from a file, one final line break removed (repeatable)
    #[arg(long = "file", value_name = "KEY=PATH")]
    pub files: Vec<String>,
    /// Read the value of KEY from standard input, one final line break removed
    #[arg(long, value_name = "KEY=-")]
    pub stdin: Option<String>,
    #[command(flatten)]
    pub scope: OverrideArgs,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Variables to remove
    #[arg(value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub scope: OverrideArgs,
}

#[derive(Debug, Args)]
pub struct OverrideArgs {
    /// Make it an override for the racks of this region only
    #[arg(long, value_name = "REGION", conflicts_with = "rack")]
    pub region: Option<String>,
    /// Make it an override for this rack only
    #[arg(long, value_name = "RACK")]
    pub rack: Option<String>,
}

impl OverrideArgs {
    fn names(&self) -> Result<(Option<Name>, Option<Name>)> {
        let region = self
            .region
            .as_deref()
            .map(|r| Name::parse_as("region name", r))
            .transpose()?;
        let rack = self
            .rack
            .as_deref()
            .map(|r| Name::parse_as("rack name", r))
            .transpose()?;
        Ok((region, rack))
    }

    pub fn describe(&self) -> String {
        match (&self.region, &self.rack) {
            (Some(r), _) => format!(" (override for region {r})"),
            (_, Some(r)) => format!(" (override for rack {r})"),
            _ => String::new(),
        }
    }
}

fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    let path = kv::expand_home(&path.to_string_lossy());
    std::fs::read_to_string(path)
}

fn read_stdin() -> std::io::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// The change `config set` asks for.
pub fn set_change(args: &SetArgs) -> Result<ConfigChange> {
    let values = ValueArgs {
        pairs: &args.pairs,
        files: &args.files,
        stdin: args.stdin.as_deref(),
    };
    let set = kv::collect_config(&values, &read_file, &mut read_stdin)?;
    let (region, rack) = args.scope.names()?;
    Ok(ConfigChange {
        set,
        unset: Vec::new(),
        region,
        rack,
    })
}

/// The change `config unset` asks for.
pub fn unset_change(args: &UnsetArgs) -> Result<ConfigChange> {
    let (region, rack) = args.scope.names()?;
    Ok(ConfigChange {
        set: Default::default(),
        unset: kv::parse_keys(&args.keys)?,
        region,
        rack,
    })
}

pub fn print_vars(ctx: &Ctx, vars: &[ConfigVar], empty: &str) {
    if ctx.json() {
        print_json(vars);
    } else if vars.is_empty() {
        print(empty);
    } else {
        let rows = vars
            .iter()
            .map(|v| vec![v.key.to_string(), cell(&v.value, 60), v.scope.describe()])
            .collect();
        print(table(&["KEY", "VALUE", "SCOPE"], rows));
    }
}

/// After a change: the keys set or unset (never the values), or the API's JSON.
pub fn print_change(ctx: &Ctx, change: &ConfigChange, vars: &[ConfigVar], on: &str, scope: &str) {
    if ctx.json() {
        print_json(vars);
        return;
    }
    if !change.set.is_empty() {
        let keys: Vec<String> = change.set.keys().map(|k| k.to_string()).collect();
        print(format!("set {} on {on}{scope}", keys.join(", ")));
    }
    if !change.unset.is_empty() {
        let keys: Vec<String> = change.unset.iter().map(|k| k.to_string()).collect();
        print(format!("unset {} on {on}{scope}", keys.join(", ")));
    }
}

pub fn print_resolved(ctx: &Ctx, r: &ResolvedConfig) {
    if ctx.json() {
        print_json(r);
        return;
    }
    print(format!(
        "environment of service {} on rack {} (region {}):",
        r.service, r.rack, r.region
    ));
    let rows = r
        .vars
        .iter()
        .map(|(k, v)| vec![k.clone(), cell(&v.value, 60), v.from.clone()])
        .collect();
    print(table(&["KEY", "VALUE", "FROM"], rows));
}

/// `mesh config ...` and `mesh stack config ...`: on the chosen stack.
pub async fn run(ctx: &Ctx, cmd: ConfigCmd) -> Result<()> {
    let target = ctx.target()?;
    let (env, stack) = target.env_stack()?;
    let on = format!("stack {stack}");
    match cmd {
        ConfigCmd::List => {
            let vars = ctx.client()?.stack_config(env, stack).await?;
            print_vars(
                ctx,
                &vars,
                &format!(
                    "no config variables in stack {stack}: set one with `mesh config set KEY=VALUE`"
                ),
            );
        }
        ConfigCmd::Set(args) => {
            let change = set_change(&args)?;
            let vars = ctx
                .client()?
                .change_stack_config(env, stack, &change)
                .await?;
            print_change(ctx, &change, &vars, &on, &args.scope.describe());
        }
        ConfigCmd::Unset(args) => {
            let change = unset_change(&args)?;
            let vars = ctx
                .client()?
                .change_stack_config(env, stack, &change)
                .await?;
            print_change(ctx, &change, &vars, &on, &args.scope.describe());
        }
    }
    Ok(())
}
