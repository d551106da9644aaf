//! The test servers of the provider tests: network namespaces on a bridge of their own, each
//! with Debian's sshd; the control plane they reach; cleanup by their own names and pids, even
//! when a test fails.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mesh_provider::pool::parse_server;
use mesh_provider::ssh::{SshDriver, SshSettings};
use mesh_provider::{Bootstrap, CreateServer, NetPlan, ProviderError};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn keygen(path: &Path) {
    sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "",
        "-f",
        path.to_str().unwrap(),
    ]);
}

/// Running, and not a zombie waiting for a parent that does not reap (orphans of a container's
/// init may stay zombies).
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Waits (bounded) until `pid` is gone.
pub fn wait_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "{what} ({pid}) still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One test server: a network namespace with an address on the lab's bridge and an sshd.
pub struct TestServer {
    pub ns: String,
    pub ip: String,
    pub dir: PathBuf,
    pub sshd: Option<Child>,
}

impl TestServer {
    pub fn address(&self) -> String {
        format!("{}:22", self.ip)
    }

    /// Starts (or restarts) sshd with the host key `host_key` (made if missing).
    pub fn start_sshd(&mut self, authorized: &Path) {
        self.stop_sshd();
        let key = self.dir.join("host_ed25519");
        if !key.exists() {
            keygen(&key);
        }
        let config = self.dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {ip}:22\nHostKey {key}\nPidFile {pid}\nAuthorizedKeysFile {auth}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n",
                ip = self.ip,
                key = key.display(),
                pid = self.dir.join("sshd.pid").display(),
                auth = authorized.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = File::create(self.dir.join("sshd.log")).unwrap();
        // nsenter, not `ip netns exec`: that one remounts /sys, which hides the cgroup mounts
        // the agent's runtime needs. Only the network is the server's own.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sshd = Some(child);
        // Bounded: sshd answers with its banner.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect_timeout(
                &self.address().parse().unwrap(),
                Duration::from_millis(500),
            ) {
                let mut b = [0u8; 4];
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                if s.read_exact(&mut b).is_ok() && &b == b"SSH-" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sshd in {} did not start: {}",
                self.ns,
                std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Drops this server's connections to TCP `port` (its agent's to the control plane, say)
    /// until the guard goes.
    pub fn refuse_port(&self, port: u16) -> Refused {
        let rules = format!(
            "table inet wmtest_refuse {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    tcp dport {port} drop\n  }}\n}}\n"
        );
        let out = crate::harness::output_with_stdin(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.ns))
                .args(["nft", "-f", "-"]),
            rules.as_bytes(),
        );
        assert!(out.status.success(), "nft in {}: {out:?}", self.ns);
        Refused {
            ns: self.ns.clone(),
        }
    }

    pub fn stop_sshd(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // nsenter execs sshd, so the child is sshd; its pid file too, in case.
        if let Some(pid) = read_pid(&self.dir.join("sshd.pid")) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A server's refused port ([`TestServer::refuse_port`]), open again when dropped.
pub struct Refused {
    ns: String,
}

impl Drop for Refused {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["nft", "delete", "table", "inet", "wmtest_refuse"])
            .output();
    }
}

/// A bridge with test servers on it, all removed when dropped (with any agent left running
/// under `root`: supervisor and agent stopped, then purged in their namespace).
pub struct Lab {
    pub bridge: String,
    pub servers: Vec<TestServer>,
    /// Where agents' directories go on the servers (`<root>/<rack>/<server>`).
    pub root: PathBuf,
    /// Racks' directories elsewhere (the control plane's default root), swept the same way.
    pub racks: Vec<PathBuf>,
    /// The agents' networking on each test server (see [`net_plan`]).
    pub plans: Vec<NetPlan>,
    /// The driver's user key and authorized_keys.
    pub key: PathBuf,
    pub authorized: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// A bridge at 10.198.<subnet>.1/24 and `n` servers at .2, .3, ..., whose agents use the
    /// networking of [`net_plan`].
    pub fn new(subnet: u8, n: usize) -> Lab {
        Lab::with_plans(subnet, (0..n).map(net_plan).collect())
    }

    /// A bridge at 10.198.<subnet>.1/24 and a server for each of `plans` (its agents'
    /// networking) at .2, .3, ...: tests that run at once need their own.
    pub fn with_plans(subnet: u8, plans: Vec<NetPlan>) -> Lab {
        let n = plans.len();
        let id = format!(
            "{}{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new().prefix("wmpv-").tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        keygen(&key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
        let bridge = format!("wpv{id}b");
        assert!(bridge.len() <= 15, "{bridge}");
        let mut lab = Lab {
            bridge: bridge.clone(),
            servers: Vec::new(),
            root: dir.path().join("servers"),
            racks: Vec::new(),
            plans,
            key,
            authorized,
            dir,
        };
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("10.198.{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        for i in 0..n {
            let ns = format!("wmpv-{id}-{i}");
            let ip = format!("10.198.{subnet}.{}", i + 2);
            let host_end = format!("wpv{id}h{i}");
            sh(&["ip", "netns", "add", &ns]);
            let sdir = lab.dir.path().join(&ns);
            std::fs::create_dir_all(&sdir).unwrap();
            lab.servers.push(TestServer {
                ns: ns.clone(),
                ip: ip.clone(),
                dir: sdir,
                sshd: None,
            });
            sh(&[
                "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            sh(&["ip", "link", "set", &host_end, "master", &bridge, "up"]);
            let in_ns = |args: &[&str]| {
                sh(&[&["ip", "netns", "exec", &ns][..], args].concat());
            };
            in_ns(&["ip", "link", "set", "lo", "up"]);
            in_ns(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            in_ns(&["ip", "link", "set", "eth0", "up"]);
            in_ns(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("10.198.{subnet}.1"),
            ]);
            let auth = lab.authorized.clone();
            lab.servers[i].start_sshd(&auth);
        }
        lab
    }

    pub fn driver(
        &self,
        specs: &[String],
        key: &Path,
        state: &Path,
    ) -> Result<SshDriver, ProviderError> {
        SshDriver::new(SshSettings {
            servers: specs.iter().map(|s| parse_server(s).unwrap()).collect(),
            user: "root".into(),
            private_key: std::fs::read_to_string(key).unwrap(),
            state: state.to_path_buf(),
        })
    }

    /// Stops what a made server left running in `dir`, in namespace `ns`.
    pub fn stop_agent(ns: &str, dir: &Path, net: Option<&NetPlan>) {
        if let Some(pid) = read_pid(&dir.join("supervisor.pid")) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // What the supervisor ran: an agent, or k3s on a Kubernetes rack's server.
        for file in ["agent.pid", "k3s.pid"] {
            if let Some(pid) = read_pid(&dir.join(file)) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let mesh = dir.join("mesh");
        if mesh.exists() {
            let mut args = vec![
                format!("--net=/run/netns/{ns}"),
                mesh.display().to_string(),
                "agent-purge".into(),
                "--data-dir".into(),
                dir.join("data").display().to_string(),
            ];
            if let Some(n) = net {
                args.extend(["--net-prefix".into(), n.net_prefix.clone()]);
                args.extend(["--subnet-pool".into(), n.subnet_pool.clone()]);
            }
            let _ = Command::new("nsenter")
                .args(&args)
                .stdout(Stdio::null())
                .status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Agents left by a failed test: every directory <root>/<rack>/<server>.
        let mut racks: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        racks.extend(self.racks.iter().cloned());
        for rack in racks {
            for server in std::fs::read_dir(&rack).into_iter().flatten().flatten() {
                let dir = server.path();
                // The supervisor names its agent's prefix, which says its test server.
                let script = std::fs::read_to_string(dir.join("supervise.sh")).unwrap_or_default();
                let i = self
                    .plans
                    .iter()
                    .position(|p| script.contains(&format!("'--net-prefix' '{}'", p.net_prefix)))
                    .unwrap_or(0);
                if let Some(s) = self.servers.get(i) {
                    Lab::stop_agent(&s.ns, &dir, self.plans.get(i));
                }
            }
            if !rack.starts_with(&self.root) {
                let _ = std::fs::remove_dir_all(&rack);
            }
        }
        for s in &mut self.servers {
            s.stop_sshd();
            quiet(&["ip", "netns", "del", &s.ns]);
        }
        quiet(&["ip", "link", "del", &self.bridge]);
    }
}

/// The agents' networking on test server `i`: their own prefix and pool, as agents sharing a
/// machine need.
pub fn net_plan(i: usize) -> NetPlan {
    [
        NetPlan {
            net_prefix: "pw".into(),
            subnet_pool: "10.237.0.0/16".into(),
        },
        NetPlan {
            net_prefix: "px".into(),
            subnet_pool: "10.238.0.0/16".into(),
        },
    ][i]
        .clone()
}

pub fn spec(s: &TestServer, i: usize) -> String {
    spec_with(s, &net_plan(i))
}

/// The `--server` of a test server whose agents use `n`.
pub fn spec_with(s: &TestServer, n: &NetPlan) -> String {
    format!(
        "{},net-prefix={},subnet-pool={}",
        s.address(),
        n.net_prefix,
        n.subnet_pool
    )
}

/// `mesh up --no-agent` listening on the lab's bridge, so agents in the namespaces reach it.
pub struct ControlPlane {
    pub home: Home,
    pub child: Child,
    pub url: String,
}

impl ControlPlane {
    /// On a free port of `ip`, telling agents on made servers to use that address.
    pub fn start(ip: &str) -> ControlPlane {
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = Home::new();
        let out = File::create(home.path().join("up.log")).unwrap();
        let child = home
            .command(&mesh_bin())
            .args(["up", "--no-agent", "--listen", &format!("{ip}:{port}")])
            .args(["--advertise-url", &format!("http://{ip}:{port}")])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut cp = ControlPlane {
            home,
            child,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(cp.home.config_file())
                && let Ok(v) = text.parse::<toml::Table>()
                && let Some(url) = v.get("api_url").and_then(|u| u.as_str())
                && v.contains_key("token")
            {
                cp.url = url.to_string();
                return cp;
            }
            assert!(
                Instant::now() < deadline && cp.child.try_wait().unwrap().is_none(),
                "mesh up did not start:\n{}",
                cp.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("up.log")).unwrap_or_default()
    }

    pub fn mesh(&self, args: &[&str]) -> Out {
        run_in(&self.home, args, None)
    }

    /// Creates rack `rack` on provider `provider` (domain `<rack>.test`, address `address`) and
    /// returns its join token.
    pub fn rack(&self, rack: &str, provider: &str, address: &str) -> String {
        let created = self
            .mesh(&[
                "rack",
                "create",
                rack,
                "--provider",
                provider,
                "--region",
                "lab",
                "--size",
                "pool",
                "--domain",
                &format!("{rack}.test"),
                "--address",
                address,
                "--json",
            ])
            .ok()
            .json();
        created["join_token"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) until `server` of `rack` is ready.
    pub fn wait_ready(&self, rack: &str, server: &str, agent_log: &Path) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = self.mesh(&["rack", "servers", rack, "--json"]).ok().json();
            if let Some(s) = list
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == server && s["state"] == "ready")
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "server {server} of rack {rack} not ready: {list:#}\nagent:\n{}\nmesh up:\n{}",
                std::fs::read_to_string(agent_log).unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(20));
    }
}

/// `GET /` at `ip:80` (or at `ip:port`) with `host`: status and body.
pub fn get(ip: &str, host: &str) -> Result<(u16, String), String> {
    let addr = if ip.contains(':') {
        ip.parse().unwrap()
    } else {
        format!("{ip}:80").parse().unwrap()
    };
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {buf:?}"))?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

pub fn bootstrap(cp: &ControlPlane, lab: &Lab, rack: &str, token: &str) -> Bootstrap {
    Bootstrap {
        binary: mesh_bin(),
        api_url: cp.url.clone(),
        join_token: token.into(),
        rack: rack.into(),
        root: lab.root.display().to_string(),
        http_listen: "0.0.0.0:80".into(),
        net: None,
        kube: None,
    }
}

pub fn create(name: &str, b: Bootstrap) -> CreateServer {
    CreateServer {
        name: name.into(),
        size: "pool".into(),
        region: "lab".into(),
        bootstrap: b,
    }
}
