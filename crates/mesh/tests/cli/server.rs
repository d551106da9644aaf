//! `mesh server`: the control plane alone, without a local rack, logged in to with its admin
//! token.

use std::fs::File;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Home, mesh_bin, run_in};

/// Kills the child when the test ends, however it ends.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_control_plane_alone_needs_a_login_and_a_rack() {
    let home = Home::new();
    let data = home.path().join("srv");
    let out_path = home.path().join("server.out");
    let child = home
        .command(&mesh_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(home.path().join("server.err")).unwrap())
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));

    // Bounded wait for the two lines it prints once listening.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (url, token_file) = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        let up = text
            .lines()
            .find_map(|l| l.strip_prefix("widemesh control plane is up: api "));
        let token = text.lines().find_map(|l| l.strip_prefix("admin token: "));
        if let (Some(up), Some(token)) = (up, token) {
            let url = up.split(',').next().unwrap().to_string();
            let file = token.split(' ').next().unwrap().to_string();
            break (url, file);
        }
        let status = guard.0.as_mut().unwrap().try_wait().unwrap();
        assert!(status.is_none(), "`mesh server` exited: {status:?}");
        assert!(Instant::now() < deadline, "`mesh server` printed: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(token_file, data.join("admin-token").display().to_string());
    // The control plane alone writes no CLI config.
    assert!(!home.config_file().exists());
    let out = run_in(&home, &["env", "ls"], None).fails();
    assert!(out.error().starts_with("not logged in"), "{out:#?}");

    let token = std::fs::read_to_string(&token_file).unwrap();
    run_in(&home, &["login", &url, "--token", token.trim()], None).ok();
    let out = run_in(&home, &["rack", "list"], None).ok();
    assert!(out.stdout.starts_with("no racks yet"), "{out:#?}");
    let out = run_in(&home, &["env", "create", "shop"], None).fails();
    assert!(out.error().contains("there is no rack yet"), "{out:#?}");

    run_in(&home, &["provider", "add", "here", "--kind", "local"], None).ok();
    run_in(
        &home,
        &[
            "rack",
            "create",
            "r1",
            "--provider",
            "here",
            "--region",
            "home",
        ],
        None,
    )
    .ok();
    let out = run_in(&home, &["env", "create", "shop"], None).ok();
    assert_eq!(out.stdout.trim(), "created environment shop on rack r1");

    let child = guard.0.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`mesh server` ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
