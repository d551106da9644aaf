//! Which environment and stack a command acts on: `--env` / `--stack` (or `MESH_ENV` /
//! `MESH_STACK`), else the link file `.mesh/link.toml` of the current directory or its parents.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::failure::hinted;

/// The directory and file of a link, relative to the linked directory.
pub const LINK_DIR: &str = ".mesh";
pub const LINK_FILE: &str = "link.toml";

/// What a link file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// The nearest link file from `start` upwards, with where it was found.
pub fn find_link(start: &Path) -> Result<Option<(PathBuf, Link)>> {
    for dir in start.ancestors() {
        let path = dir.join(LINK_DIR).join(LINK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let link: Link = toml::from_str(&text).map_err(|e| {
            anyhow!(
                "the link file {} is not valid: {}",
                path.display(),
                e.message()
            )
        })?;
        return Ok(Some((path, link)));
    }
    Ok(None)
}

/// Writes `<dir>/.mesh/link.toml`, replacing any link there.
pub fn write_link(dir: &Path, link: &Link) -> Result<PathBuf> {
    let link_dir = dir.join(LINK_DIR);
    std::fs::create_dir_all(&link_dir)
        .with_context(|| format!("cannot create {}", link_dir.display()))?;
    let path = link_dir.join(LINK_FILE);
    let text = format!(
        "# written by `mesh link`: the environment and stack mesh commands use here\n{}",
        toml::to_string(link).context("cannot encode the link file")?
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The flags of one invocation and the link file they fall back to.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub env_flag: Option<String>,
    pub stack_flag: Option<String>,
    pub link: Option<Link>,
}

fn no_link_hint(what: &str, flag: &str) -> anyhow::Error {
    hinted(
        format!(
            "no {what} chosen: pass {flag}, or run this inside a directory linked with `mesh link`"
        ),
        "link this directory with `mesh link --env ENV --stack STACK`",
    )
}

impl Target {
    /// The environment: the flag, else the link's.
    pub fn env_opt(&self) -> Option<&str> {
        self.env_flag
            .as_deref()
            .or_else(|| self.link.as_ref()?.environment.as_deref())
    }

    pub fn env(&self) -> Result<&str> {
        self.env_opt()
            .ok_or_else(|| no_link_hint("environment", "--env"))
    }

    /// The stack: the flag, else the link's, but only when the link is for the same
    /// environment (a link's stack means nothing in another environment).
    pub fn stack_opt(&self) -> Option<&str> {
        if let Some(s) = self.stack_flag.as_deref() {
            return Some(s);
        }
        let link = self.link.as_ref()?;
        match (&self.env_flag, &link.environment) {
            (Some(flag), Some(linked)) if flag != linked => None,
            _ => link.stack.as_deref(),
        }
    }

    pub fn stack(&self) -> Result<&str> {
        self.stack_opt()
            .ok_or_else(|| no_link_hint("stack", "--stack"))
    }

    /// Both, for commands on one stack.
    pub fn env_stack(&self) -> Result<(&str, &str)> {
        Ok((self.env()?, self.stack()?))
    }
}

#[cfg(test)]
#[path = "target/tests.rs"]
mod tests;
