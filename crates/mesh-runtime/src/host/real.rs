//! The real edges: `tokio::process` for programs, `nix` for mounts.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::{Cmd, CmdOutput, CommandRunner, Sys};
use crate::shim::{ShimArgs, ShimCommand, ShimReport};

/// How long `runc run` may take before the shim is given up on. It is ~50 ms on an idle
/// machine; minutes mean something is stuck.
const SHIM_REPORT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone, Copy)]
pub struct RealRunner;

#[async_trait]
impl CommandRunner for RealRunner {
    async fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn()?;
        if let (Some(input), Some(mut pipe)) = (&cmd.stdin, child.stdin.take()) {
            pipe.write_all(input).await?;
            drop(pipe);
        }
        let out = child.wait_with_output().await?;
        Ok(CmdOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn start_shim(
        &self,
        shim: &ShimCommand,
        args: &ShimArgs,
        shim_log: &Path,
    ) -> io::Result<ShimReport> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(shim_log)?;
        let mut child = Command::new(&shim.program)
            .args(&shim.args)
            .args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            // The shim outlives the agent on purpose; tokio reaps it if it ends first.
            .kill_on_drop(false)
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        match tokio::time::timeout(SHIM_REPORT_TIMEOUT, read).await {
            Ok(Ok(0)) => Ok(ShimReport::Failed(format!(
                "the shim exited without a report; see {}",
                shim_log.display()
            ))),
            Ok(Ok(_)) => Ok(ShimReport::parse(&line)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(ShimReport::Failed(format!(
                "no report from the shim within {} s; see {}",
                SHIM_REPORT_TIMEOUT.as_secs(),
                shim_log.display()
            ))),
        }
    }
}

/// Runs every program inside another network namespace (`nsenter --net=<path>`), so a test
/// can give the runtime a private "host" namespace where forwarding and NAT may be switched
/// on without touching the real host. The mount namespace is left alone, unlike
/// `ip netns exec`, which remounts `/sys` and so hides the cgroup hierarchies from `runc`.
#[derive(Debug, Clone)]
pub struct InNetns<R> {
    pub netns: PathBuf,
    pub inner: R,
}

#[async_trait]
impl<R: CommandRunner> CommandRunner for InNetns<R> {
    async fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        let mut wrapped = Cmd::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(&cmd.program)
            .args(cmd.args.iter().cloned());
        wrapped.stdin = cmd.stdin.clone();
        self.inner.run(&wrapped).await
    }

    async fn start_shim(
        &self,
        shim: &ShimCommand,
        args: &ShimArgs,
        shim_log: &Path,
    ) -> io::Result<ShimReport> {
        // runc joins the netns named in config.json; its own namespace does not matter.
        self.inner.start_shim(shim, args, shim_log).await
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

impl Sys for RealSys {
    fn mount_overlay(
        &self,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> io::Result<()> {
        let lower: Vec<String> = lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(io::Error::from)
    }

    fn mount_tmpfs(&self, target: &Path, size_mb: u32) -> io::Result<()> {
        let data = format!("size={size_mb}m,mode=0700");
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match umount2(target, MntFlags::empty()) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH).map_err(io::Error::from),
            Err(e) => Err(e.into()),
        }
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}
