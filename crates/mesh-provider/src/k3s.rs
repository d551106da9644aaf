//! The servers of a Kubernetes rack that a provider makes: each boots with user data that
//! downloads k3s (checked against the release's SHA-256 list), runs it under the same
//! supervisor as an agent ([`crate::bootstrap::supervise`]), as the cluster's server on the
//! rack's first server and as an agent joining it on the others. The first server then sends
//! the cluster's kubeconfig to the control plane (`PUT /v1/agent/kubeconfig`, with the rack's
//! join token), which checks the cluster and installs the rack's agent and routers into it
//! (`mesh_kube::install`): no `mesh` binary is installed on the servers themselves.
//!
//! The files made here stay in the server's directory (`<root>/<rack>/<server>`): k3s's data
//! (`--data-dir`), its kubeconfig (`--write-kubeconfig`), its registry settings
//! (`--private-registry`) and tokens. k3s keeps some files of its own elsewhere
//! (`/var/lib/kubelet`, `/etc/rancher/node`, `/run/k3s`): one k3s per server.

use crate::bootstrap::{Bootstrap, agent_dir, quote, supervise};
use crate::cloudinit::{
    DOWNLOAD_TRIES, FIRST_BOOT, START_SUPERVISOR, Unit, cloud_config, systemd_unit, unit_name,
};
use crate::{ProviderError, Result};

/// The k3s release servers download unless the provider says otherwise (its `k3s_release`):
/// a URL under which `k3s`, `k3s-arm64` and `sha256sum-<arch>.txt` are found.
pub const DEFAULT_RELEASE: &str = "https://github.com/k3s-io/k3s/releases/download/v1.34.4%2Bk3s1";
/// The control plane's route that takes a made cluster's kubeconfig.
pub const KUBECONFIG_ROUTE: &str = "/v1/agent/kubeconfig";
/// The Kubernetes API's port on the first server.
pub const API_PORT: u16 = 6443;
/// The cluster's pod addresses (k3s's default, given explicitly so the firewall below names
/// the same block).
pub const POD_CIDR: &str = "10.42.0.0/16";

/// Run by the supervisor before each start of k3s: pods' traffic forwarded to the link-local
/// block (a cloud's metadata service, which serves this server's user data and with it the
/// cluster's secrets) is dropped on the server itself, whatever the cluster's policies say (a
/// node-local DNS cache on a link-local address is the node's own, not forwarded). nftables,
/// else iptables; said in k3s.log when neither is there.
pub fn metadata_firewall() -> String {
    format!(
        r#"if command -v nft >/dev/null 2>&1; then
  nft -f - <<'NFT' || echo "supervisor: cannot add the metadata firewall (nft)" >>"$dir/k3s.log"
table inet widemesh_metadata
delete table inet widemesh_metadata
table inet widemesh_metadata {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
    ip saddr {pods} ip daddr 169.254.0.0/16 drop
  }}
}}
NFT
elif command -v iptables >/dev/null 2>&1; then
  iptables -C FORWARD -s {pods} -d 169.254.0.0/16 -j DROP 2>/dev/null ||
    iptables -I FORWARD -s {pods} -d 169.254.0.0/16 -j DROP ||
    echo "supervisor: cannot add the metadata firewall (iptables)" >>"$dir/k3s.log"
else
  echo "supervisor: neither nft nor iptables: pods are kept from the metadata service by the cluster's policies only" >>"$dir/k3s.log"
fi
"#,
        pods = POD_CIDR
    )
}

/// How many times (5 s apart) the first server offers the kubeconfig to the control plane,
/// which takes it once the cluster answers with every right the agent needs.
pub const KUBECONFIG_TRIES: u32 = 120;

/// What a server of a Kubernetes rack runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeNode {
    /// The secret the other servers join the cluster with as agents (k3s's agent token: it lets
    /// a node join, not act as the cluster's server).
    pub agent_token: String,
    /// The cluster's server token (k3s's `--token`, which amounts to the cluster's admin): on
    /// the first server only.
    pub server_token: Option<String>,
    /// Where k3s is downloaded from ([`DEFAULT_RELEASE`]).
    pub release: String,
    /// The address of the rack's first server, for the others to join; `None` on the first
    /// server, which runs the cluster's server and sends its kubeconfig to the control plane.
    pub join: Option<String>,
}

/// `host:port` of the control plane's URL: the registry the nodes pull the agent from.
fn registry(api_url: &str) -> Result<String> {
    let rest = api_url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| ProviderError::Invalid(format!("{api_url:?} is not a URL")))?;
    let host = rest.split('/').next().unwrap_or_default();
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
    if host.is_empty() || !host.chars().all(ok) {
        return Err(ProviderError::Invalid(format!(
            "the control plane's URL {api_url:?} has no host"
        )));
    }
    Ok(host.to_string())
}

/// k3s's registry settings: a control plane served over plain HTTP is pulled from over HTTP.
pub fn registries_yaml(api_url: &str) -> Result<String> {
    let host = registry(api_url)?;
    Ok(if api_url.starts_with("http://") {
        format!("mirrors:\n  \"{host}\":\n    endpoint:\n      - \"http://{host}\"\n")
    } else {
        "mirrors: {}\n".to_string()
    })
}

/// The k3s command line the supervisor runs (shell words; `$dir` is the server's directory and
/// its file `address` holds the server's address).
pub fn k3s_command(node: &KubeNode, server: &str) -> Result<String> {
    let addr = "\"$(cat \"$dir/address\")\"".to_string();
    let mut words: Vec<String> = vec!["\"$dir/k3s\"".into()];
    match &node.join {
        None => words.push(quote("server")),
        Some(first) => {
            if first.is_empty() || first.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(ProviderError::Invalid(format!(
                    "the first server's address {first:?} is not a host"
                )));
            }
            let host = if first.contains(':') {
                format!("[{first}]")
            } else {
                first.clone()
            };
            words.extend(
                [
                    "agent".to_string(),
                    "--server".into(),
                    format!("https://{host}:{API_PORT}"),
                ]
                .iter()
                .map(|w| quote(w)),
            );
        }
    }
    let token = if node.join.is_none() {
        "server-token"
    } else {
        "agent-token"
    };
    words.extend([
        quote("--data-dir"),
        "\"$dir/k3s-data\"".into(),
        quote("--token-file"),
        format!("\"$dir/{token}\""),
        quote("--node-name"),
        quote(server),
        quote("--node-ip"),
        addr.clone(),
        quote("--private-registry"),
        "\"$dir/registries.yaml\"".into(),
    ]);
    if node.join.is_none() {
        words.extend([
            quote("--agent-token-file"),
            "\"$dir/agent-token\"".into(),
            quote("--write-kubeconfig"),
            "\"$dir/kubeconfig\"".into(),
            quote("--write-kubeconfig-mode"),
            quote("0600"),
            quote("--advertise-address"),
            addr.clone(),
            quote("--tls-san"),
            addr,
            // The rack's routers take the nodes' ports 80 and 443; nothing else of k3s's
            // add-ons is used.
            quote("--disable"),
            quote("traefik,servicelb,metrics-server"),
            quote("--cluster-cidr"),
            quote(POD_CIDR),
        ]);
    }
    Ok(words.join(" "))
}

/// The script a Kubernetes rack's server runs once at first boot: find its address, download
/// and check k3s, start it under the supervisor; on the first server, send the cluster's
/// kubeconfig to the control plane.
pub fn install_script(b: &Bootstrap, node: &KubeNode, server: &str, dir: &str) -> Result<String> {
    let base = b.api_url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ProviderError::Invalid(format!(
            "the control plane's URL {base:?} must start with http:// or https:// (give `--advertise-url`)"
        )));
    }
    let release = node.release.trim_end_matches('/');
    if !(release.starts_with("http://") || release.starts_with("https://")) {
        return Err(ProviderError::Invalid(format!(
            "the k3s release {release:?} must be an http:// or https:// URL"
        )));
    }
    let first = node.join.is_none();
    let send = if first {
        format!(
            r#"# The cluster's kubeconfig, at this server's address, goes to the control plane, which
# installs the rack's agent into the cluster once it answers (offered every 5 s until then).
i=0
until [ -s "$dir/kubeconfig" ]; do
  i=$((i+1))
  if [ $i -ge 600 ]; then log "k3s wrote no kubeconfig within 600s (see $dir/k3s.log)"; exit 1; fi
  sleep 1
done
sed -e "s#https://127.0.0.1:{port}#https://$addr:{port}#" "$dir/kubeconfig" >"$dir/kubeconfig.rack"
chmod 0600 "$dir/kubeconfig.rack"
i=0
while :; do
  code=$(printf 'Authorization: Bearer %s\n' "$(cat "$dir/join-token")" |
    curl -sS --connect-timeout 10 --max-time 120 -o "$dir/kubeconfig.answer" -w '%{{http_code}}' \
      -X PUT -H @- -H 'Content-Type: application/yaml' --data-binary @"$dir/kubeconfig.rack" "$kube_url")
  [ "$code" = 200 ] && break
  i=$((i+1))
  if [ $i -ge {offers} ]; then log "the control plane did not take the cluster's kubeconfig ($code): $(cat "$dir/kubeconfig.answer" 2>/dev/null)"; exit 1; fi
  sleep 5
done
log "the control plane took the cluster's kubeconfig: $(cat "$dir/kubeconfig.answer")"
"#,
            port = API_PORT,
            offers = KUBECONFIG_TRIES,
        )
    } else {
        String::new()
    };
    Ok(format!(
        r#"#!/bin/sh
# Made by widemesh: runs k3s ({role}) on server {server} of Kubernetes rack {rack}.
set -u
dir={d}
url={u}
kube_url={k}
release={r}
unit={unit}
{first_boot}case $(uname -m) in
  x86_64|amd64) bin=k3s; sums=sha256sum-amd64.txt ;;
  aarch64|arm64) bin=k3s-arm64; sums=sha256sum-arm64.txt ;;
  *) log "k3s has no build for $(uname -m)"; exit 1 ;;
esac
fetch() {{
  i=0
  until curl -fsSL {proto}--connect-timeout 10 --max-time 900 -o "$2" "$1"; do
    i=$((i+1))
    if [ $i -ge {tries} ]; then log "cannot download $1 after $i tries"; return 1; fi
    sleep 10
  done
}}
fetch "$release/$sums" "$dir/k3s.sums" || exit 1
fetch "$release/$bin" "$dir/k3s.part" || exit 1
want=$(awk -v f="$bin" '$2 == f || $2 == "*" f {{ print $1; exit }}' "$dir/k3s.sums")
got=$(sha256sum "$dir/k3s.part" | cut -d' ' -f1)
if [ -z "$want" ] || [ "$want" != "$got" ]; then
  log "the $bin downloaded from $release does not match its release's SHA-256 list: refusing to run it"
  rm -f "$dir/k3s.part"
  exit 1
fi
chmod 0700 "$dir/k3s.part" && mv "$dir/k3s.part" "$dir/k3s"
{start}log "k3s {role} started"
{send}"#,
        role = if first { "server" } else { "agent" },
        rack = b.rack,
        d = quote(dir),
        u = quote(&format!("{base}/")),
        k = quote(&format!("{base}{KUBECONFIG_ROUTE}")),
        r = quote(release),
        unit = unit_name(&b.rack, server),
        first_boot = FIRST_BOOT,
        start = START_SUPERVISOR,
        tries = DOWNLOAD_TRIES,
        // An https release is never left for plain HTTP, redirects included.
        proto = if release.starts_with("https://") {
            "--proto =https --proto-redir =https "
        } else {
            ""
        },
    ))
}

/// The whole `#cloud-config` document for server `server` of Kubernetes rack `b.rack`.
pub fn user_data(b: &Bootstrap, node: &KubeNode, server: &str) -> Result<String> {
    let dir = agent_dir(&b.root, &b.rack, server)?;
    let token_ok = |t: &str| t.len() >= 16 && !t.contains(char::is_whitespace);
    if !token_ok(&node.agent_token) || !node.server_token.as_deref().is_none_or(token_ok) {
        return Err(ProviderError::Invalid(
            "the cluster's tokens must be at least 16 characters without spaces".into(),
        ));
    }
    let supervisor = supervise(
        &dir,
        "k3s",
        &metadata_firewall(),
        &k3s_command(node, server)?,
        "k3s",
    );
    let mut files = vec![(
        format!("{dir}/agent-token"),
        "0600",
        node.agent_token.clone(),
    )];
    match (&node.join, &node.server_token) {
        // The first server: the cluster's server token, and the join token it hands the
        // cluster over with; no other server gets either.
        (None, Some(t)) => {
            files.push((format!("{dir}/server-token"), "0600", t.clone()));
            files.push((format!("{dir}/join-token"), "0600", b.join_token.clone()));
        }
        (Some(_), None) => {}
        _ => {
            return Err(ProviderError::Invalid(
                "the first server (and only it) gets the cluster's server token".into(),
            ));
        }
    }
    files.extend([
        (
            format!("{dir}/registries.yaml"),
            "0600",
            registries_yaml(&b.api_url)?,
        ),
        (format!("{dir}/supervise.sh"), "0700", supervisor),
        (
            format!("{dir}/install.sh"),
            "0700",
            install_script(b, node, server, &dir)?,
        ),
        (
            format!("/etc/systemd/system/{}", unit_name(&b.rack, server)),
            "0644",
            systemd_unit(&b.rack, server, &dir, Unit::K3s),
        ),
    ]);
    Ok(cloud_config(
        &format!(
            "k3s {} {server} of Kubernetes rack {}",
            if node.join.is_none() {
                "server"
            } else {
                "agent"
            },
            b.rack
        ),
        &files,
        &dir,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::DEFAULT_ROOT;

    fn boot() -> Bootstrap {
        Bootstrap {
            binary: "/usr/bin/mesh".into(),
            api_url: "http://203.0.113.1:7070".into(),
            join_token: "secret-join-token".into(),
            rack: "kr".into(),
            root: DEFAULT_ROOT.into(),
            http_listen: "0.0.0.0:80".into(),
            net: None,
            kube: None,
        }
    }

    fn node(join: Option<&str>) -> KubeNode {
        KubeNode {
            agent_token: "agent-secret-0123456789".into(),
            server_token: join.is_none().then(|| "server-secret-0123456789".into()),
            release: DEFAULT_RELEASE.into(),
            join: join.map(String::from),
        }
    }

    fn decoded(doc: &str) -> Vec<(String, String)> {
        crate::cloudinit::read_files(doc)
            .into_iter()
            .map(|(p, _, c)| (p, c))
            .collect()
    }

    fn parses(script: &str) {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}\n{script}");
    }

    #[test]
    fn the_first_server_runs_the_k3s_server_and_sends_its_kubeconfig() {
        let doc = user_data(&boot(), &node(None), "kr-1").unwrap();
        let f = decoded(&doc);
        let paths: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
        let dir = "/var/lib/widemesh/kr/kr-1";
        assert_eq!(
            paths,
            [
                format!("{dir}/agent-token").as_str(),
                &format!("{dir}/server-token"),
                &format!("{dir}/join-token"),
                &format!("{dir}/registries.yaml"),
                &format!("{dir}/supervise.sh"),
                &format!("{dir}/install.sh"),
                "/etc/systemd/system/widemesh-kr-kr-1.service",
            ]
        );
        assert_eq!(f[0].1, "agent-secret-0123456789");
        assert_eq!(f[1].1, "server-secret-0123456789");
        assert_eq!(f[2].1, "secret-join-token");
        // Plain HTTP pulls from the control plane's registry.
        assert!(
            f[3].1.contains(
                "\"203.0.113.1:7070\":\n    endpoint:\n      - \"http://203.0.113.1:7070\""
            )
        );
        let sup = &f[4].1;
        for want in [
            "\"$dir/k3s\" 'server' '--data-dir' \"$dir/k3s-data\"",
            "'--token-file' \"$dir/server-token\" '--node-name' 'kr-1' '--node-ip' \"$(cat \"$dir/address\")\"",
            "'--agent-token-file' \"$dir/agent-token\"",
            "'--write-kubeconfig' \"$dir/kubeconfig\" '--write-kubeconfig-mode' '0600'",
            "'--disable' 'traefik,servicelb,metrics-server' '--cluster-cidr' '10.42.0.0/16'",
            ">>\"$dir/k3s.log\"",
            "ip saddr 10.42.0.0/16 ip daddr 169.254.0.0/16 drop",
            "iptables -I FORWARD -s 10.42.0.0/16 -d 169.254.0.0/16 -j DROP",
        ] {
            assert!(sup.contains(want), "{want} not in:\n{sup}");
        }
        let install = &f[5].1;
        for want in [
            "curl -fsSL --proto =https --proto-redir =https --connect-timeout",
            "kube_url='http://203.0.113.1:7070/v1/agent/kubeconfig'",
            "release='https://github.com/k3s-io/k3s/releases/download/v1.34.4%2Bk3s1'",
            "sha256sum \"$dir/k3s.part\"",
            "s#https://127.0.0.1:6443#https://$addr:6443#",
            "-X PUT -H @-",
            "setsid -f sh \"$dir/supervise.sh\"",
        ] {
            assert!(install.contains(want), "{want} not in:\n{install}");
        }
        // Secrets only in their files.
        for (path, text) in &f[3..] {
            assert!(!text.contains("secret"), "{path}");
        }
        parses(sup);
        parses(install);
    }

    #[test]
    fn the_other_servers_join_the_first_as_k3s_agents_without_the_join_token() {
        let doc = user_data(&boot(), &node(Some("198.51.100.7")), "kr-2").unwrap();
        let f = decoded(&doc);
        // Neither the join token nor the cluster's server token: only the agent token.
        for secret in ["/join-token", "/server-token"] {
            assert!(!f.iter().any(|(p, _)| p.ends_with(secret)), "{secret}");
        }
        for secret in ["secret-join-token", "server-secret"] {
            assert!(!f.iter().any(|(_, c)| c.contains(secret)), "{secret}");
        }
        assert_eq!(
            f.iter()
                .find(|(p, _)| p.ends_with("/agent-token"))
                .unwrap()
                .1,
            "agent-secret-0123456789"
        );
        let sup = &f
            .iter()
            .find(|(p, _)| p.ends_with("supervise.sh"))
            .unwrap()
            .1;
        assert!(
            sup.contains("\"$dir/k3s\" 'agent' '--server' 'https://198.51.100.7:6443'"),
            "{sup}"
        );
        assert!(!sup.contains("--write-kubeconfig"));
        assert!(sup.contains("'--token-file' \"$dir/agent-token\""), "{sup}");
        let install = &f.iter().find(|(p, _)| p.ends_with("install.sh")).unwrap().1;
        assert!(!install.contains("kubeconfig.rack"));
        parses(install);
        let v6 = k3s_command(&node(Some("2001:db8::7")), "kr-2").unwrap();
        assert!(v6.contains("'https://[2001:db8::7]:6443'"), "{v6}");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(user_data(&boot(), &node(Some("a b")), "kr-2").is_err());
        let mut short = node(None);
        short.agent_token = "short".into();
        assert!(user_data(&boot(), &short, "kr-1").is_err());
        // The server token goes to the first server only.
        let mut leaked = node(Some("198.51.100.7"));
        leaked.server_token = Some("server-secret-0123456789".into());
        assert!(user_data(&boot(), &leaked, "kr-2").is_err());
        let mut missing = node(None);
        missing.server_token = None;
        assert!(user_data(&boot(), &missing, "kr-1").is_err());
        // A plain HTTP release may be fetched as such (a mirror on a private network).
        let mut mirror = node(None);
        mirror.release = "http://10.0.0.5/k3s".into();
        let f = decoded(&user_data(&boot(), &mirror, "kr-1").unwrap());
        let install = &f.iter().find(|(p, _)| p.ends_with("install.sh")).unwrap().1;
        assert!(
            install.contains("curl -fsSL --connect-timeout"),
            "{install}"
        );
        assert!(registries_yaml("http://a'b:1/").is_err());
        let mut bad = node(None);
        bad.release = "ftp://x".into();
        assert!(user_data(&boot(), &bad, "kr-1").is_err());
        let mut b = boot();
        b.api_url = "10.0.0.1:7070".into();
        assert!(user_data(&b, &node(None), "kr-1").is_err());
        assert_eq!(
            registries_yaml("https://cp.example.com/").unwrap(),
            "mirrors: {}\n"
        );
    }
}
