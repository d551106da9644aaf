//! [`run_limited`]: a host program (buildah) in a fresh cgroup of its own, in a sandbox of
//! namespaces: its own PID namespace with a fresh `/proc` (it and its children see only each
//! other), mount (private propagation), IPC and UTS namespaces, and either the network
//! namespace of a [`BuildNet`](super::BuildNet) or a fresh one with only loopback; and
//! no_new_privs.
//!
//! The program is started through `/bin/sh`, which first writes its own pid into every
//! `cgroup.procs` of the new cgroup and only then `exec`s the program, so the program and
//! everything it forks are limited from their first instruction (no `pre_exec` hook, no unsafe
//! code). On exit, on timeout and on error everything left in the cgroup is killed and the
//! cgroup removed.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use tokio::sync::mpsc::UnboundedSender;

use crate::error::{IoContext, Result};

use super::cgroups::{self, Active, LimitedCgroup};
use super::config::OOM_SCORE_ADJ;
use super::lines::{drain, pipe, pump};
use super::{BuildLimits, BuildOutcome, check_id};

/// Joins the cgroups named before `--`, then becomes the program after it.
const JOIN_AND_EXEC: &str = r#"echo "$0" > /proc/self/oom_score_adj
while [ "$1" != -- ]; do
  echo $$ > "$1" || { echo "cannot join build cgroup $1" >&2; exit 125; }
  shift
done
shift
exec "$@""#;

/// Runs `program args` on the host, in `cwd`, with the caller's environment plus `env`, inside
/// a fresh cgroup `/widemesh_build/<id>` holding `limits`, for at most `limits.timeout`.
/// Output (stdout and stderr merged) goes to `lines`. The outcome says whether it succeeded,
/// was OOM-killed or timed out; `Err` means it could not be started at all.
///
/// The program runs through `unshare` in its own PID (fresh `/proc`), mount, IPC and UTS
/// namespaces, and in the network namespace at `netns` (a fresh one with only loopback when
/// `None`). It still sees the host's filesystem (in its own mount namespace): it is meant for
/// builders that confine their steps themselves (buildah with `--isolation chroot`).
#[allow(clippy::too_many_arguments)]
pub async fn run_limited(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    cwd: &Path,
    id: &str,
    limits: &BuildLimits,
    netns: Option<&Path>,
    lines: UnboundedSender<String>,
) -> Result<BuildOutcome> {
    check_id(id)?;
    let _active = Active::enter();
    let mounts = cgroups::mounts()?;
    let mut cg = LimitedCgroup::create(&mounts, id, limits)?;

    let (reader, out, err) = pipe()?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(JOIN_AND_EXEC)
        .arg(OOM_SCORE_ADJ.to_string())
        .args(cg.procs_files())
        .arg("--")
        .args(sandbox(netns))
        .arg(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    drop(cmd);
    let mut child = spawned.context(|| format!("starting {program}"))?;
    let pump = pump(reader, lines);
    let (status, timed_out) = match tokio::time::timeout(limits.timeout, child.wait()).await {
        Ok(status) => (status, false),
        Err(_) => {
            cg.kill_all();
            (child.wait().await, true)
        }
    };
    let status = status.context(|| format!("waiting for {program}"))?;
    let oom_killed = cg.oom_killed();
    // Whatever the program left running (daemons, stuck children) goes too; then the pipe
    // has no writer left and the reader ends.
    cg.kill_all();
    drain(pump).await;
    cg.remove();
    Ok(BuildOutcome {
        exit_code: status.code(),
        signal: status.signal(),
        oom_killed,
        timed_out,
        limits: *limits,
    })
}

/// `nsenter` into the build's network namespace (when it has one) and `unshare` with the
/// sandbox's other namespaces, up to the program. (`unshare --net=FILE` would make a new
/// namespace and pin it at FILE, not join it: joining is `nsenter`'s.)
pub(crate) fn sandbox(netns: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = netns {
        out.extend([
            "nsenter".to_string(),
            format!("--net={}", p.display()),
            "--".into(),
        ]);
    }
    out.extend(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "--ipc",
            "--uts",
        ]
        .map(String::from),
    );
    if netns.is_none() {
        out.push("--net".into());
    }
    // No execve in the sandbox gains privileges (setuid bits, file capabilities).
    out.extend(["--", "setpriv", "--no-new-privs", "--"].map(String::from));
    out
}
