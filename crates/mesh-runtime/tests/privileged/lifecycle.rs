//! Exec, signals, stop with a grace period, and re-adoption by a new runtime value.

use std::time::{Duration, Instant};

use mesh_runtime::{Error, NativeRuntime, Runtime, Signal, Status};

use super::support::Fixture;

/// Traps TERM with `on_term`, says it is ready, then idles in a way the trap can interrupt
/// (a foreground `sleep` would delay the trap until it ends).
fn trapping(on_term: &str) -> String {
    format!("trap '{on_term}' TERM; echo ready; while :; do sleep 1 & wait $!; done")
}

#[tokio::test]
async fn exec_runs_inside_the_running_instance() {
    let fx = Fixture::new(8).await;
    fx.network("app", 0).await;
    let mut spec = fx.spec(
        "ex",
        "app",
        "app-ex",
        "echo started > /tmp/state; exec sleep 600",
    );
    spec.env.insert("GREETING".into(), "hi there".into());
    fx.rt.create(&spec).await.unwrap();
    let mut out = fx.sh("ex", "cat /tmp/state").await;
    for _ in 0..100 {
        if out.stdout_str() == "started\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        out = fx.sh("ex", "cat /tmp/state").await;
    }
    assert_eq!(out.stdout_str(), "started\n");
    let out = fx
        .sh(
            "ex",
            "echo $GREETING; id -u; hostname; echo err >&2; exit 5",
        )
        .await;
    assert_eq!(out.code, 5);
    assert_eq!(out.stdout_str(), "hi there\n65534\napp-ex\n");
    assert_eq!(out.stderr_str(), "err\n");

    fx.rt.signal("ex", Signal::SIGKILL).await.unwrap();
    assert_eq!(fx.wait("ex", 10).await.code, Some(137));
    assert!(matches!(
        fx.rt.exec("ex", &["true".into()]).await,
        Err(Error::NotRunning(_))
    ));
    assert!(matches!(
        fx.rt.signal("ex", Signal::SIGTERM).await,
        Err(Error::NotRunning(_))
    ));

    fx.rt.delete("ex").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}

#[tokio::test]
async fn stop_lets_a_term_trap_finish_within_the_grace() {
    let fx = Fixture::new(9).await;
    fx.network("app", 0).await;
    let spec = fx.spec(
        "term",
        "app",
        "app-term",
        &trapping("echo got-term; exit 3"),
    );
    fx.rt.create(&spec).await.unwrap();
    fx.wait_for_output("term", "ready", 10).await;
    let started = Instant::now();
    let st = fx.rt.stop("term", Duration::from_secs(10)).await.unwrap();
    assert_eq!((st.code, st.signal), (Some(3), None));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fx.stdout("term"), "ready\ngot-term\n");
    // Stopping again reports the same ending.
    assert_eq!(fx.rt.stop("term", Duration::ZERO).await.unwrap(), st);

    fx.rt.delete("term").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}

#[tokio::test]
async fn stop_kills_after_the_grace() {
    let fx = Fixture::new(10).await;
    fx.network("app", 0).await;
    let spec = fx.spec("stubborn", "app", "app-s", &trapping("echo ignoring-term"));
    fx.rt.create(&spec).await.unwrap();
    fx.wait_for_output("stubborn", "ready", 10).await;
    let grace = Duration::from_millis(700);
    let started = Instant::now();
    let st = fx.rt.stop("stubborn", grace).await.unwrap();
    let took = started.elapsed();
    assert_eq!((st.code, st.signal), (Some(137), Some(9)));
    assert!(!st.oom_killed);
    assert!(took >= grace, "killed before the grace was over: {took:?}");
    assert!(took < grace + Duration::from_secs(3), "{took:?}");
    assert!(fx.stdout("stubborn").contains("ignoring-term"));

    fx.rt.delete("stubborn").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_new_runtime_over_the_same_state_adopts_running_instances() {
    let fx = Fixture::new(11).await;
    fx.network("app", 0).await;
    let spec = fx.spec("keep", "app", "app-keep", &trapping("echo bye; exit 0"));
    let handle = fx.rt.create(&spec).await.unwrap();
    fx.wait_for_output("keep", "ready", 10).await;

    // The container does not depend on the process that started it: its parent is the
    // shim, which left our session.
    let status = std::fs::read_to_string(format!("/proc/{}/status", handle.pid)).unwrap();
    let shim_pid = field(&status, "PPid:");
    let shim_stat = std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).unwrap();
    let shim_sid = shim_stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    let our_stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let our_sid = our_stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    assert_ne!(shim_sid, our_sid);
    assert_eq!(shim_sid, shim_pid, "the shim leads its own session");
    assert!(
        std::fs::read_to_string(format!("/proc/{shim_pid}/cmdline"))
            .unwrap()
            .contains("mesh-runtime-shim")
    );

    // A new runtime value over the same data directory (what a restarted agent makes).
    let again = NativeRuntime::new(fx.rt.options().clone()).unwrap();
    let listed = again.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "keep");
    assert_eq!(listed[0].status, Status::Running { pid: handle.pid });
    assert_eq!(listed[0].address, handle.address);
    let out = again.exec("keep", &["hostname".into()]).await.unwrap();
    assert_eq!(out.stdout_str(), "app-keep\n");
    let st = again.stop("keep", Duration::from_secs(10)).await.unwrap();
    assert_eq!(st.code, Some(0));
    // Its logs were kept across the change of hands.
    assert_eq!(fx.stdout("keep"), "ready\nbye\n");

    again.delete("keep").await.unwrap();
    again.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}
