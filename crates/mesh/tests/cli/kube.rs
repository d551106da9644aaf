//! The Kubernetes runtime on the real single-node cluster of `scripts/kube-up`, as a new user
//! runs it: a rack made with `--runtime kubernetes --kubeconfig`, its `mesh agent` reconciling
//! into the cluster with the rack's edge router on this machine (the cluster's host), apps
//! deployed, rolled, scaled, run and exec'd into, their logs read; environments that cannot reach
//! each other; an agent restart and a control plane outage under load; bad clusters refused.
//!
//! These tests need the cluster: `scripts/test-kube` (and `.ci/run`'s Kubernetes stage) starts it
//! and runs them with `WIDEMESH_KUBE_DIR` set; `scripts/test` leaves them out. Each test has its
//! own control plane, rack and environment names (namespaces are the cluster's), and removes the
//! namespaces its rack made when it ends. Privileged: CI runs them as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::load::Load;
use crate::web::{assert_root, free_port, get, wait_for_body, wait_for_body_from};

/// The host's end of the cluster's link (scripts/kube/lib.sh): the node reaches the control
/// plane's registry there.
const HOST_LINK: &str = "10.169.0.1";
/// The node's end of that link: a pod on the node's network answers there.
const NODE: &str = "10.169.0.2";

/// The cluster `scripts/kube-up` made, named by `WIDEMESH_KUBE_DIR`.
pub struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    pub fn get() -> Cluster {
        let dir = std::env::var_os("WIDEMESH_KUBE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "WIDEMESH_KUBE_DIR is not set: the Kubernetes tests run on the cluster of \
                 scripts/kube-up; run them with scripts/test-kube"
                )
            });
        assert!(
            dir.join("kubeconfig").is_file(),
            "{} holds no cluster (no kubeconfig)",
            dir.display()
        );
        Cluster { dir }
    }

    /// The node's network namespace (`netns=` in the cluster's state file).
    pub fn netns(&self) -> String {
        let state = std::fs::read_to_string(self.dir.join("state")).unwrap();
        state
            .split_whitespace()
            .find_map(|w| w.strip_prefix("netns="))
            .unwrap_or_else(|| panic!("no netns= in {state}"))
            .to_string()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// `kubectl args...` as the cluster's admin: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(self.dir.join("bin/kubectl"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {}: {err}{out}", args.join(" "));
        out
    }

    /// Lets the node's containerd pull from a control plane served over plain HTTP at
    /// `registry` (`host:port`), until the guard goes.
    fn trust(&self, registry: &str) -> Trusted {
        let dir = self.dir.join("containerd/certs.d").join(registry);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"http://{registry}\"\n[host.\"http://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .unwrap();
        Trusted(dir)
    }
}

struct Trusted(PathBuf);

impl Drop for Trusted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network behind the cluster's node, as a cloud's metadata service is behind a server: a
/// namespace holding 169.254.169.254 and an ordinary address, 192.0.2.80, both answering
/// `metadata` over HTTP on port 8099, routed from the node. Gone when dropped.
struct BehindNode {
    ns: String,
    server: Child,
    _dir: tempfile::TempDir,
}

impl BehindNode {
    fn start(cluster: &Cluster) -> BehindNode {
        let id = std::process::id() % 100_000;
        let (ns, veth, node) = (format!("wmm-{id}"), format!("wmm{id}n"), cluster.netns());
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ip(&["netns", "add", &ns]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "metadata\n").unwrap();
        let mut b = BehindNode {
            server: Command::new("true").spawn().unwrap(),
            ns: ns.clone(),
            _dir: dir,
        };
        ip(&[
            "link", "add", &veth, "netns", &node, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        ip(&["-n", &node, "addr", "add", "198.18.0.1/30", "dev", &veth]);
        ip(&["-n", &node, "link", "set", &veth, "up"]);
        for args in [
            &["link", "set", "lo", "up"][..],
            &["addr", "add", "198.18.0.2/30", "dev", "eth0"],
            &["link", "set", "eth0", "up"],
            &["addr", "add", "169.254.169.254/32", "dev", "lo"],
            &["addr", "add", "192.0.2.80/32", "dev", "lo"],
            &["route", "add", "default", "via", "198.18.0.1"],
        ] {
            ip(&[&["-n", &ns][..], args].concat());
        }
        for dst in ["169.254.169.254/32", "192.0.2.80/32"] {
            ip(&["-n", &node, "route", "add", dst, "via", "198.18.0.2"]);
        }
        b.server = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg(crate::cloud_lab::python())
            .args([
                "-m",
                "http.server",
                "8099",
                "--bind",
                "0.0.0.0",
                "--directory",
            ])
            .arg(b._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["curl", "-sf", "-m", "1", "http://127.0.0.1:8099/"])
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "the metadata stand-in did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        b
    }
}

impl Drop for BehindNode {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // The veth pair, and the node's routes over it, go with the namespace.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Removes namespaces when dropped: every one `rack` made (by its label), or one by name.
struct Namespaces<'a> {
    cluster: &'a Cluster,
    /// What `kubectl delete ns` is given.
    which: Vec<String>,
}

impl<'a> Namespaces<'a> {
    /// Also removes what an earlier run of the same test left (its namespaces may still be
    /// terminating), so the test starts clean.
    fn clean(cluster: &'a Cluster, rack: &str) -> Self {
        Self::start(
            cluster,
            vec!["-l".into(), format!("widemesh.dev/rack={rack}")],
        )
    }

    /// Namespace `name` (as [`Namespaces::clean`]).
    fn named(cluster: &'a Cluster, name: &str) -> Self {
        Self::start(cluster, vec![name.to_string(), "--ignore-not-found".into()])
    }

    fn start(cluster: &'a Cluster, which: Vec<String>) -> Self {
        let n = Namespaces { cluster, which };
        n.remove();
        n
    }

    fn remove(&self) {
        let mut args = vec!["delete", "ns"];
        args.extend(self.which.iter().map(String::as_str));
        args.extend(["--wait=true", "--timeout=120s"]);
        let _ = self.cluster.kubectl(&args);
    }
}

impl Drop for Namespaces<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A control plane reachable from the cluster, a Kubernetes rack on it and the rack's agent
/// with its edge router on `127.0.0.1:<http>`.
pub struct KubeRack<'a> {
    pub p: Platform,
    pub rack: String,
    pub http: u16,
    token: String,
    agent: Option<Child>,
    agent_starts: u32,
    _namespaces: Namespaces<'a>,
    _trusted: Trusted,
}

impl<'a> KubeRack<'a> {
    /// `mesh up` (with `extra`, such as `--no-agent --builder fake`) listening on the cluster's
    /// link, and rack `rack` made on the cluster with its agent joined.
    pub fn start(cluster: &'a Cluster, rack: &str, extra: &[&str]) -> KubeRack<'a> {
        Self::start_in(Home::new(), cluster, rack, extra)
    }

    /// [`KubeRack::start`] in `home`.
    pub fn start_in(home: Home, cluster: &'a Cluster, rack: &str, extra: &[&str]) -> KubeRack<'a> {
        let namespaces = Namespaces::clean(cluster, rack);
        let port = free_port();
        let listen = format!("{HOST_LINK}:{port}");
        let p = Platform::start_listening(home, &listen, extra);
        let trusted = cluster.trust(&listen);
        let kubeconfig = cluster.kubeconfig();
        let created = p
            .mesh(&[
                "rack",
                "create",
                rack,
                "--provider",
                "local",
                "--region",
                "kube",
                "--runtime",
                "kubernetes",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--domain",
                &format!("{rack}.localhost"),
                "--json",
            ])
            .ok()
            .json();
        assert_eq!(created["rack"]["runtime"], "kubernetes", "{created}");
        let mut k = KubeRack {
            token: created["join_token"].as_str().unwrap().to_string(),
            p,
            rack: rack.to_string(),
            http: free_port(),
            agent: None,
            agent_starts: 0,
            _namespaces: namespaces,
            _trusted: trusted,
        };
        k.start_agent();
        k
    }

    /// Starts the rack's agent (a second one takes the router's sockets over from the first,
    /// which then stops).
    pub fn start_agent(&mut self) {
        self.agent_starts += 1;
        let log = self.log_path(self.agent_starts);
        let out = std::fs::File::create(&log).unwrap();
        let dir = self.p.home.path().join("agent");
        let child = self
            .p
            .home
            .command(&mesh_bin())
            .args(["agent", "--api-url", &self.p.url, "--token", &self.token])
            .args(["--name", &format!("{}-agent", self.rack)])
            .args(["--data-dir", dir.to_str().unwrap()])
            .args(["--address", HOST_LINK])
            .args(["--http-listen", &format!("127.0.0.1:{}", self.http)])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        if let Some(mut old) = self.agent.replace(child) {
            // It hands the router over and stops by itself.
            let deadline = Instant::now() + Duration::from_secs(60);
            while old.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the old agent did not stop:\n{}",
                    self.agent_log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Stops the rack's agent (gracefully); what it made keeps running.
    pub fn stop_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            stop_child(&mut a, Duration::from_secs(20));
        }
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.p.home.path().join(format!("agent-{n}.log"))
    }

    pub fn agent_log(&self) -> String {
        (1..=self.agent_starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----- next agent\n")
    }

    pub fn mesh(&self, args: &[&str]) -> Out {
        self.p.mesh(args)
    }

    /// The environment's instances, as `mesh instances --json` lists them.
    pub fn instances(&self, env: &str) -> Vec<serde_json::Value> {
        self.mesh(&["instances", "--env", env, "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until `env` has `n` healthy instances of `service` and no other of it.
    pub fn wait_for_healthy(
        &self,
        env: &str,
        service: &str,
        n: usize,
        within: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let all: Vec<_> = self
                .instances(env)
                .into_iter()
                .filter(|i| i["service"] == service)
                .collect();
            if all.len() == n && all.iter().all(|i| i["state"] == "healthy") {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "{env}: not {n} healthy {service} instances within {within:?}: {all:#?}\n{}",
                self.agent_log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for KubeRack<'_> {
    fn drop(&mut self) {
        self.stop_agent();
    }
}

/// A source directory the platform's test builder (`--builder fake`) puts on the busybox image:
/// busybox's httpd serving `page` on $PORT.
pub fn write_app(dir: &Path, page: &str) {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), format!("{page}\n")).unwrap();
    std::fs::write(
        dir.join("Procfile"),
        "web: httpd -f -p $PORT -h /app/public\n",
    )
    .unwrap();
}

/// [`write_app`] with more Procfile lines (`release: ...`, `ticker: ...`).
pub fn write_app_with(dir: &Path, page: &str, more: &str) {
    write_app(dir, page);
    std::fs::write(
        dir.join("Procfile"),
        format!("web: httpd -f -p $PORT -h /app/public\n{more}\n"),
    )
    .unwrap();
}

/// A load through the rack's router as `host`: every answer must be 200 with one of `bodies`.
fn load(http: u16, host: &str, bodies: &[&str]) -> Load {
    let host = host.to_string();
    let bodies: Vec<String> = bodies.iter().map(|b| b.to_string()).collect();
    Load::start(move || {
        Some(match get(http, &host) {
            Ok((200, b)) if bodies.iter().any(|w| b.starts_with(w.as_str())) => Ok(b),
            other => Err(format!("{other:?}")),
        })
    })
}

#[track_caller]
fn assert_no_failures(what: &str, load: Load) {
    let seen = load.finish();
    assert!(seen.ok > 20, "{what}: only {} answers", seen.ok);
    assert!(
        seen.failures.is_empty(),
        "{what}: {} of {} requests failed: {:?}",
        seen.failures.len(),
        seen.ok + seen.failures.len() as u64,
        seen.failures
    );
}

fn deploy(k: &KubeRack, env: &str, dir: &Path) -> Out {
    let out = k.p.mesh_for(
        &["deploy", "--env", env, "--dir", dir.to_str().unwrap()],
        Duration::from_secs(300),
    );
    assert_eq!(out.code, 0, "{out:#?}\n{}", k.agent_log());
    out
}

/// How many times `text` is in the environment's logs of the last `since`.
fn log_count(k: &KubeRack, env: &str, text: &str) -> usize {
    let out = k.mesh(&["logs", "--env", env, "--since", "10m"]).ok();
    out.stdout.lines().filter(|l| l.ends_with(text)).count()
}

#[test]
fn a_kubernetes_rack_deploys_rolls_scales_runs_and_ships_logs() {
    assert_root();
    let cluster = Cluster::get();
    let mut k = KubeRack::start(&cluster, "kr1", &["--no-agent", "--builder", "fake"]);
    let env = "kube-shop";
    let host = format!("{env}.kr1.localhost");
    let shown = k.mesh(&["rack", "show", "kr1"]).ok();
    assert!(shown.stdout.contains("kubernetes"), "{}", shown.stdout);
    k.mesh(&["env", "create", env, "--rack", "kr1"]).ok();
    let ns = format!("wm-{env}");

    // A first deploy: the pods pull the built image from the control plane and serve through
    // the rack's router.
    let src = tempfile::tempdir().unwrap();
    let app = src.path().join("app");
    write_app(&app, "v1");
    let started = Instant::now();
    let out = deploy(&k, env, &app);
    assert!(out.stdout.contains("v0 is live"), "{}", out.stdout);
    wait_for_body(k.http, &host, "v1", Duration::from_secs(60));
    eprintln!(
        "first deploy to serving: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let labels = cluster.kubectl_ok(&["get", "ns", &ns, "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.contains("\"widemesh.dev/rack\":\"kr1\""), "{labels}");
    cluster.kubectl_ok(&[
        "get",
        "deployment/app-web",
        "service/app-web",
        "networkpolicy/widemesh-isolation",
        "secret/widemesh-pull",
        "-n",
        &ns,
    ]);

    // A cron service: a CronJob that runs every minute (checked at the end).
    k.mesh(&[
        "svc",
        "create",
        "-n",
        "tick",
        "--env",
        env,
        "--stack",
        "app",
        "--schedule",
        "* * * * *",
        "--",
        "echo cron-tick-ran",
    ])
    .ok();

    // A redeploy and a config change under load: no request fails. The redeploy has a
    // release command, run once as a pod of the new image before the rollout.
    write_app_with(
        &app,
        "v2",
        "release: echo release ran on the cluster in $(hostname)",
    );
    let l = load(k.http, &host, &["v1", "v2"]);
    let out = deploy(&k, env, &app);
    assert!(
        out.stdout.contains("release ran on the cluster in "),
        "{out:#?}"
    );
    wait_for_body(k.http, &host, "v2", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert_no_failures("redeploy", l);

    // A release command that fails stops the deployment before its rollout: v2 serves on.
    write_app_with(&app, "v3", "release: echo migrating; exit 3");
    let failed = k.p.mesh_for(
        &["deploy", "--env", env, "--dir", app.to_str().unwrap()],
        Duration::from_secs(300),
    );
    assert_ne!(failed.code, 0, "{failed:#?}");
    assert!(
        failed.stderr.contains("release command failed"),
        "{failed:#?}"
    );
    assert_eq!(get(k.http, &host).unwrap(), (200, "v2".to_string()));

    let l = load(k.http, &host, &["v2"]);
    k.mesh(&[
        "config",
        "set",
        "GREETING=hi",
        "--env",
        env,
        "--stack",
        "app",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = k.mesh(&[
            "exec",
            "--env",
            env,
            k.wait_for_healthy(env, "web", 1, Duration::from_secs(60))[0]["id"]
                .as_str()
                .unwrap(),
            "--",
            "sh",
            "-c",
            "echo $GREETING",
        ]);
        if out.code == 0 && out.stdout.trim() == "hi" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the config change did not roll out: {out:#?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_no_failures("config change", l);

    // A rollback to the first build.
    k.mesh(&["rollback", "v0", "--env", env, "--stack", "app"])
        .ok();
    wait_for_body(k.http, &host, "v1", Duration::from_secs(120));

    // Scale: replicas of the Deployment, instances in `mesh instances`.
    k.mesh(&[
        "svc",
        "scale",
        "web",
        "--instances",
        "3",
        "--env",
        env,
        "--stack",
        "app",
    ])
    .ok();
    let three = k.wait_for_healthy(env, "web", 3, Duration::from_secs(120));
    let replicas = cluster.kubectl_ok(&[
        "get",
        "deployment/app-web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "3");
    assert!(
        three.iter().all(|i| i["rack"] == "kr1"
            && i["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("10.170."))),
        "{three:#?}"
    );

    // `mesh run`: a pod run to its end, its output shipped, its exit code returned.
    let run = k.p.mesh_for(
        &[
            "run",
            "--env",
            env,
            "--stack",
            "app",
            "--",
            "echo run-said-$PORT; exit 7",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, 7, "{run:#?}\n{}", k.agent_log());
    assert!(run.stdout.contains("run-said-5000"), "{run:#?}");

    // `mesh exec`: through the pods' exec API, with the command's output and exit code.
    let id = three[0]["id"].as_str().unwrap();
    let exec = k.mesh(&[
        "exec",
        "--env",
        env,
        id,
        "--",
        "sh",
        "-c",
        "echo in-$HOSTNAME; exit 3",
    ]);
    assert_eq!(exec.code, 3, "{exec:#?}");
    assert_eq!(exec.stdout.trim(), format!("in-{id}"));
    let missing = k.mesh(&["exec", "--env", env, "app-web-nope", "--", "true"]);
    assert_ne!(missing.code, 0, "{missing:#?}");

    // Logs survive an agent restart without doubling: the run's line is there once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_count(&k, env, "run-said-5000") == 0 {
        assert!(
            Instant::now() < deadline,
            "the run's output never reached the logs"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    k.start_agent();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(log_count(&k, env, "run-said-5000"), 1);

    // The cron service ran within a minute and a bit, and its output was shipped.
    let deadline = Instant::now() + Duration::from_secs(100);
    while log_count(&k, env, "cron-tick-ran") == 0 {
        assert!(
            Instant::now() < deadline,
            "the CronJob never ran:\n{}",
            cluster.kubectl_ok(&["get", "cronjobs,jobs,pods", "-n", &ns])
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let policy = cluster.kubectl_ok(&[
        "get",
        "cronjob/app-tick",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.concurrencyPolicy}",
    ]);
    assert_eq!(policy, "Forbid");

    // Deleting the environment removes its namespace and everything in it.
    k.mesh(&["env", "delete", env, "--yes"]).ok();
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.kubectl(&["get", "ns", &ns]).0 {
        assert!(Instant::now() < deadline, "namespace {ns} is still there");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn environments_on_a_kubernetes_rack_cannot_reach_each_other() {
    assert_root();
    let cluster = Cluster::get();
    let k = KubeRack::start(&cluster, "kr2", &["--no-agent", "--builder", "fake"]);
    let src = tempfile::tempdir().unwrap();
    for env in ["kube-iso-a", "kube-iso-b"] {
        k.mesh(&["env", "create", env, "--rack", "kr2"]).ok();
        let app = src.path().join(env).join("app");
        write_app(&app, &format!("page of {env}"));
        deploy(&k, env, &app);
    }
    let a = k.wait_for_healthy("kube-iso-a", "web", 1, Duration::from_secs(60));
    let b = k.wait_for_healthy("kube-iso-b", "web", 1, Duration::from_secs(60));
    let a_id = a[0]["id"].as_str().unwrap();
    let b_ip = b[0]["address"].as_str().unwrap();
    let in_a = |cmd: &str| k.mesh(&["exec", "--env", "kube-iso-a", a_id, "--", "sh", "-c", cmd]);

    // Inside its environment, a service is reached by its name (busybox's own resolver: its
    // static wget cannot resolve names itself).
    let own = in_a(
        "ip=$(nslookup app-web 2>/dev/null | awk '/^Name:.*app-web/ {getline; print $2; exit}'); \
         echo \"resolved $ip\"; timeout 5 wget -q -O- http://$ip:5000/",
    );
    assert_eq!(own.code, 0, "{own:#?}");
    assert!(own.stdout.contains("page of kube-iso-a"), "{own:#?}");
    assert!(own.stdout.contains("resolved 10.171."), "{own:#?}");
    // Another environment's pod and Service are out of reach.
    let by_pod = in_a(&format!("timeout 3 wget -q -O- http://{b_ip}:5000/"));
    assert_ne!(
        by_pod.code, 0,
        "reached another environment's pod: {by_pod:#?}"
    );
    let b_service = cluster.kubectl_ok(&[
        "get",
        "service/app-web",
        "-n",
        "wm-kube-iso-b",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let by_service = in_a(&format!("timeout 3 wget -q -O- http://{b_service}:5000/"));
    assert_ne!(
        by_service.code, 0,
        "reached another environment's Service: {by_service:#?}"
    );
    // A cloud's metadata service (which serves a server's user data, and with it the secrets
    // its first boot needs) is out of reach; any other address outside is not.
    let behind = BehindNode::start(&cluster);
    let direct = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", cluster.netns()))
        .args(["curl", "-s", "-m", "5", "http://169.254.169.254:8099/"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&direct.stdout).trim(), "metadata");
    let outside = in_a("timeout 5 wget -q -O- http://192.0.2.80:8099/");
    assert!(outside.stdout.contains("metadata"), "{outside:#?}");
    let metadata = in_a("timeout 3 wget -q -O- http://169.254.169.254:8099/");
    assert!(
        metadata.code != 0 && !metadata.stdout.contains("metadata"),
        "a pod reached the metadata service: {metadata:#?}"
    );
    drop(behind);
    // Tenant code holds no credentials to the cluster.
    let token = in_a("ls /var/run/secrets/kubernetes.io/serviceaccount");
    assert_ne!(
        token.code, 0,
        "a service account token is mounted: {token:#?}"
    );
    // It runs under the runtime's seccomp filter (mode 2) and cannot gain privileges.
    let status = in_a("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status");
    assert!(
        status.stdout.contains("Seccomp:\t2") && status.stdout.contains("NoNewPrivs:\t1"),
        "{status:#?}"
    );
    // Both still answer through the router.
    wait_for_body(
        k.http,
        "kube-iso-b.kr2.localhost",
        "page of kube-iso-b",
        Duration::from_secs(10),
    );
    wait_for_body(
        k.http,
        "kube-iso-a.kr2.localhost",
        "page of kube-iso-a",
        Duration::from_secs(10),
    );
}

#[test]
fn an_agent_restart_and_a_control_plane_outage_keep_pods_serving() {
    assert_root();
    let cluster = Cluster::get();
    let mut k = KubeRack::start(&cluster, "kr3", &["--no-agent", "--builder", "fake"]);
    let env = "kube-calm";
    let host = format!("{env}.kr3.localhost");
    k.mesh(&["env", "create", env, "--rack", "kr3"]).ok();
    let src = tempfile::tempdir().unwrap();
    let app = src.path().join("app");
    // A worker that counts every second: its output must reach the control plane whole and
    // once, whatever happens to the agent.
    write_app_with(
        &app,
        "steady",
        "ticker: i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done",
    );
    deploy(&k, env, &app);
    wait_for_body(k.http, &host, "steady", Duration::from_secs(60));

    let l = load(k.http, &host, &["steady"]);
    // A new agent process takes the router over from the running one.
    k.start_agent();
    std::thread::sleep(Duration::from_secs(3));
    // The control plane goes away; a restarted agent still reaches the cluster (the rack's
    // kubeconfig as last seen, sealed in its data directory) and keeps routing.
    k.p.stop();
    std::thread::sleep(Duration::from_secs(2));
    k.start_agent();
    std::thread::sleep(Duration::from_secs(3));
    k.p.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert_no_failures("agent restarts and an outage", l);
    let log = k.agent_log();
    assert!(
        log.contains("using the rack's cluster as last seen"),
        "{log}"
    );

    // The ticks written while the agents changed and the control plane was away were shipped
    // afterwards, and the ones read again by each new agent were not kept twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = k
            .mesh(&[
                "logs",
                "--env",
                env,
                "--service",
                "ticker",
                "--since",
                "10m",
            ])
            .ok();
        let ticks: Vec<u64> = out
            .stdout
            .lines()
            .filter_map(|l| l.split("tick-").nth(1))
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        let mut unique = ticks.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ticks.len(), "a tick shipped twice: {ticks:?}");
        let whole = unique.first() == Some(&1) && unique.len() as u64 == *unique.last().unwrap();
        // Past the restarts and the outage (about 15 s), with none missing.
        if whole && unique.len() >= 15 {
            break;
        }
        assert!(Instant::now() < deadline, "ticks missing: {unique:?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // With the agent stopped the pods keep serving; `mesh agent-purge` then removes what the
    // rack made in the cluster.
    k.stop_agent();
    let ns = "wm-kube-calm";
    assert!(
        cluster
            .kubectl_ok(&["get", "deploy", "-n", ns, "-o", "name"])
            .contains("app-web")
    );
    let kubeconfig = cluster.kubeconfig();
    let purged = k
        .mesh(&[
            "agent-purge",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--rack",
            "kr3",
        ])
        .ok();
    assert!(purged.stdout.contains("rack kr3"), "{purged:#?}");
    let (_, phase, _) = cluster.kubectl(&["get", "ns", ns, "-o", "jsonpath={.status.phase}"]);
    assert!(phase.is_empty() || phase == "Terminating", "{ns}: {phase}");
    // A rack name that cannot be is refused before the cluster is touched.
    let other = k
        .mesh(&[
            "agent-purge",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--rack",
            "Not A Rack",
        ])
        .fails();
    assert!(other.error().contains("the rack's name"), "{other:#?}");
}

#[test]
fn bad_clusters_and_foreign_namespaces_are_refused_with_nothing_left_behind() {
    assert_root();
    let cluster = Cluster::get();
    let p = Platform::start();
    let home = p.home.path();
    let rack = |name: &str, kubeconfig: &Path| {
        p.mesh(&[
            "rack",
            "create",
            name,
            "--provider",
            "local",
            "--region",
            "kube",
            "--runtime",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
    };
    let admin = std::fs::read_to_string(cluster.kubeconfig()).unwrap();

    // A cluster that does not answer.
    let unreachable = home.join("unreachable.kubeconfig");
    let server_line = admin
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .unwrap();
    std::fs::write(
        &unreachable,
        admin.replace(server_line, "    server: https://127.0.0.1:1"),
    )
    .unwrap();
    let out = rack("kbad1", &unreachable).fails();
    assert!(
        out.error().contains("the cluster does not answer"),
        "{out:#?}"
    );

    // Not a kubeconfig at all.
    let garbage = home.join("garbage.kubeconfig");
    std::fs::write(&garbage, "{not: [yaml").unwrap();
    let out = rack("kbad2", &garbage).fails();
    assert!(
        out.error().contains("kubeconfig cannot be used"),
        "{out:#?}"
    );

    // Credentials with only some of the rights: the error lists the missing ones.
    let sa = "wm-test-limited";
    let _limited = Limited {
        cluster: &cluster,
        name: sa,
    };
    cluster.kubectl_ok(&["create", "serviceaccount", sa, "-n", "default"]);
    cluster.kubectl_ok(&[
        "create",
        "clusterrole",
        sa,
        "--verb=get,list,create,patch,delete",
        "--resource=namespaces",
    ]);
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        sa,
        &format!("--clusterrole={sa}"),
        &format!("--serviceaccount=default:{sa}"),
    ]);
    let token = cluster.kubectl_ok(&["create", "token", sa, "-n", "default"]);
    let token_line = admin
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap();
    let limited = home.join("limited.kubeconfig");
    std::fs::write(
        &limited,
        admin.replace(token_line, &format!("    token: {}", token.trim())),
    )
    .unwrap();
    let out = rack("kbad3", &limited).fails();
    let e = out.error();
    assert!(
        e.contains("lack rights the Widemesh agent needs"),
        "{out:#?}"
    );
    assert!(
        e.contains("patch deployments.apps")
            && e.contains("create pods/exec")
            && e.contains("get pods/log"),
        "{e}"
    );
    assert!(
        !e.contains(" create namespaces"),
        "a granted right is listed as missing: {e}"
    );

    // A kubeconfig without the runtime, and a Kubernetes rack without a kubeconfig.
    let out = p
        .mesh(&[
            "rack",
            "create",
            "kbad4",
            "--provider",
            "local",
            "--region",
            "kube",
            "--kubeconfig",
            cluster.kubeconfig().to_str().unwrap(),
        ])
        .fails();
    assert!(
        out.error().contains("only for Kubernetes racks"),
        "{out:#?}"
    );
    let out = p
        .mesh(&[
            "rack",
            "create",
            "kbad5",
            "--provider",
            "local",
            "--region",
            "kube",
            "--runtime",
            "kubernetes",
        ])
        .fails();
    assert!(out.error().contains("--kubeconfig is required"), "{out:#?}");
    let racks = p.mesh(&["rack", "list", "--json"]).ok().json();
    assert_eq!(
        racks.as_array().unwrap().len(),
        1,
        "only the local rack: {racks}"
    );

    // A namespace that exists and is not Widemesh's is never taken over.
    rack("kr4", &cluster.kubeconfig()).ok();
    let _ns = Namespaces::clean(&cluster, "kr4");
    let foreign = ForeignNamespace::new(&cluster, "wm-kube-taken");
    let out = p
        .mesh(&["env", "create", "kube-taken", "--rack", "kr4"])
        .fails();
    assert!(
        out.error().contains(
            "namespace wm-kube-taken already exists and belongs to something that is not Widemesh"
        ),
        "{out:#?}"
    );
    assert!(
        p.mesh(&["env", "show", "kube-taken"]).code != 0,
        "the environment was made"
    );
    let labels =
        cluster.kubectl_ok(&["get", "ns", &foreign.0, "-o", "jsonpath={.metadata.labels}"]);
    assert!(
        !labels.contains("widemesh"),
        "the namespace was changed: {labels}"
    );
}

/// A service account with its role and binding, removed when dropped.
struct Limited<'a> {
    cluster: &'a Cluster,
    name: &'a str,
}

impl Drop for Limited<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(&[
            "delete",
            "clusterrolebinding",
            self.name,
            "--ignore-not-found",
        ]);
        let _ = self
            .cluster
            .kubectl(&["delete", "clusterrole", self.name, "--ignore-not-found"]);
        let _ = self.cluster.kubectl(&[
            "delete",
            "serviceaccount",
            self.name,
            "-n",
            "default",
            "--ignore-not-found",
        ]);
    }
}

/// A namespace made by someone else, removed when dropped.
struct ForeignNamespace<'a>(String, &'a Cluster);

impl<'a> ForeignNamespace<'a> {
    fn new(cluster: &'a Cluster, name: &str) -> Self {
        cluster.kubectl_ok(&["create", "namespace", name]);
        ForeignNamespace(name.to_string(), cluster)
    }
}

impl Drop for ForeignNamespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .1
            .kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

#[test]
fn a_buildpack_app_and_a_dockerfile_app_built_for_real_serve_from_the_cluster() {
    use crate::examples::{copy_dir, examples, image_from_dir};
    assert_root();
    let cluster = Cluster::get();
    // The real builder: buildpacks on the built-in Debian base, Dockerfiles with buildah.
    let k = KubeRack::start(&cluster, "kr5", &["--no-agent"]);
    let work = tempfile::tempdir().unwrap();
    let build = Duration::from_secs(900);

    // A buildpack app: its image is the built-in base (served to the node as a layer of the
    // registry) under the app's layers.
    k.mesh(&["env", "create", "kube-static", "--rack", "kr5"])
        .ok();
    let dir = work.path().join("static");
    copy_dir(&examples().join("static"), &dir);
    let started = Instant::now();
    let out = k.p.mesh_for(
        &[
            "deploy",
            "--env",
            "kube-static",
            "--dir",
            dir.to_str().unwrap(),
        ],
        build,
    );
    assert_eq!(out.code, 0, "{out:#?}\n{}", k.agent_log());
    wait_for_body(
        k.http,
        "kube-static.kr5.localhost",
        "<!doctype html>",
        Duration::from_secs(120),
    );
    eprintln!(
        "buildpack app built and serving from the cluster in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // A Dockerfile app, from a Debian base imported into the builder's buildah storage (no
    // registry is reachable here) and named through its declared BASE argument.
    let storage = k.p.home.data_dir().join("builds/buildah/kube-docker");
    let base = PathBuf::from(mesh_runtime::image::MACHINE_CACHE).join("base-bookworm/rootfs");
    assert!(
        base.is_dir(),
        "the base image was made by the buildpack build above"
    );
    image_from_dir(
        &storage,
        &base,
        "localhost/widemesh-test/debian:bookworm",
        None,
    );
    k.mesh(&["env", "create", "kube-docker", "--rack", "kr5"])
        .ok();
    k.mesh(&["create", "stack", "dockerfile", "--env", "kube-docker"])
        .ok();
    k.mesh(&[
        "config",
        "set",
        "BASE=localhost/widemesh-test/debian:bookworm",
        "--env",
        "kube-docker",
        "--stack",
        "dockerfile",
    ])
    .ok();
    let dir = work.path().join("dockerfile");
    copy_dir(&examples().join("dockerfile"), &dir);
    let started = Instant::now();
    let out = k.p.mesh_for(
        &[
            "deploy",
            "--env",
            "kube-docker",
            "--dir",
            dir.to_str().unwrap(),
        ],
        build,
    );
    assert_eq!(out.code, 0, "{out:#?}\n{}", k.agent_log());
    assert!(out.stderr.contains("dockerfile formula"), "{}", out.stderr);
    wait_for_body(
        k.http,
        "kube-docker.kr5.localhost",
        "hello from dockerfile",
        Duration::from_secs(120),
    );
    eprintln!(
        "Dockerfile app built and serving from the cluster in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // It runs as the image's user, in the cluster.
    let pods = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "wm-kube-docker",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    assert!(pods.contains("wm-node"), "{pods}");
}

/// Objects applied from a file, deleted (and waited for) when dropped.
struct Applied<'a> {
    cluster: &'a Cluster,
    file: PathBuf,
}

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(&[
            "delete",
            "-f",
            self.file.to_str().unwrap(),
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ]);
    }
}

#[test]
fn the_agent_installed_into_the_cluster_runs_the_rack_and_routes_on_the_node() {
    assert_root();
    let cluster = Cluster::get();
    let mut k = KubeRack::start(&cluster, "kr6", &["--no-agent", "--builder", "fake"]);
    // The agent outside the cluster goes; the one installed inside takes over its server.
    k.stop_agent();
    let (http, https) = (free_port(), free_port());
    let manifest = k
        .mesh(&[
            "rack",
            "agent-manifest",
            "kr6",
            "--token",
            &k.token,
            "--http-listen",
            &format!("0.0.0.0:{http}"),
            "--https-listen",
            &format!("0.0.0.0:{https}"),
        ])
        .ok()
        .stdout;
    let file = k.p.home.path().join("agent.json");
    std::fs::write(&file, &manifest).unwrap();
    // What an earlier run of this test may have left.
    let _ = cluster.kubectl(&[
        "delete",
        "namespace",
        "widemesh-kr6",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ]);
    let _applied = Applied {
        cluster: &cluster,
        file: file.clone(),
    };
    cluster.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    // The node pulls this control plane's own mesh from its registry and starts the agent and
    // the node's router.
    for what in ["deployment/widemesh-agent", "daemonset/widemesh-router"] {
        let (rolled, out, err) = cluster.kubectl(&[
            "rollout",
            "status",
            what,
            "-n",
            "widemesh-kr6",
            "--timeout=180s",
        ]);
        assert!(
            rolled,
            "{what}: {out}\n{err}\n{}\n{}",
            cluster
                .kubectl(&["describe", "pods", "-n", "widemesh-kr6"])
                .1,
            cluster
                .kubectl(&["logs", "-n", "widemesh-kr6", what, "--previous"])
                .1
        );
    }

    let env = "kube-inside";
    k.mesh(&["env", "create", env, "--rack", "kr6"]).ok();
    let src = tempfile::tempdir().unwrap();
    let app = src.path().join("app");
    write_app(&app, "served from inside");
    let out = k.p.mesh_for(
        &["deploy", "--env", env, "--dir", app.to_str().unwrap()],
        Duration::from_secs(300),
    );
    assert_eq!(
        out.code,
        0,
        "{out:#?}\n{}",
        cluster
            .kubectl(&["logs", "-n", "widemesh-kr6", "deployment/widemesh-agent"])
            .1
    );
    k.wait_for_healthy(env, "web", 1, Duration::from_secs(120));
    // The rack's one server is the agent's pod, at the node's address (the routers register
    // none), and the node's router answers there.
    let servers = k.mesh(&["rack", "servers", "kr6", "--json"]).ok().json();
    assert_eq!(servers.as_array().unwrap().len(), 1, "{servers}");
    let server = &servers.as_array().unwrap()[0];
    assert_eq!(server["name"], "kr6-agent", "{servers}");
    assert_eq!(server["address"], NODE, "{servers}");
    let alias = format!("{env}.kr6.localhost");
    wait_for_body_from(
        NODE,
        http,
        &alias,
        "served from inside",
        Duration::from_secs(60),
    );
    // Routing needs no agent: with it gone the node's router still serves the app.
    cluster.kubectl_ok(&[
        "scale",
        "deployment/widemesh-agent",
        "-n",
        "widemesh-kr6",
        "--replicas=0",
    ]);
    let _ = cluster.kubectl(&[
        "wait",
        "--for=delete",
        "pod",
        "-l",
        "app.kubernetes.io/name=widemesh-agent",
        "-n",
        "widemesh-kr6",
        "--timeout=60s",
    ]);
    wait_for_body_from(
        NODE,
        http,
        &alias,
        "served from inside",
        Duration::from_secs(5),
    );
    // The token is in a Secret, not in the pods' specs.
    let specs = cluster.kubectl_ok(&[
        "get",
        "deploy,daemonset",
        "-n",
        "widemesh-kr6",
        "-o",
        "json",
    ]);
    assert!(!specs.contains(&k.token), "{specs}");

    // A native rack has no agent to install into a cluster.
    let native = k
        .mesh(&["rack", "agent-manifest", "local", "--token", "x"])
        .fails();
    assert!(
        native.error().contains("only a Kubernetes rack"),
        "{native:#?}"
    );
    k.mesh(&["env", "delete", env, "--yes"]).ok();
}

/// Seconds from `mesh deploy` (first deploy of a new environment on `rack`) until its alias
/// answers through `http`, and from `mesh svc scale` 1 -> 2 until the new instance is healthy.
fn deploy_and_start(k: &KubeRack, rack: &str, env: &str, http: u16, app: &Path) -> (f64, f64) {
    k.mesh(&["env", "create", env, "--rack", rack]).ok();
    // The local rack's domain is `localhost`; the others' `<rack>.localhost`.
    let host = match rack {
        "local" => format!("{env}.localhost"),
        _ => format!("{env}.{rack}.localhost"),
    };
    let started = Instant::now();
    deploy(k, env, app);
    wait_for_body(http, &host, "bench", Duration::from_secs(120));
    let deploy_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    k.mesh(&[
        "svc",
        "scale",
        "web",
        "--instances",
        "2",
        "--env",
        env,
        "--stack",
        "app",
    ])
    .ok();
    k.wait_for_healthy(env, "web", 2, Duration::from_secs(120));
    let start_s = started.elapsed().as_secs_f64();
    k.mesh(&["env", "delete", env, "--yes"]).ok();
    (deploy_s, start_s)
}

/// The figures of `benches/kube-rack` (run alone, with `--run-ignored only`): first deploy to
/// serving and instance start on the Kubernetes rack and on a native rack of the same control
/// plane, `RUNS` times each (the platform's test builder, so no build time is counted).
#[test]
#[ignore = "a benchmark: benches/kube-rack runs it"]
fn bench_deploy_to_serving_and_instance_start() {
    assert_root();
    let cluster = Cluster::get();
    let native_http = free_port();
    let home = Home::new();
    let _purge = crate::web::Purge::new(home.data_dir(), "kbn");
    let http_s = format!("127.0.0.1:{native_http}");
    let k = KubeRack::start_in(
        home,
        &cluster,
        "kbench",
        &[
            "--builder",
            "fake",
            "--net-prefix",
            "kbn",
            "--subnet-pool",
            "10.246.0.0/16",
            "--http-listen",
            &http_s,
        ],
    );
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let src = tempfile::tempdir().unwrap();
    let app = src.path().join("app");
    write_app(&app, "bench");
    for run in 1..=runs {
        let (d, s) = deploy_and_start(
            &k,
            "local",
            &format!("bench-native-{run}"),
            native_http,
            &app,
        );
        println!(
            "native run {run}: first deploy to serving {d:.2}s, instance start to healthy {s:.2}s"
        );
        let (d, s) = deploy_and_start(&k, "kbench", &format!("bench-kube-{run}"), k.http, &app);
        println!(
            "kubernetes run {run}: first deploy to serving {d:.2}s, pod start to healthy {s:.2}s"
        );
    }
}

/// Serves fixed files over HTTP on `ip` (a k3s release mirror), until dropped.
struct Mirror {
    url: String,
    _rt: tokio::runtime::Runtime,
}

impl Mirror {
    fn start(ip: &str, files: Vec<(&'static str, Vec<u8>)>) -> Mirror {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(format!("{ip}:0")))
            .unwrap();
        let url = format!("http://{}/k3s/v1.34.4", listener.local_addr().unwrap());
        let files = std::sync::Arc::new(files);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let files = files.clone();
            async move {
                let name = uri
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                match files.iter().find(|(n, _)| *n == name) {
                    Some((_, body)) => (axum::http::StatusCode::OK, body.clone()),
                    None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        });
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mirror { url, _rt: rt }
    }
}

/// The stand-in for k3s (the k3s release cannot be downloaded here: its GitHub release is not
/// reachable, and neither the Go module proxy nor Debian, PyPI or npm serve it). `k3s server`
/// writes the test cluster's admin kubeconfig where k3s writes its own (`--write-kubeconfig`),
/// `k3s agent` does nothing more; both record how they were started in `log`, then run until
/// stopped as k3s would.
fn k3s_stand_in(cluster: &Cluster, log: &Path) -> String {
    format!(
        r#"#!/bin/sh
log='{log}'
tokens=
out=
prev=
for a in "$@"; do
  [ "$prev" = --write-kubeconfig ] && out=$a
  [ "$prev" = --token-file ] && tokens=$a
  prev=$a
done
echo "k3s $* token=$(cat "$tokens")" >>"$log"
if [ "$1" = server ]; then
  cp '{kubeconfig}' "$out.part" && chmod 0600 "$out.part" && mv "$out.part" "$out"
fi
exec sleep 900
"#,
        log = log.display(),
        kubeconfig = cluster.kubeconfig().display()
    )
}

#[test]
fn a_cloud_provider_makes_a_k3s_rack_whose_first_server_hands_its_cluster_over() {
    use crate::cloud_lab::{HetznerFake, NsServer, run_cloud_config};
    use crate::cloud_providers::{
        add_hetzner, cloud_files, file_ending, sent_user_data, server_ip,
    };
    assert_root();
    let cluster = Cluster::get();
    let rack = "kp";
    let _namespaces = Namespaces::clean(&cluster, rack);
    let _installed = Namespaces::named(&cluster, &format!("widemesh-{rack}"));
    let fake = HetznerFake::start("hz-token", 5);
    // One namespace server runs each made server's user data in turn, from its directory.
    let server = NsServer::new();
    let work = tempfile::tempdir().unwrap();
    let k3s_log = work.path().join("k3s.log");
    let stand_in = k3s_stand_in(&cluster, &k3s_log).into_bytes();
    let sum = {
        let f = work.path().join("k3s");
        std::fs::write(&f, &stand_in).unwrap();
        mesh_provider::cloudinit::sha256_file(&f).unwrap()
    };
    let mirror = Mirror::start(
        HOST_LINK,
        vec![
            ("k3s", stand_in),
            (
                "sha256sum-amd64.txt",
                format!("{sum}  k3s\n0000  k3s-airgap-images-amd64.tar\n").into_bytes(),
            ),
        ],
    );
    let listen = format!("{HOST_LINK}:{}", free_port());
    let root = server.root.display().to_string();
    let p = Platform::start_listening(
        Home::new(),
        &listen,
        &["--no-agent", "--builder", "fake", "--servers-root", &root],
    );
    let _trusted = cluster.trust(&listen);
    add_hetzner(|a| p.mesh(a), &fake, &mirror.url);

    let created = std::thread::scope(|s| {
        // `mesh rack create` follows the servers until the rack's agent is healthy ...
        let create = s.spawn(|| {
            p.mesh_for(
                &[
                    "rack",
                    "create",
                    rack,
                    "--provider",
                    "hz",
                    "--region",
                    "fsn1",
                    "--size",
                    "cx22",
                    "--runtime",
                    "kubernetes",
                    "--servers",
                    "2",
                    "--domain",
                    "kp.localhost",
                    "--address",
                    NODE,
                    "--wait",
                    "300",
                ],
                Duration::from_secs(330),
            )
        });
        // ... while the servers boot: their user data, as the fake was sent it, runs on the
        // namespace server.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (first, second) = loop {
            if let (Some(a), Some(b)) =
                (sent_user_data(&fake, "kp-1"), sent_user_data(&fake, "kp-2"))
            {
                break (a, b);
            }
            assert!(Instant::now() < deadline, "the servers were not made");
            std::thread::sleep(Duration::from_millis(100));
        };
        let ran = run_cloud_config(&first, &server, &server.root);
        assert!(
            ran.output
                .contains("the control plane took the cluster's kubeconfig"),
            "{ran:#?}"
        );
        run_cloud_config(&second, &server, &server.root);
        (create.join().unwrap(), first, second)
    });
    let (out, first, second) = created;
    assert_eq!(
        out.code,
        0,
        "{out:#?}\n{}\n{}",
        cluster
            .kubectl(&["describe", "pods", "-n", "widemesh-kp"])
            .1,
        cluster
            .kubectl(&["logs", "-n", "widemesh-kp", "deployment/widemesh-agent"])
            .1
    );
    // The progress lines carry the times measured (docs/benchmarks.md).
    eprintln!("mesh rack create:\n{}", out.stdout);
    for want in [
        "making the rack's cluster with provider hz (hetzner): 2 cx22 servers in fsn1, running k3s",
        "server kp-1 made at ",
        "server kp-2 made at ",
        "for kp-1 to send the cluster's kubeconfig",
        "agent kp-agent joined rack kp",
        "server kp-agent is healthy",
    ] {
        assert!(out.stdout.contains(want), "{want} not in:\n{}", out.stdout);
    }
    // k3s ran as the cluster's server on the first server (its server token, and the agent
    // token it lets agents join with) and as an agent on the second, joining the first
    // server's address with the agent token; each with its files in its own directory.
    let first_ip = server_ip(&fake, "kp-1");
    let started = std::fs::read_to_string(&k3s_log).unwrap();
    let file = |doc: &str, name: &str| file_ending(&cloud_files(doc), name).map(String::from);
    let server_token = file(&first, "/server-token").unwrap();
    let agent_token = file(&first, "/agent-token").unwrap();
    assert_eq!(file(&second, "/agent-token"), Some(agent_token.clone()));
    assert_eq!(file(&second, "/server-token"), None);
    let dir1 = server.root.join("kp/kp-1");
    let dir2 = server.root.join("kp/kp-2");
    let (d1, d2) = (dir1.display(), dir2.display());
    for want in [
        format!(
            "k3s server --data-dir {d1}/k3s-data --token-file {d1}/server-token --node-name kp-1 --node-ip {} --private-registry {d1}/registries.yaml --agent-token-file {d1}/agent-token",
            server.ip
        ),
        format!(
            "k3s agent --server https://{first_ip}:6443 --data-dir {d2}/k3s-data --token-file {d2}/agent-token --node-name kp-2"
        ),
        "--disable traefik,servicelb,metrics-server".to_string(),
        format!("token={server_token}"),
        format!("token={agent_token}"),
    ] {
        assert!(started.contains(&want), "{want} not in:\n{started}");
    }
    assert_eq!(started.lines().count(), 2, "{started}");
    // Before k3s, the supervisor dropped pods' traffic to the metadata service on the server
    // itself (here, the namespace server's firewall).
    let table = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", server.ns))
        .args(["nft", "list", "table", "inet", "widemesh_metadata"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("ip saddr 10.42.0.0/16 ip daddr 169.254.0.0/16 drop"),
        "{table}"
    );
    // The server's checked download is what it runs.
    assert_eq!(
        mesh_provider::cloudinit::sha256_file(&dir1.join("k3s")).unwrap(),
        sum
    );
    // `mesh rack show` asks the cluster about each made server's node. The stand-in's cluster
    // is the test cluster, whose one node is not named after a made server: both are still
    // joining as far as the cluster says (a k3s node takes its server's name, `--node-name`).
    let shown = p.mesh(&["rack", "show", rack, "--json"]).ok().json();
    let made = shown["made_servers"].as_array().unwrap();
    assert_eq!(made.len(), 2, "{shown}");
    assert_eq!(made[0]["name"], "kp-1", "{shown}");
    assert_eq!(made[1]["name"], "kp-2", "{shown}");
    assert!(made.iter().all(|m| m["state"] == "joining"), "{shown}");

    // The control plane took the cluster (in the audit log), and refuses another one.
    let events = p.mesh(&["events"]).ok().stdout;
    assert!(
        events.contains("rack.cluster") && events.contains("made by provider hz"),
        "{events}"
    );
    let join_token = file_ending(&cloud_files(&first), "/join-token")
        .unwrap()
        .to_string();
    let refused = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", &format!("Authorization: Bearer {join_token}")])
        .args(["--data-binary", "apiVersion: v1\nkind: Config\n"])
        .arg(format!("{}/v1/agent/kubeconfig", p.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "409");

    // An app deploys onto the made cluster and the node's router serves it.
    let env = "kube-made";
    p.mesh(&["env", "create", env, "--rack", rack]).ok();
    let src = tempfile::tempdir().unwrap();
    let app = src.path().join("app");
    write_app(&app, "served from a made cluster");
    let out = p.mesh_for(
        &["deploy", "--env", env, "--dir", app.to_str().unwrap()],
        Duration::from_secs(300),
    );
    assert_eq!(out.code, 0, "{out:#?}");
    wait_for_body_from(
        NODE,
        80,
        &format!("{env}.kp.localhost"),
        "served from a made cluster",
        Duration::from_secs(120),
    );
    // The rack holds an environment: its servers stay. Once it is gone, they go.
    let e = p.mesh(&["rack", "delete", rack, "-y"]).fails();
    assert!(e.error().contains("hosts environment"), "{}", e.error());
    p.mesh(&["env", "delete", env, "--yes"]).ok();
    p.mesh(&["rack", "delete", rack, "-y"]).ok();
    assert!(fake.state.lock().unwrap().servers.is_empty());
    assert!(fake.failures().is_empty(), "{:#?}", fake.failures());
}
