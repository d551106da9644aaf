//! State, signals, stop, wait, exec, hosts updates and listing of existing instances.
//!
//! Where the truth is: whether the container runs comes from `runc state` (it checks the init
//! pid and its start time, so a recycled pid is not mistaken for the container); how it ended
//! comes from the shim's `exit.json`. The file appears right after runc reports the container
//! stopped, so a stopped container without one is given a moment before its status is
//! declared unknown (no shim saw it end: a reboot, or the shim was killed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, IoContext, Result};
use crate::host::{command_error, run};
use crate::hosts_file::{render_hosts, rewrite_in_place};
use crate::runc::{RuncState, is_missing, is_not_running, parse_list, parse_state};
use crate::shim::read_exit;
use crate::spec::{ExecOutput, ExitStatus, HostEntry, InstanceState, Status};
use crate::state::{InstanceRecord, list_dir, read_json, write_json};

use super::Inner;

/// How long a stopped container's shim gets to write its exit file.
const EXIT_FILE_GRACE: Duration = Duration::from_secs(1);
/// How long `stop` waits after SIGKILL; the kernel needs milliseconds, so this is a stuck host.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// `wait` polls the exit file with backoff up to this interval; it checks runc's view (a
/// process start) only every [`RUNC_CHECK_EVERY`].
const MAX_POLL: Duration = Duration::from_millis(50);
const RUNC_CHECK_EVERY: Duration = Duration::from_secs(1);

fn instance_state(record: &InstanceRecord, rt: &Inner, status: Status) -> InstanceState {
    InstanceState {
        id: record.spec.id.clone(),
        environment: record.spec.environment.clone(),
        hostname: record.spec.hostname.clone(),
        address: record.address,
        status,
        logs: rt.layout.instance(&record.spec.id).logs(),
    }
}

fn exit_status(rt: &Inner, id: &str) -> Result<Option<ExitStatus>> {
    let path = rt.layout.instance(id).exit_file();
    Ok(read_exit(&path)
        .context(|| format!("reading {}", path.display()))?
        .map(|r| r.status))
}

async fn runc_state(rt: &Inner, id: &str) -> Result<Option<RuncState>> {
    let cmd = rt.runc.state(id);
    let out = run(rt.runner.as_ref(), &cmd).await?;
    if out.success() {
        Ok(parse_state(&out.stdout_str()))
    } else if is_missing(&out.stderr_str()) {
        Ok(None)
    } else {
        Err(command_error(&cmd, &out))
    }
}

/// The status given runc's view of the container.
async fn status_from(
    rt: &Inner,
    record: &InstanceRecord,
    runc: Option<&RuncState>,
) -> Result<Status> {
    let id = &record.spec.id;
    if let Some(st) = exit_status(rt, id)? {
        return Ok(Status::Exited(st));
    }
    if !record.boot_id.is_empty() && record.boot_id != rt.boot_id() {
        return Ok(Status::Exited(ExitStatus::UNKNOWN));
    }
    match runc {
        Some(s) if s.is_alive() => return Ok(Status::Running { pid: s.pid }),
        // Gone from runc without an exit file: nobody will write one.
        None => return Ok(Status::Exited(ExitStatus::UNKNOWN)),
        Some(_) => {}
    }
    // Stopped: its shim is about to write the exit file, unless the shim itself is gone.
    let start = Instant::now();
    while start.elapsed() < EXIT_FILE_GRACE {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if let Some(st) = exit_status(rt, id)? {
            return Ok(Status::Exited(st));
        }
    }
    Ok(Status::Exited(ExitStatus::UNKNOWN))
}

async fn status(rt: &Inner, record: &InstanceRecord) -> Result<Status> {
    if let Some(st) = exit_status(rt, &record.spec.id)? {
        return Ok(Status::Exited(st));
    }
    let runc = runc_state(rt, &record.spec.id).await?;
    status_from(rt, record, runc.as_ref()).await
}

pub(super) async fn state(rt: &Inner, id: &str) -> Result<InstanceState> {
    let record = rt.record(id)?;
    let status = status(rt, &record).await?;
    Ok(instance_state(&record, rt, status))
}

pub(super) async fn signal(rt: &Inner, id: &str, signal: Signal) -> Result<()> {
    rt.record(id)?;
    let cmd = rt.runc.kill(id, signal.as_str());
    let out = run(rt.runner.as_ref(), &cmd).await?;
    let err = out.stderr_str();
    if out.success() {
        Ok(())
    } else if is_not_running(&err) || is_missing(&err) {
        Err(Error::NotRunning(id.into()))
    } else {
        Err(command_error(&cmd, &out))
    }
}

pub(super) async fn wait(rt: &Inner, id: &str) -> Result<ExitStatus> {
    let record = rt.record(id)?;
    let mut delay = Duration::from_millis(5);
    let mut last_check = Instant::now();
    loop {
        if let Some(st) = exit_status(rt, id)? {
            return Ok(st);
        }
        if last_check.elapsed() >= RUNC_CHECK_EVERY {
            last_check = Instant::now();
            if let Status::Exited(st) = status(rt, &record).await? {
                return Ok(st);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
    }
}

pub(super) async fn stop(rt: &Inner, id: &str, grace: Duration) -> Result<ExitStatus> {
    let record = rt.record(id)?;
    if let Status::Exited(st) = status(rt, &record).await? {
        return Ok(st);
    }
    match signal(rt, id, Signal::SIGTERM).await {
        Ok(()) | Err(Error::NotRunning(_)) => {}
        Err(e) => return Err(e),
    }
    if let Ok(st) = tokio::time::timeout(grace, wait(rt, id)).await {
        return st;
    }
    tracing::info!(
        id,
        grace_ms = grace.as_millis() as u64,
        "grace over, killing"
    );
    match signal(rt, id, Signal::SIGKILL).await {
        Ok(()) | Err(Error::NotRunning(_)) => {}
        Err(e) => return Err(e),
    }
    tokio::time::timeout(KILL_TIMEOUT, wait(rt, id))
        .await
        .map_err(|_| Error::Timeout {
            id: id.into(),
            what: "exit after SIGKILL",
            waited_ms: KILL_TIMEOUT.as_millis(),
        })?
}

pub(super) async fn exec(rt: &Inner, id: &str, args: &[String]) -> Result<ExecOutput> {
    rt.record(id)?;
    if args.is_empty() {
        return Err(Error::invalid("exec", "no command given"));
    }
    let cmd = rt.runc.exec(id, args);
    let out = run(rt.runner.as_ref(), &cmd).await?;
    if !out.success() {
        // runc's own failures are logrus lines; the command's output is passed through raw.
        let err = out.stderr_str();
        let runc_error = err.contains("level=error");
        if runc_error && (err.contains("stopped") || is_not_running(&err) || is_missing(&err)) {
            return Err(Error::NotRunning(id.into()));
        }
    }
    Ok(ExecOutput {
        code: out.code.unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

pub(super) async fn update_hosts(rt: &Inner, id: &str, hosts: &[HostEntry]) -> Result<()> {
    let mut record = rt.record(id)?;
    for h in hosts {
        crate::spec::check_label("hosts entry", &h.hostname)?;
    }
    let dir = rt.layout.instance(id);
    let text = render_hosts(&record.spec.hostname, record.address, hosts);
    rewrite_in_place(&dir.hosts(), &text)
        .context(|| format!("rewriting {}", dir.hosts().display()))?;
    record.spec.hosts = hosts.to_vec();
    write_json(&dir.record(), &record)
}

pub(super) async fn list(rt: &Inner) -> Result<Vec<InstanceState>> {
    let out = run(rt.runner.as_ref(), &rt.runc.list()).await?;
    if !out.success() {
        return Err(command_error(&rt.runc.list(), &out));
    }
    let known: BTreeMap<String, RuncState> = parse_list(&out.stdout_str())
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut states = Vec::new();
    for id in list_dir(&rt.layout.instances())? {
        // A directory without a record is a create that is under way (or died early).
        let Some(record) = read_json::<InstanceRecord>(&rt.layout.instance(&id).record())? else {
            continue;
        };
        let status = status_from(rt, &record, known.get(&id)).await?;
        states.push(instance_state(&record, rt, status));
    }
    Ok(states)
}
