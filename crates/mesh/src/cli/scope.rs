//! `--env` and `--stack`: declared only on the commands they mean something to, so `mesh up
//! --help` or `mesh rack --help` does not offer them, and clap refuses them after such a command.
//! Each command's flags are merged here with the older spelling before the command (`mesh -e shop
//! config list`) and with `MESH_ENV` / `MESH_STACK`, in that order of precedence. Before the
//! command they act like the variables: taken where they mean something and ignored elsewhere,
//! so a script that puts them in front of every command keeps working.

use anyhow::{Result, bail};
use clap::Args;

/// `--env` and `--stack`, on the commands that act on a stack or filter by one.
#[derive(Debug, Clone, Default, Args)]
pub struct StackTarget {
    /// Environment to act on [default: $MESH_ENV, else the one in .mesh/link.toml]
    #[arg(short = 'e', long = "env", global = true, value_name = "ENV")]
    pub env: Option<String>,
    /// Stack to act on [default: $MESH_STACK, else the one in .mesh/link.toml]
    #[arg(short = 's', long = "stack", global = true, value_name = "STACK")]
    pub stack: Option<String>,
}

/// `--env` alone, on the commands that act on a whole environment.
#[derive(Debug, Clone, Default, Args)]
pub struct EnvTarget {
    /// Environment to act on [default: $MESH_ENV, else the one in .mesh/link.toml]
    #[arg(short = 'e', long = "env", global = true, value_name = "ENV")]
    pub env: Option<String>,
}

/// What a command takes: `None` for commands that act on neither (roles, racks, providers...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    None,
    /// One environment (or, for `mesh token create`, several).
    Env,
    /// An environment and a stack.
    EnvStack,
}

/// The flags one invocation gave, as its command declared them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub env: Vec<String>,
    pub stack: Option<String>,
}

impl From<&StackTarget> for Given {
    fn from(t: &StackTarget) -> Self {
        Given {
            env: t.env.iter().cloned().collect(),
            stack: t.stack.clone(),
        }
    }
}

impl From<&EnvTarget> for Given {
    fn from(t: &EnvTarget) -> Self {
        Given {
            env: t.env.iter().cloned().collect(),
            stack: None,
        }
    }
}

/// The environment(s) and stack a command acts on, before the link file is consulted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub env: Vec<String>,
    pub stack: Option<String>,
}

fn non_empty(v: impl IntoIterator<Item = String>) -> Vec<String> {
    v.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Merges the flags given after the command, those given before it (the older spelling) and
/// the environment variables: a flag after the command wins, then one before it, then the
/// variable. A command that takes neither gets neither, and one on a whole environment no stack.
pub fn merge(
    scope: Scope,
    after: Given,
    before: Given,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Flags> {
    let (after_env, before_env) = (non_empty(after.env), non_empty(before.env));
    let after_stack = after.stack.filter(|s| !s.is_empty());
    let before_stack = before.stack.filter(|s| !s.is_empty());
    if scope == Scope::None {
        return Ok(Flags::default());
    }
    let mut env = after_env;
    env.extend(before_env);
    if env.is_empty() {
        env = non_empty(var("MESH_ENV"));
    }
    let stack = match scope {
        Scope::EnvStack => after_stack
            .or(before_stack)
            .or_else(|| var("MESH_STACK").filter(|s| !s.is_empty())),
        _ => None,
    };
    Ok(Flags { env, stack })
}

impl Flags {
    /// The one `--env` of a command that acts on one environment.
    pub fn one_env(&self) -> Result<Option<String>> {
        match self.env.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => bail!(
                "--env was given {} times; this command acts on one environment (only `mesh \
                 token create` takes several)",
                many.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(env: &[&str], stack: Option<&str>) -> Given {
        Given {
            env: env.iter().map(|s| s.to_string()).collect(),
            stack: stack.map(str::to_string),
        }
    }

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    fn vars(name: &str) -> Option<String> {
        match name {
            "MESH_ENV" => Some("from-var".into()),
            "MESH_STACK" => Some("stack-var".into()),
            _ => None,
        }
    }

    #[test]
    fn a_flag_after_the_command_wins_then_before_then_the_variable() {
        let f = merge(
            Scope::EnvStack,
            given(&["a"], Some("s")),
            Given::default(),
            &vars,
        )
        .unwrap();
        assert_eq!(f.env, ["a"]);
        assert_eq!(f.stack.as_deref(), Some("s"));
        let f = merge(
            Scope::EnvStack,
            Given::default(),
            given(&["b"], Some("t")),
            &vars,
        )
        .unwrap();
        assert_eq!((f.env, f.stack.as_deref()), (vec!["b".into()], Some("t")));
        let f = merge(Scope::EnvStack, Given::default(), Given::default(), &vars).unwrap();
        assert_eq!(
            (f.env, f.stack.as_deref()),
            (vec!["from-var".into()], Some("stack-var"))
        );
        let f = merge(
            Scope::EnvStack,
            Given::default(),
            Given::default(),
            &no_vars,
        )
        .unwrap();
        assert_eq!(f, Flags::default());
    }

    #[test]
    fn before_the_command_they_are_ignored_where_they_mean_nothing_like_the_variables() {
        let f = merge(
            Scope::None,
            Given::default(),
            given(&["shop"], Some("app")),
            &vars,
        )
        .unwrap();
        assert_eq!(
            f,
            Flags::default(),
            "mesh -e shop up acts on no environment"
        );
        let f = merge(
            Scope::Env,
            Given::default(),
            given(&["shop"], Some("app")),
            &vars,
        )
        .unwrap();
        assert_eq!(f.env, ["shop"]);
        assert_eq!(f.stack, None, "an environment command takes no stack");
        let f = merge(Scope::Env, given(&["shop"], None), Given::default(), &vars).unwrap();
        assert_eq!(f.stack, None, "MESH_STACK means nothing to an environment");
    }

    #[test]
    fn several_environments_only_where_asked_for() {
        let f = merge(
            Scope::Env,
            given(&["shop", "staging"], None),
            given(&["dev"], None),
            &vars,
        )
        .unwrap();
        assert_eq!(f.env, ["shop", "staging", "dev"]);
        assert!(f.one_env().is_err());
        let f = merge(
            Scope::EnvStack,
            given(&["", "shop"], None),
            Given::default(),
            &no_vars,
        )
        .unwrap();
        assert_eq!(
            f.one_env().unwrap().as_deref(),
            Some("shop"),
            "empty flags ignored"
        );
    }
}
