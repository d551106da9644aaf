//! The runtime's edges to the operating system, as two traits with a real implementation
//! ([`RealRunner`], [`RealSys`]) and a recording fake ([`FakeRunner`], [`FakeSys`]) that share
//! one [`Recorder`], so a unit test can assert the order of everything the runtime did.
//!
//! [`CommandRunner`] runs the programs that own their concern (`ip`, `nft`, `runc`, the shim,
//! `debootstrap`); [`Sys`] holds the few syscalls done in-process (mounts, cgroup directories,
//! reading `/proc`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::shim::{ShimArgs, ShimCommand, ShimReport};

mod fake;
mod real;

pub use fake::{FakeRunner, FakeSys, Recorder};
pub use real::{InNetns, RealRunner, RealSys};

/// A program invocation. Programs are looked up in `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// The command as one line, for logs, errors and fakes.
    pub fn line(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    /// `None` when a signal ended the program.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        CmdOutput {
            code: Some(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    pub fn failed(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        CmdOutput {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

#[async_trait]
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs to completion, capturing stdout and stderr. A non-zero exit is not an error here;
    /// see [`run_ok`].
    async fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput>;

    /// Starts the shim detached from the caller and waits for its one-line report: the
    /// container's pid, or why `runc` could not start it. The shim's own diagnostics go to
    /// `shim_log`.
    async fn start_shim(
        &self,
        shim: &ShimCommand,
        args: &ShimArgs,
        shim_log: &Path,
    ) -> io::Result<ShimReport>;
}

/// Runs `cmd` and turns a non-zero exit into [`Error::Command`], a missing program into
/// [`Error::MissingTool`].
pub async fn run_ok(runner: &dyn CommandRunner, cmd: &Cmd) -> Result<CmdOutput> {
    let out = run(runner, cmd).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(command_error(cmd, &out))
    }
}

/// Like [`run_ok`] but returns the output whatever the exit code; only a missing program or
/// an I/O failure is an error.
pub async fn run(runner: &dyn CommandRunner, cmd: &Cmd) -> Result<CmdOutput> {
    tracing::debug!(command = %cmd.line(), "run");
    runner
        .run(cmd)
        .await
        .map_err(|e| spawn_error(&cmd.program, e))
}

pub(crate) fn spawn_error(program: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::MissingTool {
            program: program.to_string(),
        }
    } else {
        Error::Io {
            context: format!("running {program}"),
            source: e,
        }
    }
}

pub(crate) fn command_error(cmd: &Cmd, out: &CmdOutput) -> Error {
    Error::Command {
        command: cmd.line(),
        status: match out.code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        },
        stderr: out.stderr_str(),
    }
}

/// Syscalls done in-process.
pub trait Sys: Send + Sync + fmt::Debug {
    /// Mounts an overlay at `target`; `lowers` are top first, as overlayfs wants them.
    fn mount_overlay(
        &self,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> io::Result<()>;

    fn mount_tmpfs(&self, target: &Path, size_mb: u32) -> io::Result<()>;

    /// Unmounts `target`, lazily if it is busy. Not mounted is not an error.
    fn unmount(&self, target: &Path) -> io::Result<()>;

    /// `rmdir`: for cgroup directories, which cannot be removed any other way.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    fn read_file(&self, path: &Path) -> io::Result<String>;

    fn exists(&self, path: &Path) -> bool;

    /// Names of a directory's entries (cgroup children).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
}

/// Mount points at or below `dir`, deepest first, from `/proc/self/mountinfo` text.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
