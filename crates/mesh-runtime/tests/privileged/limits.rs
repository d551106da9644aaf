//! The instance size becomes cgroup limits that the kernel enforces.

use std::time::Duration;

use mesh_runtime::{Runtime, Status};

use super::support::{Fixture, read_trimmed};

#[tokio::test]
async fn a_memory_hog_is_oom_killed_and_reported() {
    let fx = Fixture::new(2).await;
    fx.network("app", 0).await;
    let mut spec = fx.spec(
        "hog",
        "app",
        "app-hog",
        // Doubles a string until the 32 MiB limit stops it.
        r#"echo start; awk 'BEGIN { s = "x"; while (1) s = s s }'"#,
    );
    spec.limits.memory_mb = 32;
    fx.rt.create(&spec).await.unwrap();
    let st = fx.wait("hog", 30).await;
    assert_eq!(st.code, Some(137), "{st:?}");
    assert_eq!(st.signal, Some(9));
    assert!(
        st.oom_killed,
        "the runtime must report the OOM kill: {st:?}"
    );
    assert_eq!(fx.stdout("hog"), "start\n");
    match fx.rt.state("hog").await.unwrap().status {
        Status::Exited(s) => assert!(s.oom_killed),
        other => panic!("{other:?}"),
    }

    // A process that ends by itself is not reported as OOM-killed.
    fx.rt
        .create(&fx.spec("calm", "app", "app-calm", "exit 0"))
        .await
        .unwrap();
    assert!(!fx.wait("calm", 10).await.oom_killed);

    for id in ["hog", "calm"] {
        fx.rt.delete(id).await.unwrap();
    }
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}

#[tokio::test]
async fn cpu_quota_memory_and_pids_limits_are_in_the_cgroup_files() {
    let fx = Fixture::new(3).await;
    fx.network("app", 0).await;
    let mut spec = fx.spec("lim", "app", "app-lim", "exec sleep 600");
    spec.limits.cpu = 0.25;
    spec.limits.memory_mb = 48;
    spec.limits.pids = 16;
    fx.rt.create(&spec).await.unwrap();

    let dir = |c: &str| fx.rt.cgroup_dir(c, "lim").unwrap().unwrap();
    assert_eq!(read_trimmed(&dir("cpu").join("cpu.cfs_quota_us")), "25000");
    assert_eq!(
        read_trimmed(&dir("cpu").join("cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(read_trimmed(&dir("pids").join("pids.max")), "16");
    assert_eq!(
        read_trimmed(&dir("memory").join("memory.limit_in_bytes")),
        (48u64 << 20).to_string()
    );
    let procs = read_trimmed(&dir("pids").join("cgroup.procs"));
    let pid = match fx.rt.state("lim").await.unwrap().status {
        Status::Running { pid } => pid,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        procs,
        pid.to_string(),
        "the instance's process is in its cgroup"
    );

    // Inside, the instance sees its own cgroup (cgroup namespace) with the same limits...
    let out = fx
        .sh(
            "lim",
            "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        )
        .await;
    assert_eq!(out.stdout_str(), "16\n25000\n", "{}", out.stderr_str());
    // ...and the kernel holds it to them: 40 background sleeps cannot all start.
    let out = fx
        .sh(
            "lim",
            "for i in $(seq 1 40); do sleep 5 </dev/null >/dev/null 2>&1 & done 2>&1; echo done",
        )
        .await;
    assert!(
        out.stdout_str().contains("can't fork") || out.stderr_str().contains("can't fork"),
        "stdout {:?} stderr {:?}",
        out.stdout_str(),
        out.stderr_str()
    );

    fx.rt.stop("lim", Duration::from_millis(200)).await.unwrap();
    fx.rt.delete("lim").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}
