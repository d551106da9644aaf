//! The `runc` command lines the runtime uses besides `run` (which the shim does), and the
//! parsing of what `runc state` and `runc list` print.
//!
//! Every call passes `--root`, a state directory inside the runtime's data directory, so
//! `runc list` shows this runtime's containers only and two runtimes never see each other's.

use std::path::PathBuf;

use serde::Deserialize;

use crate::host::Cmd;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runc {
    pub program: PathBuf,
    pub root: PathBuf,
}

/// A container's state as runc sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuncState {
    pub id: String,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    #[serde(default)]
    pub pid: u32,
}

impl RuncState {
    /// Paused or created containers still hold their processes: "alive" to the agent.
    pub fn is_alive(&self) -> bool {
        self.status != "stopped" && self.pid != 0
    }
}

impl Runc {
    fn cmd(&self) -> Cmd {
        Cmd::new(self.program.to_string_lossy())
            .arg("--root")
            .arg(self.root.to_string_lossy())
    }

    pub fn state(&self, id: &str) -> Cmd {
        self.cmd().args(["state", id])
    }

    pub fn list(&self) -> Cmd {
        self.cmd().args(["list", "--format", "json"])
    }

    /// Signals the container's init only: it is the instance's job to pass it on, as with
    /// Docker. (A signal the init has no handler for is ignored by the kernel, which is why
    /// `stop` ends with SIGKILL.)
    pub fn kill(&self, id: &str, signal: &str) -> Cmd {
        self.cmd().args(["kill", id, signal])
    }

    pub fn delete_force(&self, id: &str) -> Cmd {
        self.cmd().args(["delete", "--force", id])
    }

    /// Runs `args` in the container with its process settings (user, capabilities, env,
    /// limits) from config.json, stdio captured by the caller. runc stops parsing its own
    /// flags at the container id, so the command needs no `--` (runc 1.1 would run "--").
    pub fn exec(&self, id: &str, args: &[String]) -> Cmd {
        self.cmd().args(["exec", id]).args(args.iter().cloned())
    }
}

/// `runc state` output, or `None` for "container does not exist".
pub fn parse_state(stdout: &str) -> Option<RuncState> {
    serde_json::from_str(stdout).ok()
}

/// `runc list --format json` prints `null` when there are none.
pub fn parse_list(stdout: &str) -> Vec<RuncState> {
    serde_json::from_str::<Option<Vec<RuncState>>>(stdout)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// runc's words for "no such container", in every command's error output.
pub fn is_missing(stderr: &str) -> bool {
    stderr.contains("does not exist") || stderr.contains("not exist")
}

/// runc's words for "it already stopped" from `kill`.
pub fn is_not_running(stderr: &str) -> bool {
    stderr.contains("not running") || stderr.contains("process already finished")
}

#[cfg(test)]
mod tests;
