//! The user data a cloud server boots with (cloud-init's `#cloud-config`): it installs the
//! control plane's `mesh` binary and starts the agent joined to its rack, under the same
//! supervisor script as the ssh driver's ([`crate::bootstrap`]), run by a systemd unit when
//! the server has systemd and under `setsid` otherwise.
//!
//! A cloud server cannot be sent a file over SSH, so it downloads the binary from the control
//! plane (`GET /v1/agent/mesh` at the `--advertise-url`, with the rack's join token) and
//! checks its SHA-256 against the digest written here before running it.
//!
//! Only two cloud-init modules are used, `write_files` (every file base64-encoded, so no
//! script text needs YAML quoting) and `runcmd` (one command: the install script).
//!
//! The join token is in the user data: anything on the server that reaches the cloud's
//! metadata service (169.254.169.254) can read it. See docs/providers.md.

use base64::Engine as _;
use sha2::Digest as _;

use crate::bootstrap::{Bootstrap, agent_dir, quote, supervisor_script_address_file};
use crate::{ProviderError, Result};

/// The agent-gateway route that serves the control plane's `mesh` binary.
pub const BINARY_ROUTE: &str = "/v1/agent/mesh";

/// How many times (10 s apart) a booting server tries to download `mesh` before giving up.
pub const DOWNLOAD_TRIES: u32 = 30;

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).map_err(|e| {
        ProviderError::Invalid(format!(
            "cannot read the mesh binary {}: {e}",
            path.display()
        ))
    })?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| {
            ProviderError::Invalid(format!(
                "cannot read the mesh binary {}: {e}",
                path.display()
            ))
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The systemd unit's name for agent `server` of `rack`.
pub fn unit_name(rack: &str, server: &str) -> String {
    format!("widemesh-{rack}-{server}.service")
}

/// What a systemd unit of a made server supervises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The agent: stopping the unit sends SIGTERM to the supervisor alone
    /// (`KillMode=mixed`), which stops the agent gracefully.
    Agent,
    /// k3s: as k3s's own unit, only the supervisor's process tree is signalled
    /// (`KillMode=process`), so the node's containers outlive a restart of k3s, and the unit
    /// may manage cgroups below it (`Delegate=yes`).
    K3s,
}

/// The systemd unit that runs the supervisor: systemd starts it at boot and again should the
/// supervisor itself die.
pub fn systemd_unit(rack: &str, server: &str, dir: &str, unit: Unit) -> String {
    let (what, kill) = match unit {
        Unit::Agent => ("Widemesh agent", "KillMode=mixed\n"),
        Unit::K3s => (
            "k3s (Widemesh)",
            "KillMode=process\nDelegate=yes\nTasksMax=infinity\nLimitNOFILE=1048576\nLimitNPROC=infinity\nLimitCORE=infinity\n",
        ),
    };
    format!(
        "[Unit]\n\
         Description={what} {server} of rack {rack}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart=/bin/sh {dir}/supervise.sh\n\
         {kill}\
         TimeoutStopSec=40\n\
         Restart=always\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The script the server runs once at first boot: find its address, download and check
/// `mesh`, start the supervisor.
pub fn install_script(b: &Bootstrap, server: &str, dir: &str, sha256: &str) -> Result<String> {
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ProviderError::Invalid(format!(
            "{sha256:?} is not a SHA-256 digest in hex"
        )));
    }
    let base = b.api_url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ProviderError::Invalid(format!(
            "the control plane's URL {base:?} must start with http:// or https:// (give `--advertise-url`)"
        )));
    }
    let url = format!("{base}{BINARY_ROUTE}");
    Ok(format!(
        r#"#!/bin/sh
# Made by widemesh: installs the control plane's mesh binary and starts agent {server} of rack {rack}.
set -u
dir={d}
url={u}
sum={sum}
unit={unit}
{first_boot}# The token goes to curl on its standard input (printf is a shell builtin): never on a
# command line, where other users could read it.
i=0
until printf 'Authorization: Bearer %s\n' "$(cat "$dir/join-token")" |
  curl -fsS --connect-timeout 10 --max-time 600 -H @- -o "$dir/mesh.part" "$url"; do
  i=$((i+1))
  if [ $i -ge {tries} ]; then log "cannot download mesh from $url after $i tries"; exit 1; fi
  sleep 10
done
if ! echo "$sum  $dir/mesh.part" | sha256sum -c - >/dev/null 2>&1; then
  log "the mesh downloaded from $url is not the one this server was made for (SHA-256 differs): refusing to run it"
  rm -f "$dir/mesh.part"
  exit 1
fi
chmod 0700 "$dir/mesh.part" && mv "$dir/mesh.part" "$dir/mesh"
{start}log "agent {server} started"
"#,
        rack = b.rack,
        d = quote(dir),
        u = quote(&url),
        sum = sha256,
        unit = unit_name(&b.rack, server),
        tries = DOWNLOAD_TRIES,
        first_boot = FIRST_BOOT,
        start = START_SUPERVISOR,
    ))
}

/// Starts the supervisor of a first-boot script (`$dir`, `$unit` set): its systemd unit when
/// the server runs systemd, else under `setsid`.
pub const START_SUPERVISOR: &str = r#"if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload && systemctl enable --now "$unit"
else
  setsid -f sh "$dir/supervise.sh" </dev/null >/dev/null 2>&1
fi
"#;

/// The start of every first-boot script (`$dir` and `$url`, a URL of the control plane, set
/// before it): a log function, the directory made private, the server's own address found and
/// written to `$dir/address` (and kept in `$addr`), and curl installed when missing.
pub const FIRST_BOOT: &str = r#"log() { echo "widemesh: $*" >&2; echo "widemesh: $*" >>"$dir/install.log"; }
chmod 0700 "$dir"
cd "$dir" || exit 1
# The address the rack's router and peers reach this server on: the source address of its
# route to the control plane (or its first address).
host=$(printf '%s' "$url" | sed -e 's|^[a-z]*://||' -e 's|^\[||' -e 's|[]/:].*$||')
ip=$(getent ahostsv4 "$host" 2>/dev/null | head -n1 | cut -d' ' -f1)
addr=$(ip -4 route get "${ip:-$host}" 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)
[ -n "$addr" ] || addr=$(hostname -I 2>/dev/null | cut -d' ' -f1)
[ -n "$addr" ] || { log "cannot tell this server's address"; exit 1; }
printf '%s\n' "$addr" >"$dir/address"
if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq curl >/dev/null 2>&1
fi
"#;

/// The user data of server `server` of `b.rack`: k3s for a Kubernetes rack's server
/// ([`crate::k3s`]), else the agent with the control plane's `mesh` (its SHA-256 read from
/// `b.binary`).
pub fn for_server(b: &Bootstrap, server: &str) -> Result<String> {
    match &b.kube {
        Some(node) => crate::k3s::user_data(b, node, server),
        None => user_data(b, server, &sha256_file(&b.binary)?),
    }
}

/// The whole `#cloud-config` document for server `server` of `b.rack`, whose `mesh` binary
/// has SHA-256 `sha256`.
pub fn user_data(b: &Bootstrap, server: &str, sha256: &str) -> Result<String> {
    let dir = agent_dir(&b.root, &b.rack, server)?;
    let files = [
        (format!("{dir}/join-token"), "0600", b.join_token.clone()),
        (
            format!("{dir}/supervise.sh"),
            "0700",
            supervisor_script_address_file(b, server, &dir)?,
        ),
        (
            format!("{dir}/install.sh"),
            "0700",
            install_script(b, server, &dir, sha256)?,
        ),
        (
            format!("/etc/systemd/system/{}", unit_name(&b.rack, server)),
            "0644",
            systemd_unit(&b.rack, server, &dir, Unit::Agent),
        ),
    ];
    Ok(cloud_config(
        &format!("agent {server} of rack {}", b.rack),
        &files,
        &dir,
    ))
}

/// A `#cloud-config` document that writes `files` (path, mode, content; every one
/// base64-encoded, owned by root) and runs `<dir>/install.sh` once: the two cloud-init modules
/// this project uses. `what` is said in its comment line.
pub fn cloud_config(what: &str, files: &[(String, &str, String)], dir: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = format!("#cloud-config\n# Made by widemesh: {what}.\nwrite_files:\n");
    for (path, mode, content) in files {
        // Paths are made of checked labels and the checked root: no YAML quoting needed,
        // but quoted all the same.
        out.push_str(&format!(
            "  - path: '{path}'\n    permissions: '{mode}'\n    owner: 'root:root'\n    encoding: b64\n    content: {}\n",
            b64.encode(content)
        ));
    }
    out.push_str(&format!("runcmd:\n  - [sh, '{dir}/install.sh']\n"));
    out
}

/// The files a document of [`cloud_config`] writes: (path, mode, content), read back line by
/// line as it writes them (for checks and tests; cloud-init reads it as YAML).
pub fn read_files(doc: &str) -> Vec<(String, String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let (mut path, mut mode) = (String::new(), String::new());
    for line in doc.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("- path: ") {
            path = p.trim_matches('\'').to_string();
        } else if let Some(m) = line.strip_prefix("permissions: ") {
            mode = m.trim_matches('\'').to_string();
        } else if let Some(c) = line.strip_prefix("content: ") {
            let bytes = b64.decode(c).unwrap_or_default();
            out.push((
                path.clone(),
                mode.clone(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::DEFAULT_ROOT;

    fn boot() -> Bootstrap {
        Bootstrap {
            binary: "/usr/bin/mesh".into(),
            api_url: "http://203.0.113.1:7070/".into(),
            join_token: "secret-token".into(),
            rack: "east".into(),
            root: DEFAULT_ROOT.into(),
            http_listen: "0.0.0.0:80".into(),
            net: None,
            kube: None,
        }
    }

    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn files(doc: &str) -> Vec<(String, String, String)> {
        read_files(doc)
    }

    #[test]
    fn the_user_data_writes_the_token_the_supervisor_the_installer_and_a_unit() {
        let doc = user_data(&boot(), "east-1", SUM).unwrap();
        assert!(doc.starts_with("#cloud-config\n"), "{doc}");
        assert!(doc.ends_with("runcmd:\n  - [sh, '/var/lib/widemesh/east/east-1/install.sh']\n"));
        let f = files(&doc);
        let paths: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/var/lib/widemesh/east/east-1/join-token",
                "/var/lib/widemesh/east/east-1/supervise.sh",
                "/var/lib/widemesh/east/east-1/install.sh",
                "/etc/systemd/system/widemesh-east-east-1.service",
            ]
        );
        assert_eq!((f[0].1.as_str(), f[0].2.as_str()), ("0600", "secret-token"));
        // The supervisor is the ssh driver's, reading the address the installer finds.
        assert!(f[1].2.contains("'--address' \"$(cat \"$dir/address\")\""));
        assert!(f[1].2.contains("'--api-url' 'http://203.0.113.1:7070/'"));
        let install = &f[2].2;
        for want in [
            "url='http://203.0.113.1:7070/v1/agent/mesh'",
            &format!("sum={SUM}"),
            "sha256sum -c -",
            "curl -fsS",
            "-H @-",
            "systemctl daemon-reload && systemctl enable --now \"$unit\"",
            "setsid -f sh \"$dir/supervise.sh\"",
            "unit=widemesh-east-east-1.service",
        ] {
            assert!(install.contains(want), "{want} not in:\n{install}");
        }
        // The token is only in its file.
        assert!(!install.contains("secret-token"));
        assert!(!f[1].2.contains("secret-token"));
        assert!(!doc.contains("secret-token"));
        assert!(
            f[3].2
                .contains("ExecStart=/bin/sh /var/lib/widemesh/east/east-1/supervise.sh")
        );
    }

    #[test]
    fn the_scripts_parse_and_bad_inputs_are_refused() {
        let b = boot();
        let dir = "/var/lib/widemesh/east/east-1";
        let script = install_script(&b, "east-1", dir, SUM).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(install_script(&b, "east-1", dir, "abc").is_err());
        let mut bad = boot();
        bad.api_url = "10.0.0.1:7070".into();
        let e = user_data(&bad, "east-1", SUM).unwrap_err().to_string();
        assert!(e.contains("--advertise-url"), "{e}");
        assert!(user_data(&b, "East 1", SUM).is_err());
    }

    #[test]
    fn a_file_digest_is_its_sha256() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256_file(&d.path().join("none")).is_err());
    }
}
