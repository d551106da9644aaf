//! The fixture every privileged test starts from.
//!
//! Slots (one per test, so tests in one process never share names or subnets):
//! 1 run, 2 limits/oom, 3 limits/cgroup files, 4 security, 5 fs/ephemeral, 6 fs/tmpfs,
//! 7 net, 8 lifecycle/exec, 9 lifecycle/term, 10 lifecycle/kill, 11 lifecycle/adopt,
//! 12 teardown/delete, 13 teardown/purge, 14 forward, 15 base image, 16 host_overlap/subnet,
//! 17 host_overlap/sweep.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_runtime::host::{Cmd, CommandRunner, RealRunner, RealSys};
use mesh_runtime::image::busybox_image;
use mesh_runtime::shim::ShimCommand;
use mesh_runtime::{
    ExitStatus, ImageRef, InstanceSpec, Ipv4Net, NativeRuntime, NetworkInfo, NetworkSpec, Runtime,
    RuntimeOptions, User,
};
use mesh_types::size::SizeLimits;

pub struct Fixture {
    pub rt: NativeRuntime,
    pub runner: Arc<dyn CommandRunner>,
    pub image: ImageRef,
    pub slot: u32,
    pub prefix: String,
    pub table: String,
    pub cgroup_parent: String,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

/// Fails (never skips) when the machine cannot run these tests, saying how to fix it.
fn preflight() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    assert_eq!(uid, "0", "the privileged tests need root");
    for program in ["runc", "nft", "ip", "busybox", "nsenter"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "{program} is missing: run scripts/install-runtime-deps"
        );
    }
}

pub fn shim() -> ShimCommand {
    ShimCommand::new(env!("CARGO_BIN_EXE_mesh-runtime-shim"))
}

fn base36(mut n: u32, len: usize) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    for _ in 0..len {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

impl Fixture {
    pub async fn new(slot: u32) -> Fixture {
        Self::build(slot, |_| {}, None).await
    }

    /// With options changed, and optionally a runner other than the real one (the
    /// private-host-netns test runs every program through `nsenter`).
    pub async fn build(
        slot: u32,
        tweak: impl FnOnce(&mut RuntimeOptions),
        runner: Option<Arc<dyn CommandRunner>>,
    ) -> Fixture {
        preflight();
        assert!(slot < 32);
        let pid = std::process::id();
        let prefix = format!("t{}{}", base36(pid % 46_656, 3), base36(slot, 1));
        let table = format!("wmtest_{prefix}");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let image = busybox_image(&dir.path().join("busybox")).await.unwrap();
        let mut opts = RuntimeOptions::new(&root);
        opts.prefix = prefix.clone();
        opts.nft_table = table.clone();
        opts.cgroup_parent = table.clone();
        opts.shim = Some(shim());
        tweak(&mut opts);
        let runner = runner.unwrap_or_else(|| Arc::new(RealRunner));
        let rt = NativeRuntime::with_host(opts, shim(), runner.clone(), Arc::new(RealSys)).unwrap();
        let root = rt.options().root.clone();
        Fixture {
            rt,
            runner,
            image,
            slot,
            prefix,
            cgroup_parent: table.clone(),
            table,
            root,
            _dir: dir,
        }
    }

    /// The `k`th subnet (k < 2) of this test: 10.128.0.0/9 split by process and slot.
    pub fn subnet(&self, k: u32) -> Ipv4Net {
        assert!(k < 2);
        let index = ((std::process::id() % 512) * 32 + self.slot) * 2 + k;
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (index << 8));
        Ipv4Net::new(addr, 24).unwrap()
    }

    pub async fn network(&self, env: &str, k: u32) -> NetworkInfo {
        self.rt
            .ensure_network(&NetworkSpec::new(env, self.subnet(k)))
            .await
            .unwrap()
    }

    pub fn spec(&self, id: &str, env: &str, hostname: &str, command: &str) -> InstanceSpec {
        InstanceSpec {
            id: id.into(),
            environment: env.into(),
            hostname: hostname.into(),
            image: self.image.clone(),
            command: Some(command.into()),
            env: BTreeMap::new(),
            limits: SizeLimits {
                cpu: 0.5,
                memory_mb: 64,
                pids: 64,
            },
            user: User::NOBODY,
            address: None,
            hosts: Vec::new(),
        }
    }

    pub async fn wait(&self, id: &str, secs: u64) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(secs), self.rt.wait(id))
            .await
            .unwrap_or_else(|_| panic!("{id} did not end within {secs} s"))
            .unwrap()
    }

    pub fn stdout(&self, id: &str) -> String {
        std::fs::read_to_string(self.rt.instance_dir(id).logs().stdout).unwrap_or_default()
    }

    pub fn stderr(&self, id: &str) -> String {
        std::fs::read_to_string(self.rt.instance_dir(id).logs().stderr).unwrap_or_default()
    }

    /// Waits until the instance's stdout contains `text`.
    pub async fn wait_for_output(&self, id: &str, text: &str, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !self.stdout(id).contains(text) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} did not print {text:?} within {secs} s; stdout {:?}, stderr {:?}",
                self.stdout(id),
                self.stderr(id)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `sh -c <script>` inside a running instance.
    pub async fn sh(&self, id: &str, script: &str) -> mesh_runtime::ExecOutput {
        let args = ["/bin/sh".to_string(), "-c".into(), script.into()];
        tokio::time::timeout(Duration::from_secs(30), self.rt.exec(id, &args))
            .await
            .expect("exec finished")
            .unwrap()
    }

    async fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .runner
            .run(&Cmd::new(program).args(args.iter().copied()))
            .await
            .unwrap();
        out.stdout_str()
    }

    /// Everything of this runtime still on the machine; empty when teardown was complete.
    pub async fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for m in mesh_runtime::host::mounts_under(&mountinfo, &self.root) {
            left.push(format!("mount {}", m.display()));
        }
        let overlay_of_ours = std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("overlay") && l.contains(self.root.to_str().unwrap()));
        if overlay_of_ours {
            left.push("overlay in /proc/mounts".into());
        }
        let netns = self.run("ip", &["-j", "netns", "list"]).await;
        for ns in mesh_runtime::network::json_names(&netns, "name") {
            if self.rt.names().netns_instance(&ns).is_some() {
                left.push(format!("netns {ns}"));
            }
        }
        let links = self.run("ip", &["-j", "link", "show"]).await;
        for l in mesh_runtime::network::json_names(&links, "ifname") {
            if l.starts_with(&self.prefix) {
                left.push(format!("link {l}"));
            }
        }
        let tables = self.run("nft", &["list", "tables"]).await;
        if tables
            .lines()
            .any(|l| l.trim() == format!("table inet {}", self.table))
        {
            left.push(format!("nft table {}", self.table));
        }
        let cgroups = mesh_runtime::cgroup::CgroupMounts::parse(&mountinfo);
        for d in cgroups.all_dirs(&self.cgroup_parent) {
            if d.exists() {
                left.push(format!("cgroup {}", d.display()));
            }
        }
        let containers = self
            .run(
                "runc",
                &[
                    "--root",
                    &self.root.join("runc").to_string_lossy(),
                    "list",
                    "-q",
                ],
            )
            .await;
        for c in containers.lines().filter(|l| !l.is_empty()) {
            left.push(format!("container {c}"));
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("instances")) {
            for e in entries.flatten() {
                left.push(format!("instance dir {}", e.path().display()));
            }
        }
        left
    }

    pub async fn assert_clean(&self) {
        let left = self.leftovers().await;
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let rt = self.rt.clone();
        let purged = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(rt.purge())
        })
        .join();
        if let Ok(Err(e)) = purged {
            eprintln!("fixture cleanup: {e}");
        }
    }
}

/// An HTTP/1.0 GET through busybox `nc` inside an instance (busybox `wget` crashes here).
pub fn http_get(host: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' | nc -w 2 {host} {port}")
}

/// The command of a busybox web server serving `body` on port 80.
pub fn httpd(body: &str) -> String {
    format!(
        "mkdir -p /tmp/www && echo {body} > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"
    )
}

/// Waits until `addr:port` accepts TCP connections from the test process.
pub async fn wait_port(addr: Ipv4Addr, port: u16, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let connect = tokio::net::TcpStream::connect((addr, port));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr}:{port} did not open within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}
