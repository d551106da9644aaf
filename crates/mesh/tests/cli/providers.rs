//! The `ssh` provider against real SSH servers: each "server" is a network namespace of this
//! machine on a test bridge of its own (10.198.6x.0/24), running Debian's sshd. The driver
//! installs `mesh` and starts the agent under its supervisor; the agent joins a control plane
//! listening on the bridge, serves an app through its router, and goes away when the server is
//! deleted. Bad input: a wrong key, an unreachable server, an exhausted pool, a changed host
//! key. Privileged: CI runs it as root.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mesh_provider::pool::{PoolState, StateFile, parse_server};
use mesh_provider::ssh::{SshDriver, SshSettings};
use mesh_provider::{Bootstrap, CreateServer, Driver, MadeServer, NetPlan, ProviderError};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::*;
use crate::web::assert_root;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn keygen(path: &Path) {
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
fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Waits (bounded) until `pid` is gone.
fn wait_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "{what} ({pid}) still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One test server: a network namespace with an address on the lab's bridge and an sshd.
struct TestServer {
    ns: String,
    ip: String,
    dir: PathBuf,
    sshd: Option<Child>,
}

impl TestServer {
    fn address(&self) -> String {
        format!("{}:22", self.ip)
    }

    /// Starts (or restarts) sshd with the host key `host_key` (made if missing).
    fn start_sshd(&mut self, authorized: &Path) {
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

    fn stop_sshd(&mut self) {
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

/// A bridge with test servers on it, all removed when dropped (with any agent left running
/// under `root`: supervisor and agent stopped, then purged in their namespace).
struct Lab {
    bridge: String,
    servers: Vec<TestServer>,
    /// Where agents' directories go on the servers (`<root>/<rack>/<server>`).
    root: PathBuf,
    /// Racks' directories elsewhere (the control plane's default root), swept the same way.
    racks: Vec<PathBuf>,
    /// The driver's user key and authorized_keys.
    key: PathBuf,
    authorized: PathBuf,
    dir: tempfile::TempDir,
}

impl Lab {
    /// A bridge at 10.198.<subnet>.1/24 and `n` servers at .2, .3, ...
    fn new(subnet: u8, n: usize) -> Lab {
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

    fn driver(
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
    fn stop_agent(ns: &str, dir: &Path, net: Option<&NetPlan>) {
        if let Some(pid) = read_pid(&dir.join("supervisor.pid")) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(pid) = read_pid(&dir.join("agent.pid")) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
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
                let i = usize::from(script.contains("'--net-prefix' 'px'"));
                if let Some(s) = self.servers.get(i) {
                    Lab::stop_agent(&s.ns, &dir, Some(&net_plan(i)));
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
fn net_plan(i: usize) -> NetPlan {
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

fn spec(s: &TestServer, i: usize) -> String {
    let n = net_plan(i);
    format!(
        "{},net-prefix={},subnet-pool={}",
        s.address(),
        n.net_prefix,
        n.subnet_pool
    )
}

/// `mesh up --no-agent` listening on the lab's bridge, so agents in the namespaces reach it.
struct ControlPlane {
    home: Home,
    child: Child,
    url: String,
}

impl ControlPlane {
    /// On a free port of `ip`, telling agents on made servers to use that address.
    fn start(ip: &str) -> ControlPlane {
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("up.log")).unwrap_or_default()
    }

    fn mesh(&self, args: &[&str]) -> Out {
        run_in(&self.home, args, None)
    }

    /// Creates rack `rack` on provider `provider` (domain `<rack>.test`, address `address`) and
    /// returns its join token.
    fn rack(&self, rack: &str, provider: &str, address: &str) -> String {
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
    fn wait_ready(&self, rack: &str, server: &str, agent_log: &Path) -> Value {
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
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /` at `ip:80` with `host`: status and body.
fn get(ip: &str, host: &str) -> Result<(u16, String), String> {
    let addr = format!("{ip}:80").parse().unwrap();
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

fn bootstrap(cp: &ControlPlane, lab: &Lab, rack: &str, token: &str) -> Bootstrap {
    Bootstrap {
        binary: mesh_bin(),
        api_url: cp.url.clone(),
        join_token: token.into(),
        rack: rack.into(),
        root: lab.root.display().to_string(),
        http_listen: "0.0.0.0:80".into(),
        net: None,
    }
}

fn create(name: &str, b: Bootstrap) -> CreateServer {
    CreateServer {
        name: name.into(),
        size: "pool".into(),
        region: "lab".into(),
        bootstrap: b,
    }
}

#[test]
fn the_ssh_provider_makes_a_server_whose_agent_joins_and_serves_then_deletes_it() {
    assert_root();
    let lab = Lab::new(61, 2);
    let mut lab = lab;
    let cp = ControlPlane::start("10.198.61.1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = lab.dir.path().join("cp/providers/pool/state.json");
    let specs: Vec<String> = lab
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| spec(s, i))
        .collect();
    let driver = lab.driver(&specs, &lab.key, &state).unwrap();

    // Racks for the driver to make servers for, by hand: on the `local` provider, whose racks
    // get no server made by the control plane.
    let east = cp.rack("east", "local", &lab.servers[0].ip);
    let west = cp.rack("west", "local", &lab.servers[1].ip);

    // Make a server: the first free one of the pool.
    rt.block_on(driver.wait_reachable(&lab.servers[0].address(), Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let made = rt
        .block_on(driver.create(&create("east-1", bootstrap(&cp, &lab, "east", &east))))
        .unwrap();
    let created_in = t.elapsed();
    let dir = lab.root.join("east/east-1");
    assert_eq!(
        made,
        MadeServer {
            name: "east-1".into(),
            rack: "east".into(),
            address: lab.servers[0].address(),
            host: lab.servers[0].ip.clone(),
            dir: dir.display().to_string(),
            net: Some(net_plan(0)),
        }
    );
    let server = cp.wait_ready("east", "east-1", &dir.join("agent.log"));
    let joined_in = t.elapsed();
    assert_eq!(server["address"], lab.servers[0].ip.as_str(), "{server}");
    // The join token is in a file only root reads, never on a command line.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("join-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "join-token mode {mode:o}");
    let agent = read_pid(&dir.join("agent.pid")).unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{agent}/cmdline")).unwrap();
    assert!(!cmdline.contains(&east), "the token is on the command line");
    assert!(
        cmdline.contains("pw") && cmdline.contains("10.237.0.0/16"),
        "{cmdline}"
    );

    // An app on that rack answers through the agent's router.
    let at = ["--env", "shop", "--stack", "app"];
    cp.mesh(&["env", "create", "shop", "--rack", "east"]).ok();
    cp.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    cp.mesh(&[&["stack", "set-image", "busybox"][..], &at[..]].concat())
        .ok();
    let web = "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
    cp.mesh(
        &[
            &["svc", "create", "-n", "web", "--size", "nano"][..],
            &at[..],
            &["--", web][..],
        ]
        .concat(),
    )
    .ok();
    cp.mesh(
        &[
            &["endpoint", "publish", "shop.east.test", "--service", "web"][..],
            &at[..],
        ]
        .concat(),
    )
    .ok();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = get(&lab.servers[0].ip, "shop.east.test");
        if matches!(&got, Ok((200, body)) if body.trim() == "hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not answer through east-1's router: {got:?}\nagent:\n{}\nmesh up:\n{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default(),
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let serving_in = t.elapsed();

    // The supervisor starts the agent again when it dies.
    kill(Pid::from_raw(agent), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(pid) = read_pid(&dir.join("agent.pid"))
            && pid != agent
            && pid_alive(pid)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor did not restart the agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A second server for another rack takes the other pool server, with its own networking;
    // a third finds the pool exhausted.
    let west_made = rt
        .block_on(driver.create(&create("west-1", bootstrap(&cp, &lab, "west", &west))))
        .unwrap();
    assert_eq!(west_made.address, lab.servers[1].address());
    cp.wait_ready("west", "west-1", &lab.root.join("west/west-1/agent.log"));
    let e = rt
        .block_on(driver.create(&create("west-2", bootstrap(&cp, &lab, "west", &west))))
        .unwrap_err();
    assert!(matches!(e, ProviderError::Exhausted(_)), "{e}");
    assert!(e.to_string().contains("all 2 are in use"), "{e}");
    assert!(!lab.root.join("west/west-2").exists());

    // The pool's state survives a restart of the control plane: a new driver knows both.
    let again = lab.driver(&specs, &lab.key, &state).unwrap();
    let mut names: Vec<String> = rt
        .block_on(again.list())
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    assert_eq!(names, ["east-1", "west-1"]);

    // Deleting a server stops its agent and supervisor, removes its directory and frees it.
    let supervisor = read_pid(&dir.join("supervisor.pid")).unwrap();
    let current = read_pid(&dir.join("agent.pid")).unwrap();
    let t = Instant::now();
    rt.block_on(again.delete("east-1")).unwrap();
    let deleted_in = t.elapsed();
    wait_gone(supervisor, "the supervisor");
    wait_gone(current, "the agent");
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(get(&lab.servers[0].ip, "shop.east.test").is_err());
    let left: PoolState = StateFile::new(&state).load().unwrap();
    assert_eq!(
        left.made.keys().collect::<Vec<_>>(),
        [&lab.servers[1].address()]
    );
    rt.block_on(again.delete("west-1")).unwrap();
    assert!(rt.block_on(again.list()).unwrap().is_empty());
    let e = rt.block_on(again.delete("west-1")).unwrap_err();
    assert!(matches!(e, ProviderError::NotFound(_)), "{e}");
    // The freed server can be made again.
    assert_eq!(
        rt.block_on(again.create(&create("east-2", bootstrap(&cp, &lab, "east", &east))))
            .unwrap()
            .address,
        lab.servers[0].address()
    );
    rt.block_on(again.delete("east-2")).unwrap();

    // The same through the CLI: the provider holds the pool, creating a rack makes its server
    // and follows its agent until it is healthy, deleting the rack deletes the server.
    let rack = format!("pv{}", std::process::id());
    lab.racks.push(Path::new("/var/lib/widemesh").join(&rack));
    cp.mesh(&[
        "provider",
        "add",
        "cli",
        "--kind",
        "ssh",
        "--server",
        &specs[0],
        "--server",
        &specs[1],
        "--secret",
        "user=root",
        "--secret-file",
        &format!("private_key={}", lab.key.display()),
    ])
    .ok();
    let listed = cp.mesh(&["provider", "list", "--json"]).ok().json();
    assert!(listed.to_string().contains("\"servers\""), "{listed}");
    let t = Instant::now();
    let out = cp
        .mesh(&[
            "rack",
            "create",
            &rack,
            "--provider",
            "cli",
            "--region",
            "lab",
            "--size",
            "pool",
            "--domain",
            "cli.test",
            "--address",
            &lab.servers[0].ip,
        ])
        .ok();
    let rack_in = t.elapsed();
    for want in [
        "making the rack's server with provider cli",
        "server made, mesh installed and the agent started",
        &format!(
            "agent {rack}-1 joined rack {rack} from {}",
            lab.servers[0].ip
        ),
        &format!("server {rack}-1 is healthy"),
        "join token: ",
    ] {
        assert!(
            out.stdout.contains(want),
            "{want:?} not in:\n{}",
            out.stdout
        );
    }
    let cli_dir = Path::new("/var/lib/widemesh")
        .join(&rack)
        .join(format!("{rack}-1"));
    assert!(cli_dir.join("supervisor.pid").exists());
    let cp_state = cp.home.data_dir().join("providers/cli/state.json");
    assert_eq!(StateFile::new(&cp_state).load().unwrap().made.len(), 1);
    // A second rack gets the pool's other server; a third, none, and nothing is left of it.
    let second = format!("{rack}b");
    lab.racks.push(Path::new("/var/lib/widemesh").join(&second));
    cp.mesh(&[
        "rack",
        "create",
        &second,
        "--provider",
        "cli",
        "--region",
        "lab",
        "--size",
        "pool",
        "--domain",
        "cli2.test",
        "--address",
        &lab.servers[1].ip,
    ])
    .ok();
    let third = format!("{rack}c");
    let e = cp
        .mesh(&[
            "rack",
            "create",
            &third,
            "--provider",
            "cli",
            "--region",
            "lab",
            "--size",
            "pool",
            "--domain",
            "cli3.test",
            "--address",
            "10.198.61.9",
        ])
        .fails();
    assert!(e.error().contains("the pool has no free server"), "{e:#?}");
    cp.mesh(&["rack", "show", &third]).fails();
    for r in [&second, &rack] {
        cp.mesh(&["rack", "delete", r, "-y"]).ok();
    }
    assert!(!cli_dir.exists(), "{} is still there", cli_dir.display());
    assert!(
        !cli_dir.parent().unwrap().exists(),
        "the rack's directory is still there"
    );
    assert!(StateFile::new(&cp_state).load().unwrap().made.is_empty());
    // Removing the provider forgets the host keys it trusted.
    assert!(
        !StateFile::new(&cp_state)
            .load()
            .unwrap()
            .host_keys
            .is_empty()
    );
    cp.mesh(&["provider", "remove", "cli"]).ok();
    assert!(!cp_state.exists());
    eprintln!(
        "ssh provider through the CLI: `mesh rack create` returned with a healthy server in {rack_in:?}"
    );
    eprintln!(
        "ssh provider: server made (binary uploaded, supervisor running) in {created_in:?}, agent joined after {joined_in:?}, app served after {serving_in:?}; deleted in {deleted_in:?}"
    );
}

#[test]
fn the_ssh_provider_says_what_is_wrong_with_keys_addresses_and_the_pool() {
    assert_root();
    let mut lab = Lab::new(62, 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = lab.dir.path().join("state.json");
    let address = lab.servers[0].address();
    let specs = vec![address.clone()];

    // A key the server does not know.
    let stranger = lab.dir.path().join("stranger");
    keygen(&stranger);
    let wrong = lab.driver(&specs, &stranger, &state).unwrap();
    let e = rt.block_on(wrong.verify(&address)).unwrap_err();
    assert!(matches!(e, ProviderError::BadCredentials(_)), "{e}");
    assert!(
        e.to_string()
            .contains("refused the private key for user \"root\"")
            && e.to_string().contains("authorized_keys"),
        "{e}"
    );
    // Not a key at all.
    let e = SshDriver::new(SshSettings {
        servers: vec![parse_server(&address).unwrap()],
        user: "root".into(),
        private_key: "not a key".into(),
        state: state.clone(),
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("not an unencrypted OpenSSH private key"),
        "{e}"
    );

    // Nothing listens there.
    let driver = lab.driver(&specs, &lab.key, &state).unwrap();
    let nowhere = format!("{}:2222", lab.servers[0].ip);
    let e = rt.block_on(driver.verify(&nowhere)).unwrap_err();
    assert!(matches!(e, ProviderError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("server {nowhere} is unreachable")),
        "{e}"
    );
    let e = rt
        .block_on(driver.wait_reachable(&nowhere, Duration::from_secs(1)))
        .unwrap_err();
    assert!(e.to_string().contains("not within 1s"), "{e}");

    // First contact trusts the host key; a changed one is refused, by this driver and after a
    // restart, and nothing is made.
    let first = rt.block_on(driver.verify(&address)).unwrap();
    assert!(first.starts_with("ssh-ed25519 "), "{first}");
    assert_eq!(rt.block_on(driver.verify(&address)).unwrap(), first);
    std::fs::remove_file(lab.servers[0].dir.join("host_ed25519")).unwrap();
    let auth = lab.authorized.clone();
    lab.servers[0].start_sshd(&auth);
    let e = rt.block_on(driver.verify(&address)).unwrap_err();
    assert!(matches!(e, ProviderError::HostKeyChanged { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("the host key of server {address} changed")),
        "{e}"
    );
    let restarted = lab.driver(&specs, &lab.key, &state).unwrap();
    let b = Bootstrap {
        binary: mesh_bin(),
        api_url: "http://10.198.62.1:9".into(),
        join_token: "t".into(),
        rack: "east".into(),
        root: lab.root.display().to_string(),
        http_listen: "0.0.0.0:80".into(),
        net: None,
    };
    let e = rt
        .block_on(restarted.create(&create("east-1", b.clone())))
        .unwrap_err();
    assert!(matches!(e, ProviderError::HostKeyChanged { .. }), "{e}");
    assert!(rt.block_on(restarted.list()).unwrap().is_empty());
    assert!(!lab.root.join("east").exists());

    // An exhausted pool says which servers hold it.
    let mut taken = PoolState::default();
    taken.made.insert(
        address.clone(),
        MadeServer {
            name: "other-1".into(),
            rack: "other".into(),
            address: address.clone(),
            host: lab.servers[0].ip.clone(),
            dir: "/x".into(),
            net: None,
        },
    );
    let full = lab.dir.path().join("full.json");
    StateFile::new(&full).save(&taken).unwrap();
    let e = rt
        .block_on(
            lab.driver(&specs, &lab.key, &full)
                .unwrap()
                .create(&create("east-1", b)),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the pool has no free server for east/east-1: all 1 are in use: {address} (other/other-1); add a server to the provider or delete a server"
        )
    );
}
