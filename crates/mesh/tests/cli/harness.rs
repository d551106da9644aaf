//! A `mesh up` child process per test, and a way to run `mesh` commands against it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// How long `mesh up` may take to write the CLI config.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one CLI command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Variables of the developer's shell that would leak into the tests.
const CLEARED: &[&str] = &[
    "MESH_ENV",
    "MESH_STACK",
    "MESH_API_URL",
    "MESH_TOKEN",
    "MESH_CONFIG",
    "MESH_LOG",
    "MESH_DATABASE_URL",
];

pub fn mesh_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("mesh")
}

/// A user's home with its own XDG directories.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mesh-cli-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_file(&self) -> PathBuf {
        self.path()
            .join("xdg-config")
            .join("mesh")
            .join("config.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("xdg-data").join("widemesh")
    }

    /// Where commands run.
    pub fn work(&self) -> PathBuf {
        self.path().join("work")
    }

    /// A command with this home's environment and nothing of the caller's MESH_ variables.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for var in CLEARED {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.path().join("xdg-data"))
            .current_dir(self.work());
        cmd
    }
}

/// The result of one `mesh` command.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns the output.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            0,
            "`mesh {}` failed:\n{self:#?}",
            self.args.join(" ")
        );
        self
    }

    /// Asserts a failure with exit code 1 and one readable `error:` line (plus an optional
    /// `hint:` line), and returns the output.
    #[track_caller]
    pub fn fails(self) -> Self {
        assert_eq!(
            self.code,
            1,
            "`mesh {}` should fail with 1:\n{self:#?}",
            self.args.join(" ")
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            !lines.is_empty() && lines[0].starts_with("error: "),
            "no error line: {self:#?}"
        );
        assert!(
            lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
            "more than an error and a hint: {self:#?}"
        );
        self
    }

    /// The `error:` line without its prefix.
    /// The error line (`error: ...`), after any progress lines; else the first line.
    pub fn error(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .or_else(|| self.stderr.lines().next())
            .unwrap_or("")
            .trim_start_matches("error: ")
    }

    pub fn hint(&self) -> Option<&str> {
        self.stderr
            .lines()
            .nth(1)
            .map(|l| l.trim_start_matches("hint: "))
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`mesh {}` printed no JSON ({e}):\n{self:#?}",
                self.args.join(" ")
            )
        })
    }
}

/// Runs `mesh args...` as the user of `home`, with `input` on stdin (empty otherwise, never a
/// terminal).
pub fn run_in(home: &Home, args: &[&str], input: Option<&str>) -> Out {
    run_for(home, args, input, COMMAND_TIMEOUT)
}

/// `mesh args...`, killed after `timeout` (a first build downloads a language runtime).
pub fn run_for(home: &Home, args: &[&str], input: Option<&str>, timeout: Duration) -> Out {
    let mut cmd = assert_cmd::Command::from_std(home.command(&mesh_bin()));
    cmd.args(args).timeout(timeout);
    cmd.write_stdin(input.unwrap_or(""));
    let output = cmd.output().unwrap();
    Out {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `mesh up`, killed when dropped.
pub struct Platform {
    pub home: Home,
    child: Option<Child>,
    pub url: String,
    starts: u32,
    extra: Vec<String>,
    listen: String,
}

impl Platform {
    /// `mesh up --listen 127.0.0.1:0` in a fresh home.
    pub fn start() -> Self {
        Self::start_in(Home::new())
    }

    pub fn start_in(home: Home) -> Self {
        Self::start_with(home, &["--no-agent"])
    }

    /// `mesh up` with extra arguments, such as an agent's `--net-prefix` and `--subnet-pool`
    /// (each test that runs instances needs its own, so parallel tests never share names).
    pub fn start_with(home: Home, extra: &[&str]) -> Self {
        Self::start_listening(home, "127.0.0.1:0", extra)
    }

    /// [`Platform::start_with`] with the API on `listen` (such as the host's end of a test
    /// cluster's link, so the cluster's nodes pull images from it).
    pub fn start_listening(home: Home, listen: &str, extra: &[&str]) -> Self {
        let mut p = Self {
            home,
            child: None,
            url: String::new(),
            starts: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            listen: listen.to_string(),
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        // A restart must be seen to write the config again.
        let _ = std::fs::remove_file(self.home.config_file());
        self.starts += 1;
        let out = File::create(self.home.path().join(format!("up-{}.out", self.starts))).unwrap();
        let err = File::create(self.home.path().join(format!("up-{}.err", self.starts))).unwrap();
        let child = self
            .home
            .command(&mesh_bin())
            .args(["up", "--listen", &self.listen])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.url = self.wait_for_config();
    }

    /// Waits (bounded) for `mesh up` to write the CLI config, and returns its API URL.
    fn wait_for_config(&mut self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        let path = self.home.config_file();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(v) = text.parse::<toml::Table>()
                && let Some(url) = v.get("api_url").and_then(|u| u.as_str())
                && v.contains_key("token")
            {
                return url.to_string();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("`mesh up` exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "`mesh up` wrote no CLI config in {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The stdout and stderr of the latest `mesh up`.
    pub fn log(&self) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.home.path().join(format!("up-{}.{ext}", self.starts)))
                .unwrap_or_default()
        };
        format!("stdout:\n{}\nstderr:\n{}", read("out"), read("err"))
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("not running").id() as i32)
    }

    /// `mesh args...` as this platform's user.
    pub fn mesh(&self, args: &[&str]) -> Out {
        run_in(&self.home, args, None)
    }

    /// `mesh args...` for as long as `timeout`.
    pub fn mesh_for(&self, args: &[&str], timeout: Duration) -> Out {
        run_for(&self.home, args, None, timeout)
    }

    /// `mesh args...` with `input` on stdin.
    pub fn mesh_stdin(&self, args: &[&str], input: &str) -> Out {
        run_in(&self.home, args, Some(input))
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("not running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = wait_bounded(&mut child, Duration::from_secs(20));
        assert!(
            status.success(),
            "`mesh up` exited with {status} after SIGTERM:\n{}",
            self.log()
        );
    }

    /// SIGKILL: a crash.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("not running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts `mesh up` again with the same home and data.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// Starts a second `mesh up` on the same home while this one runs: it takes the sockets
    /// over, and this one must drain and exit cleanly. Returns the old one's log.
    pub fn take_over(&mut self) -> String {
        let mut old = self.child.take().expect("not running");
        let dir = self.home.path().to_path_buf();
        let before = self.starts;
        let old_log = move || {
            let read = |ext: &str| {
                std::fs::read_to_string(dir.join(format!("up-{before}.{ext}"))).unwrap_or_default()
            };
            format!("stdout:\n{}\nstderr:\n{}", read("out"), read("err"))
        };
        self.launch();
        let status = wait_bounded(&mut old, Duration::from_secs(60));
        assert!(
            status.success(),
            "the old `mesh up` exited with {status}:\n{}",
            old_log()
        );
        old_log()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`mesh up` did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// In environment `shop` (already created): stack `app` on the built-in busybox image, with a web
/// service `web` (size nano) that answers `hello` from busybox httpd on `$PORT`.
pub fn busybox_web(p: &Platform) {
    let at = ["--env", "shop", "--stack", "app"];
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    p.mesh(&[&["stack", "set-image", "busybox"][..], &at[..]].concat())
        .ok();
    let web = "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
    p.mesh(
        &[
            &["svc", "create", "-n", "web", "--size", "nano"][..],
            &at[..],
            &["--", web][..],
        ]
        .concat(),
    )
    .ok();
}

/// A second rack's `mesh agent`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct RackAgent {
    child: Child,
    log: PathBuf,
}

impl RackAgent {
    /// Creates rack `rack` (provider local, region = its name, domain `<rack>.localhost`, the
    /// given public `address`) and joins an agent to it as server `<rack>-1`, with its own data
    /// directory under the platform's home, network prefix, subnet pool and router ports.
    pub fn start(
        p: &Platform,
        rack: &str,
        address: &str,
        net: (&str, &str),
        (http, https): (u16, Option<u16>),
    ) -> RackAgent {
        let domain = format!("{rack}.localhost");
        let created = p
            .mesh(&[
                "rack",
                "create",
                rack,
                "--provider",
                "local",
                "--region",
                rack,
                "--domain",
                &domain,
                "--address",
                address,
                "--json",
            ])
            .ok()
            .json();
        let token = created["join_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no join token in {created}"))
            .to_string();
        let dir = p.home.path().join(format!("{rack}-agent"));
        let log = p.home.path().join(format!("{rack}-agent.log"));
        let out = File::create(&log).unwrap();
        let child = p
            .home
            .command(&mesh_bin())
            .args(["agent", "--api-url", &p.url, "--token", &token])
            .args([
                "--name",
                &format!("{rack}-1"),
                "--data-dir",
                dir.to_str().unwrap(),
            ])
            .args(["--net-prefix", net.0, "--subnet-pool", net.1])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(
                https
                    .map(|port| vec!["--https-listen".to_string(), format!("127.0.0.1:{port}")])
                    .unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        RackAgent { child, log }
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RackAgent {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(20));
    }
}

/// Stops `child` with SIGTERM, waiting (at most `limit`) for it to exit, then kills it.
pub fn stop_child(child: &mut Child, limit: Duration) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` with `input` on its standard input; its output (stdout and stderr captured).
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
