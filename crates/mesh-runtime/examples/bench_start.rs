//! Start-up cost and idle footprint of the native runtime. Root only.
//!
//! ```sh
//! cargo build --release -p mesh-runtime --bins --examples
//! target/release/examples/bench_start [runs] [idle-instances]   # default 21 and 200
//! ```
//!
//! Prints medians of `runs` runs of:
//! - `busybox true`, bare (spawn to exit) vs in an instance (create to exit, and create alone:
//!   `create` returns once the container's process runs);
//! - `busybox httpd`, bare vs in an instance, from launch to the first accepted connection;
//! - delete of an ended instance;
//!
//! then starts `idle-instances` instances running `sleep` and reports what they cost: the drop
//! in MemAvailable (everything: kernel objects, page cache, processes), the shims' RSS and
//! PSS, and the memory the instances' cgroups account. Everything is removed at the end.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use mesh_runtime::image::busybox_image;
use mesh_runtime::{
    InstanceSpec, Ipv4Net, NativeRuntime, NetworkSpec, Runtime, RuntimeOptions, User,
};
use mesh_types::size::SizeLimits;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A field in kB of `/proc/<pid>/<file>` (`status` VmRSS, `smaps_rollup` Pss).
fn proc_kb(pid: &str, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn wait_port(addr: Ipv4Addr, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect((addr, port)).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{addr}:{port} never opened");
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn spec(image: &mesh_runtime::ImageRef, id: &str, command: &str) -> InstanceSpec {
    InstanceSpec {
        id: id.into(),
        environment: "bench".into(),
        hostname: "bench-app".into(),
        image: image.clone(),
        command: Some(command.into()),
        env: Default::default(),
        limits: SizeLimits {
            cpu: 1.0,
            memory_mb: 64,
            pids: 64,
        },
        user: User::NOBODY,
        address: None,
        hosts: Vec::new(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(21);
    let idle: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image(&dir.path().join("busybox")).await.unwrap();
    let mut opts = RuntimeOptions::new(dir.path().join("data"));
    opts.prefix = "bnch".into();
    opts.nft_table = "wmbench".into();
    opts.cgroup_parent = "wmbench".into();
    let rt = NativeRuntime::new(opts).expect("runtime (run as root; build the shim with --bins)");
    let subnet: Ipv4Net = "10.126.0.0/24".parse().unwrap();
    rt.ensure_network(&NetworkSpec::new("bench", subnet))
        .await
        .unwrap();
    let result = bench(&rt, &image, dir.path(), runs, idle).await;
    rt.purge().await.unwrap();
    result.unwrap();
}

async fn bench(
    rt: &NativeRuntime,
    image: &mesh_runtime::ImageRef,
    dir: &Path,
    runs: usize,
    idle: usize,
) -> mesh_runtime::Result<()> {
    println!("runs: {runs} (medians), idle instances: {idle}");
    let busybox = image.layers[0].join("bin/busybox");

    // `true`: bare, then in an instance.
    let mut bare = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        std::process::Command::new(&busybox)
            .arg("true")
            .status()
            .unwrap();
        bare.push(t.elapsed());
    }
    let (mut create, mut to_exit, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let id = format!("true-{i}");
        let t = Instant::now();
        rt.create(&spec(image, &id, "true")).await?;
        create.push(t.elapsed());
        rt.wait(&id).await?;
        to_exit.push(t.elapsed());
        let t = Instant::now();
        rt.delete(&id).await?;
        delete.push(t.elapsed());
    }
    println!(
        "busybox true, bare spawn->exit:              {}",
        ms(median(bare))
    );
    println!(
        "busybox true, instance create (running):     {}",
        ms(median(create))
    );
    println!(
        "busybox true, instance create->exit:         {}",
        ms(median(to_exit))
    );
    println!(
        "delete of an ended instance:                 {}",
        ms(median(delete))
    );

    // httpd until the port accepts.
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let mut bare = Vec::new();
    for i in 0..runs {
        let port = 18_900 + i as u16;
        let t = Instant::now();
        let mut child = tokio::process::Command::new(&busybox)
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(&www)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_port(Ipv4Addr::LOCALHOST, port).await;
        bare.push(t.elapsed());
        child.kill().await.unwrap();
    }
    let mut inst = Vec::new();
    for i in 0..runs {
        let id = format!("httpd-{i}");
        let t = Instant::now();
        let h = rt
            .create(&spec(image, &id, "exec httpd -f -p 80 -h /tmp"))
            .await?;
        wait_port(h.address, 80).await;
        inst.push(t.elapsed());
        rt.stop(&id, Duration::ZERO).await?;
        rt.delete(&id).await?;
    }
    println!(
        "busybox httpd, bare launch->port open:       {}",
        ms(median(bare))
    );
    println!(
        "busybox httpd, instance create->port open:   {}",
        ms(median(inst))
    );

    // Idle footprint.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let avail_before = meminfo("MemAvailable:");
    let t = Instant::now();
    let mut starts = Vec::new();
    for i in 0..idle {
        let s = Instant::now();
        rt.create(&spec(image, &format!("idle-{i}"), "exec sleep 3600"))
            .await?;
        starts.push(s.elapsed());
    }
    let total = t.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let avail_after = meminfo("MemAvailable:");
    let (mut rss, mut pss, mut shims) = (0, 0, 0);
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "mesh-runtime-sh" {
            shims += 1;
            rss += proc_kb(&pid, "status", "VmRSS:");
            pss += proc_kb(&pid, "smaps_rollup", "Pss:");
        }
    }
    let mut cgroup_bytes = 0u64;
    for i in 0..idle {
        if let Some(d) = rt.cgroup_dir("memory", &format!("idle-{i}"))? {
            let usage = ["memory.usage_in_bytes", "memory.current"]
                .iter()
                .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
                .unwrap_or_default();
            cgroup_bytes += usage.trim().parse::<u64>().unwrap_or(0);
        }
    }
    let running = rt
        .list()
        .await?
        .iter()
        .filter(|s| s.status.is_running())
        .count();
    println!(
        "{idle} idle instances: started in {:.2} s (median create {}), {running} running",
        total.as_secs_f64(),
        ms(median(starts))
    );
    let per = |kb: u64| kb as f64 / idle.max(1) as f64;
    let drop_kb = avail_before.saturating_sub(avail_after);
    println!(
        "  MemAvailable dropped by {:.1} MiB ({:.0} KiB per instance)",
        drop_kb as f64 / 1024.0,
        per(drop_kb)
    );
    println!(
        "  {shims} shims: RSS {:.1} MiB total ({:.0} KiB each), PSS {:.1} MiB ({:.0} KiB each)",
        rss as f64 / 1024.0,
        per(rss),
        pss as f64 / 1024.0,
        per(pss)
    );
    println!(
        "  instance cgroups account {:.1} MiB ({:.0} KiB each)",
        cgroup_bytes as f64 / 1048576.0,
        per(cgroup_bytes / 1024)
    );
    let t = Instant::now();
    for i in 0..idle {
        rt.delete(&format!("idle-{i}")).await?;
    }
    println!(
        "  deleting them (running, so killed): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
