//! What a made server runs: the agent's directory, the supervisor script that keeps the agent
//! running, and the shell commands that start and stop it. All pure: the drivers send these
//! strings over SSH (or, for clouds, put them in user data).
//!
//! The supervisor is a shell loop started under `setsid` with a pid file, not a systemd unit:
//! it works on any server with a POSIX shell, including the test servers (network namespaces
//! without an init system). It restarts the agent when it exits (after 1 s, backing off to 30 s
//! while it keeps failing at once), and on SIGTERM forwards the signal to the agent and waits
//! for it, so the agent stops gracefully.

use crate::{ProviderError, Result};

/// Where agents' directories go on a server unless the provider says otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/widemesh";
/// The agent router's default address on a made server.
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:80";

/// How the agent lays out instance networks on its server. Agents whose servers share one
/// kernel's cgroups or one disk (the test servers) need their own prefix and pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetPlan {
    pub net_prefix: String,
    pub subnet_pool: String,
}

/// How the agent on a new server is installed and joins its rack.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The `mesh` binary to install: the control plane's own (`std::env::current_exe()`).
    pub binary: std::path::PathBuf,
    /// The control plane's URL as agents on made servers reach it (`--advertise-url`).
    pub api_url: String,
    /// The rack's join token: written to a file only root reads, never on a command line.
    pub join_token: String,
    pub rack: String,
    /// The agents' root directory on the server; each agent gets `<root>/<rack>/<server>`.
    pub root: String,
    /// The agent router's plain HTTP address.
    pub http_listen: String,
    /// Instance networking; `None` leaves the agent's defaults.
    pub net: Option<NetPlan>,
    /// A Kubernetes rack's server runs k3s instead of the agent (cloud providers only).
    pub kube: Option<crate::k3s::KubeNode>,
}

/// A DNS label (`[a-z0-9-]`, 1-63, starting with a letter or digit): safe in a path and a
/// shell word.
fn check_label(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ProviderError::Invalid(format!(
            "{what} {s:?} must be lowercase letters, digits and '-'"
        )))
    }
}

/// `<root>/<rack>/<server>`: one directory per agent, so agents on servers that share a disk
/// never collide.
pub fn agent_dir(root: &str, rack: &str, server: &str) -> Result<String> {
    check_label("rack name", rack)?;
    check_label("server name", server)?;
    check_root(root)?;
    Ok(format!("{}/{rack}/{server}", root.trim_end_matches('/')))
}

/// The agents' root on made servers (`--servers-root`): an absolute path of plain characters
/// (it goes into shell scripts, YAML and systemd units), without `..`.
pub fn check_root(root: &str) -> Result<()> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
    if !root.starts_with('/') || root.contains("..") || root.len() < 2 || !root.chars().all(plain) {
        return Err(ProviderError::Invalid(format!(
            "the agents' root {root:?} must be an absolute path of letters, digits, '/', '.', '_' and '-', without '..'"
        )));
    }
    Ok(())
}

/// One shell word, quoted: `'...'` with embedded quotes escaped.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The supervisor script for the agent `server` of `b.rack` living in `dir` on a server whose
/// address is `host`. It restarts the agent when it exits and stops it on SIGTERM.
pub fn supervisor_script(b: &Bootstrap, server: &str, host: &str, dir: &str) -> Result<String> {
    script(b, server, quote(host), dir)
}

/// The same supervisor for a server whose address is only known once it runs (a cloud
/// server): the agent's `--address` is read from the file `address` in `dir`, which the
/// server's first boot writes.
pub fn supervisor_script_address_file(b: &Bootstrap, server: &str, dir: &str) -> Result<String> {
    script(b, server, "\"$(cat \"$dir/address\")\"".to_string(), dir)
}

/// The supervisor, with `address` the agent's `--address` as one shell word.
fn script(b: &Bootstrap, server: &str, address: String, dir: &str) -> Result<String> {
    check_label("server name", server)?;
    let dir_data = format!("{dir}/data");
    let mut args: Vec<String> = [
        "agent",
        "--api-url",
        b.api_url.as_str(),
        "--name",
        server,
        "--data-dir",
        dir_data.as_str(),
        "--address",
    ]
    .map(quote)
    .into();
    args.push(address);
    args.extend(["--http-listen", b.http_listen.as_str()].map(quote));
    if let Some(net) = &b.net {
        args.extend(
            [
                "--net-prefix",
                net.net_prefix.as_str(),
                "--subnet-pool",
                net.subnet_pool.as_str(),
            ]
            .map(quote),
        );
    }
    Ok(supervise(
        dir,
        "the widemesh agent",
        "MESH_JOIN_TOKEN=$(cat \"$dir/join-token\")\nexport MESH_JOIN_TOKEN\n",
        &format!("\"$dir/mesh\" {}", args.join(" ")),
        "agent",
    ))
}

/// A supervisor script living in `dir`: runs `command` (shell words; `$dir` is the directory)
/// after `prelude`, appending its output to `<name>.log` and its pid to `<name>.pid`; starts it
/// again when it exits (after 1 s, backing off to 30 s while it keeps failing at once); on
/// SIGTERM forwards the signal to it and waits for it.
pub fn supervise(dir: &str, what: &str, prelude: &str, command: &str, name: &str) -> String {
    let d = quote(dir);
    format!(
        r#"#!/bin/sh
# The supervisor of {what} (made by a provider driver): restarts it when it exits; on SIGTERM
# stops it gracefully.
dir={d}
echo $$ > "$dir/supervisor.pid"
child=
stop() {{
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
  rm -f "$dir/supervisor.pid" "$dir/{name}.pid"
  exit 0
}}
trap stop TERM INT
{prelude}delay=1
while :; do
  started=$(date +%s)
  {command} >>"$dir/{name}.log" 2>&1 &
  child=$!
  echo "$child" > "$dir/{name}.pid"
  wait "$child"
  code=$?
  child=
  # What keeps failing at once is started again less and less often (at most every 30s);
  # what ran a while, at once.
  if [ $(( $(date +%s) - started )) -ge 10 ]; then delay=1; elif [ $delay -lt 30 ]; then delay=$((delay * 2)); fi
  echo "supervisor: {name} exited with $code; starting it again in ${{delay}}s" >>"$dir/{name}.log"
  # In the background, so that SIGTERM is acted on at once.
  sleep $delay & wait $!
done
"#
    )
}

/// Starts the supervisor in its own session, detached from the SSH channel.
pub fn start_command(dir: &str) -> String {
    let d = quote(dir);
    // Every descriptor of the SSH channel is closed in the supervisor, or the channel would
    // stay open as long as it runs.
    format!("cd {d} || exit 1; setsid -f sh {d}/supervise.sh </dev/null >/dev/null 2>&1")
}

/// Stops the supervisor (which stops the agent and waits for it), waiting at most
/// `wait_secs`, then kills what is left, removes the agent's instances and networks with
/// `mesh agent-purge` (a stopped agent leaves its instances running, to adopt them at its next
/// start), and removes the directory. Succeeds when nothing ran; a failed purge keeps the
/// directory so that deleting again can finish.
pub fn stop_command(dir: &str, net: Option<&NetPlan>, wait_secs: u32) -> String {
    let d = quote(dir);
    let net = net
        .map(|n| {
            format!(
                " --net-prefix {} --subnet-pool {}",
                quote(&n.net_prefix),
                quote(&n.subnet_pool)
            )
        })
        .unwrap_or_default();
    format!(
        r#"dir={d}
alive() {{ [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }}
if alive "$dir/supervisor.pid"; then
  kill -TERM "$(cat "$dir/supervisor.pid")"
  i=0
  while alive "$dir/supervisor.pid" && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done
fi
for f in supervisor.pid agent.pid; do
  if alive "$dir/$f"; then kill -KILL "$(cat "$dir/$f")"; echo "killed $f" >&2; fi
done
if [ -x "$dir/mesh" ] && [ -d "$dir/data" ]; then
  "$dir/mesh" agent-purge --data-dir "$dir/data"{net} >/dev/null || exit 1
fi
rm -rf "$dir"
rmdir "$(dirname "$dir")" 2>/dev/null || true
"#,
        ticks = wait_secs * 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Bootstrap {
        Bootstrap {
            binary: "/usr/bin/mesh".into(),
            api_url: "http://10.0.0.1:7070".into(),
            join_token: "secret-token".into(),
            rack: "east".into(),
            root: DEFAULT_ROOT.into(),
            http_listen: DEFAULT_HTTP_LISTEN.into(),
            net: Some(NetPlan {
                net_prefix: "pw".into(),
                subnet_pool: "10.237.0.0/16".into(),
            }),
            kube: None,
        }
    }

    #[test]
    fn each_agent_gets_a_directory_named_by_rack_and_server() {
        assert_eq!(
            agent_dir("/var/lib/widemesh/", "east", "east-1").unwrap(),
            "/var/lib/widemesh/east/east-1"
        );
        for (root, rack, server) in [
            ("/r", "../x", "s"),
            ("/r", "east", "a b"),
            ("/r", "east", "S"),
            ("rel", "east", "s"),
            ("/r/../etc", "east", "s"),
            ("/r", "", "s"),
            ("/r'x", "east", "s"),
            ("/r x", "east", "s"),
        ] {
            assert!(
                agent_dir(root, rack, server).is_err(),
                "{root} {rack} {server}"
            );
        }
    }

    #[test]
    fn the_supervisor_runs_the_agent_with_its_flags_and_no_token_on_the_command_line() {
        let s = supervisor_script(
            &boot(),
            "east-1",
            "10.0.0.2",
            "/var/lib/widemesh/east/east-1",
        )
        .unwrap();
        assert!(s.starts_with("#!/bin/sh\n"));
        for want in [
            "'agent' '--api-url' 'http://10.0.0.1:7070' '--name' 'east-1'",
            "'--data-dir' '/var/lib/widemesh/east/east-1/data'",
            "'--address' '10.0.0.2' '--http-listen' '0.0.0.0:80'",
            "'--net-prefix' 'pw' '--subnet-pool' '10.237.0.0/16'",
            "MESH_JOIN_TOKEN=$(cat \"$dir/join-token\")",
            "trap stop TERM INT",
        ] {
            assert!(s.contains(want), "{want} not in:\n{s}");
        }
        assert!(!s.contains("secret-token"));
        let mut b = boot();
        b.net = None;
        let s = supervisor_script(&b, "east-1", "h", "/d").unwrap();
        assert!(!s.contains("--net-prefix"));
        let s = supervisor_script_address_file(&b, "east-1", "/d").unwrap();
        assert!(
            s.contains("'--address' \"$(cat \"$dir/address\")\" '--http-listen'"),
            "{s}"
        );
    }

    /// `sh -n`: the scripts parse.
    fn parses(script: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_scripts_are_valid_shell() {
        let dir = "/var/lib/widemesh/east/east-1";
        parses(&supervisor_script(&boot(), "east-1", "10.0.0.2", dir).unwrap());
        parses(&supervisor_script_address_file(&boot(), "east-1", dir).unwrap());
        parses(&start_command(dir));
        parses(&stop_command(dir, boot().net.as_ref(), 30));
        parses(&stop_command(dir, None, 30));
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert!(start_command("/d/x").contains("setsid -f sh '/d/x'/supervise.sh"));
        let net = NetPlan {
            net_prefix: "pw".into(),
            subnet_pool: "10.237.0.0/16".into(),
        };
        let stop = stop_command("/d/x", Some(&net), 20);
        assert!(stop.contains("-lt 200"));
        assert!(stop.contains(
            "agent-purge --data-dir \"$dir/data\" --net-prefix 'pw' --subnet-pool '10.237.0.0/16'"
        ));
        assert!(stop.contains("\nrm -rf \"$dir\"\n"));
    }
}
