//! The shim: one small process per instance that starts the container and outlives the agent.
//!
//! Why it exists: `runc run --detach` leaves the container's init without a parent that cares,
//! so its exit status would go to PID 1 and be lost, and an agent restart must not lose it
//! either. Keeping `runc run` in the foreground instead would cost a Go process (~10 MB RSS) per
//! instance. So, like conmon or containerd-shim, a tiny monitor:
//! 1. leaves the agent's session (`setsid`) and marks itself a child subreaper;
//! 2. runs `runc run --detach` with the instance's log files as stdio (`terminal: false`, so
//!    runc passes them straight to the container: the agent tails plain files);
//! 3. reports `started <pid>` or `failed <why>` on its stdout, one line, then closes it;
//! 4. the container's init is re-parented to it when runc exits; it waits for it, reads the
//!    cgroup's OOM-kill counter, and writes the exit status to `exit.json` atomically.
//!
//! The binary is `mesh-runtime-shim` (`src/bin`); a program that embeds the runtime can also
//! dispatch to [`main`] itself and point [`ShimCommand`] at its own executable.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::ExitStatus;

/// How to start the shim: a program and the arguments that come before the shim's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ShimCommand {
    pub const BINARY: &'static str = "mesh-runtime-shim";

    pub fn new(program: impl Into<PathBuf>) -> Self {
        ShimCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// `mesh-runtime-shim` next to the running executable (or one directory up, where cargo
    /// puts binaries relative to tests and examples), else in `PATH`.
    pub fn locate() -> Result<Self> {
        let exe = std::env::current_exe().ok();
        let beside = exe
            .iter()
            .flat_map(|e| e.ancestors().skip(1).take(2))
            .map(|d| d.join(Self::BINARY));
        let in_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join(Self::BINARY));
        beside
            .chain(in_path)
            .find(|p| p.is_file())
            .map(ShimCommand::new)
            .ok_or_else(|| Error::MissingTool {
                program: format!(
                    "{} (build it with `cargo build -p mesh-runtime --bins`)",
                    Self::BINARY
                ),
            })
    }
}

/// Everything one shim needs; all paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    pub id: String,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub bundle: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub pid_file: PathBuf,
    pub exit_file: PathBuf,
    pub runc_log: PathBuf,
    /// `memory.oom_control` (cgroup v1) or `memory.events` (v2) of the instance's cgroup.
    pub oom_file: Option<PathBuf>,
}

const FLAGS: [&str; 10] = [
    "--id",
    "--runc",
    "--runc-root",
    "--bundle",
    "--stdout",
    "--stderr",
    "--pid-file",
    "--exit-file",
    "--runc-log",
    "--oom-file",
];

impl ShimArgs {
    pub fn to_args(&self) -> Vec<String> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut values = vec![
            self.id.clone(),
            s(&self.runc),
            s(&self.runc_root),
            s(&self.bundle),
            s(&self.stdout),
            s(&self.stderr),
            s(&self.pid_file),
            s(&self.exit_file),
            s(&self.runc_log),
        ];
        if let Some(oom) = &self.oom_file {
            values.push(s(oom));
        }
        FLAGS
            .iter()
            .zip(values)
            .flat_map(|(f, v)| [f.to_string(), v])
            .collect()
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut values: [Option<String>; 10] = Default::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let i = FLAGS
                .iter()
                .position(|f| *f == flag)
                .ok_or_else(|| format!("unknown argument {flag:?}"))?;
            values[i] = Some(it.next().ok_or_else(|| format!("{flag} needs a value"))?);
        }
        let [
            id,
            runc,
            runc_root,
            bundle,
            stdout,
            stderr,
            pid_file,
            exit_file,
            runc_log,
            oom,
        ] = values;
        let need = |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{flag} is required"));
        Ok(ShimArgs {
            id: need(id, "--id")?,
            runc: need(runc, "--runc")?.into(),
            runc_root: need(runc_root, "--runc-root")?.into(),
            bundle: need(bundle, "--bundle")?.into(),
            stdout: need(stdout, "--stdout")?.into(),
            stderr: need(stderr, "--stderr")?.into(),
            pid_file: need(pid_file, "--pid-file")?.into(),
            exit_file: need(exit_file, "--exit-file")?.into(),
            runc_log: need(runc_log, "--runc-log")?.into(),
            oom_file: oom.map(PathBuf::from),
        })
    }
}

/// The shim's one line on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimReport {
    Started { pid: u32 },
    Failed(String),
}

impl ShimReport {
    pub fn line(&self) -> String {
        match self {
            ShimReport::Started { pid } => format!("started {pid}\n"),
            ShimReport::Failed(why) => format!("failed {}\n", why.replace('\n', " ")),
        }
    }

    pub fn parse(line: &str) -> Self {
        let line = line.trim_end();
        if let Some(pid) = line.strip_prefix("started ")
            && let Ok(pid) = pid.parse()
        {
            return ShimReport::Started { pid };
        }
        match line.strip_prefix("failed ") {
            Some(why) => ShimReport::Failed(why.to_string()),
            None => ShimReport::Failed(format!("unexpected shim report {line:?}")),
        }
    }
}

/// `exit.json`: the status plus when the shim saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    #[serde(flatten)]
    pub status: ExitStatus,
    pub at_ms: i64,
}

/// The exit record, or `None` if the instance has not ended (as far as its shim knows).
pub fn read_exit(path: &Path) -> io::Result<Option<ExitRecord>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `oom_kill` counter of a v1 `memory.oom_control` or a v2 `memory.events` file.
pub fn oom_kills(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|v| v.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// `status` in the shell's convention.
pub fn exit_status(wait: WaitStatus) -> Option<ExitStatus> {
    match wait {
        WaitStatus::Exited(_, code) => Some(ExitStatus {
            code: Some(code),
            signal: None,
            oom_killed: false,
        }),
        WaitStatus::Signaled(_, sig, _) => Some(ExitStatus {
            code: Some(128 + sig as i32),
            signal: Some(sig as i32),
            oom_killed: false,
        }),
        _ => None,
    }
}

/// The shim's entry point; `args` excludes the program name.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match ShimArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mesh-runtime-shim: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-runtime-shim {}: {e}", args.id);
            ExitCode::FAILURE
        }
    }
}

fn report(r: &ShimReport) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(r.line().as_bytes())?;
    out.flush()
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// How often `runc create` is tried when it loses its state-storing race.
const CREATE_ATTEMPTS: u32 = 3;

fn run(a: &ShimArgs) -> io::Result<()> {
    // Out of the agent's session and process group: nothing aimed at the agent reaches us.
    let _ = nix::unistd::setsid();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        report(&ShimReport::Failed(format!(
            "cannot become a subreaper: {e}"
        )))?;
        return Err(e.into());
    }
    // `create` then `start`, not `run --detach`: runc stores the container's state while its
    // init waits to exec the command, so a command that ends at once cannot race it ("unable
    // to store init state").
    let runc = |args: &[&str]| -> io::Result<std::process::ExitStatus> {
        Command::new(&a.runc)
            .arg("--root")
            .arg(&a.runc_root)
            .arg("--log")
            .arg(&a.runc_log)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(open_log(&a.stdout)?)
            .stderr(open_log(&a.stderr)?)
            .status()
    };
    let bundle = a.bundle.to_string_lossy().into_owned();
    let pid_file = a.pid_file.to_string_lossy().into_owned();
    for (step, args) in [
        (
            "create",
            vec![
                "create",
                "--bundle",
                &bundle,
                "--pid-file",
                &pid_file,
                &a.id,
            ],
        ),
        ("start", vec!["start", &a.id]),
    ] {
        let mut attempt = 0;
        let status = loop {
            attempt += 1;
            let status = match runc(&args) {
                Ok(s) => s,
                Err(e) => {
                    report(&ShimReport::Failed(format!(
                        "cannot run {}: {e}",
                        a.runc.display()
                    )))?;
                    return Err(e);
                }
            };
            // runc 1.1 sometimes loses a race with its own init while storing its state; the
            // container never started, so it is removed and created again.
            let raced = !status.success()
                && step == "create"
                && attempt < CREATE_ATTEMPTS
                && last_runc_error(&a.runc_log)
                    .is_some_and(|e| e.contains("unable to store init state"));
            if !raced {
                break status;
            }
            let _ = runc(&["delete", "--force", &a.id]);
        };
        if !status.success() {
            let why = last_runc_error(&a.runc_log)
                .unwrap_or_else(|| format!("runc {step} exited with {status}"));
            report(&ShimReport::Failed(why.clone()))?;
            return Err(io::Error::other(why));
        }
    }
    let pid: i32 = std::fs::read_to_string(&a.pid_file)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    report(&ShimReport::Started { pid: pid as u32 })?;
    // Close the agent's pipe so it sees the end of the report even if it reads on.
    nix::unistd::dup2_stdout(File::open("/dev/null")?)?;
    // Only now: a blocked mask would have been inherited by runc and the container.
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    let _ = mask.thread_block();

    let mut status = wait_for(Pid::from_raw(pid));
    if let (Some(st), Some(oom)) = (status.as_mut(), &a.oom_file) {
        st.oom_killed = std::fs::read_to_string(oom)
            .map(|t| oom_kills(&t) > 0)
            .unwrap_or(false);
    }
    let record = ExitRecord {
        status: status.unwrap_or(ExitStatus::UNKNOWN),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    };
    let tmp = a.exit_file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&record).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, &a.exit_file)
}

/// Reaps children until the container's init is among them. If it never is (it was not
/// re-parented to us), falls back to watching for it to disappear; its status is then unknown.
fn wait_for(pid: Pid) -> Option<ExitStatus> {
    loop {
        match waitpid(None, None) {
            Ok(w) if w.pid() == Some(pid) => {
                if let Some(st) = exit_status(w) {
                    return Some(st);
                }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    while Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// runc's `--log-format json` lines look like `{"level":"error","msg":"...","time":"..."}`.
fn last_runc_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error" || v["level"] == "fatal")
            .then(|| v["msg"].as_str().map(str::to_string))?
    })
}

#[cfg(test)]
mod tests;
