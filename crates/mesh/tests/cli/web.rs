//! What the deploy tests share: free loopback ports, plain HTTP requests to the edge router by
//! host name, a bounded steady load that counts failed requests, and a purge of what a test's
//! instances made.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mesh_runtime::{NativeRuntime, RuntimeOptions};

/// Whatever happens, nothing the test's instances made stays behind: every instance, network
/// and rule of the runtime with this prefix, under this data directory.
pub struct Purge {
    data: PathBuf,
    prefix: &'static str,
    /// Removed last (a home the test keeps beyond its `Platform`).
    home: Option<PathBuf>,
}

impl Purge {
    pub fn new(data: PathBuf, prefix: &'static str) -> Self {
        Self {
            data,
            prefix,
            home: None,
        }
    }

    /// Also removes `home` once the instances are gone.
    pub fn with_home(home: PathBuf, data: PathBuf, prefix: &'static str) -> Self {
        Self {
            data,
            prefix,
            home: Some(home),
        }
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        let mut opts = RuntimeOptions::new(self.data.join("runtime"));
        opts.prefix = self.prefix.into();
        opts.nft_table = format!("widemesh_{}", self.prefix);
        opts.cgroup_parent = format!("widemesh_{}", self.prefix);
        if let Ok(rt) = NativeRuntime::new(opts) {
            let _ = std::thread::spawn(move || {
                let r = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                r.block_on(rt.purge())
            })
            .join();
        }
        if let Some(home) = &self.home {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

/// The tests that run instances need root (CI runs them as root).
pub fn assert_root() {
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "this test runs as root (CI does)"
    );
}

/// Waits (bounded) until no network namespace named `<prefix>...` is left: the instances of the
/// environments a test deleted are gone.
pub fn wait_no_netns(prefix: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let netns = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        let ours = String::from_utf8_lossy(&netns.stdout)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count();
        if ours == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ours} network namespaces of deleted environments remain"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` through the router as `host`: the status and body, or why there was none.
pub fn get(port: u16, host: &str) -> Result<(u16, String), String> {
    get_from("127.0.0.1", port, host)
}

/// [`get`] of the router at `ip`.
pub fn get_from(ip: &str, port: u16, host: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect((ip, port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((status, body))
}

/// Waits until `host` answers 200 with a body that starts with `want`.
pub fn wait_for_body(port: u16, host: &str, want: &str, within: Duration) {
    wait_for_body_from("127.0.0.1", port, host, want, within)
}

/// [`wait_for_body`] of the router at `ip`.
pub fn wait_for_body_from(ip: &str, port: u16, host: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = get_from(ip, port, host);
        if matches!(&got, Ok((200, b)) if b.starts_with(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} did not answer {want:?} within {within:?}; last: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Requests `/` in a loop until stopped (at most 60,000 requests or 5 minutes), counting
/// answers that are not 200 with one of the expected bodies.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    pub fn start(port: u16, host: &str, bodies: &[&str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let bodies: Vec<String> = bodies.iter().map(|s| s.to_string()).collect();
        let host = host.to_string();
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut failures = Vec::new();
            while !stop2.load(Ordering::Relaxed)
                && sent2.load(Ordering::Relaxed) < 60_000
                && started.elapsed() < Duration::from_secs(300)
            {
                sent2.fetch_add(1, Ordering::Relaxed);
                match get(port, &host) {
                    Ok((200, b)) if bodies.iter().any(|w| b.starts_with(w.as_str())) => {}
                    other => failures.push(format!("{:?}: {other:?}", started.elapsed())),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            failures
        });
        Self {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops the load; returns how many requests were sent and the failures.
    pub fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.take().unwrap().join().unwrap();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}
