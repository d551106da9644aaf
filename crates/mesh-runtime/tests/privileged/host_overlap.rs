//! Networks that cannot collide: a subnet the host already uses is skipped, and a restarted
//! runtime sweeps what carries its prefix but no record owns, keeping a running instance.
//!
//! Names: runtime prefixes `nc1` and `nc2` (under the `nc` test prefix), pool 10.214.0.0/16,
//! and "foreign" interfaces `ncx0`/`ncx1` standing in for a leftover bridge or a VPN of
//! someone else. A [`Cleanup`] guard deletes each by name at the end, even after a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mesh_runtime::pool::choose;
use mesh_runtime::sweep::Leftover;
use mesh_runtime::{Ipv4Net, NativeRuntime, NetworkSpec, Runtime, Status};

use super::support::Fixture;

fn sh(script: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap()
}

fn must(script: &str) {
    let out = sh(script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn link_exists(name: &str) -> bool {
    sh(&format!("ip link show dev {name}")).status.success()
}

fn netns_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/run/netns/{name}")).exists()
}

/// Deletes, by name, the links, namespaces and mounts a test made by hand.
#[derive(Default)]
struct Cleanup {
    links: Vec<String>,
    netns: Vec<String>,
    mounts: Vec<PathBuf>,
    cgroups: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for m in &self.mounts {
            let _ = sh(&format!("umount {} 2>/dev/null", m.display()));
        }
        for l in &self.links {
            let _ = sh(&format!("ip link del {l} 2>/dev/null"));
        }
        for n in &self.netns {
            let _ = sh(&format!("ip netns del {n} 2>/dev/null"));
        }
        for c in &self.cgroups {
            let _ = std::fs::remove_dir(c);
        }
    }
}

fn with_prefix(prefix: &'static str) -> impl FnOnce(&mut mesh_runtime::RuntimeOptions) {
    move |o| {
        o.prefix = prefix.into();
        o.nft_table = format!("wmtest_{prefix}");
        o.cgroup_parent = format!("wmtest_{prefix}");
    }
}

#[tokio::test]
async fn a_subnet_the_host_already_has_is_skipped_and_named() {
    let mut cleanup = Cleanup::default();
    cleanup.links.push("ncx0".into());
    let _ = sh("ip link del ncx0 2>/dev/null");
    // A leftover of something else: an interface with an address in the pool's first /24.
    must(
        "ip link add ncx0 type bridge && ip addr add 10.214.0.1/24 dev ncx0 && ip link set ncx0 up",
    );

    let fx = Fixture::build(16, with_prefix("nc1"), None).await;
    let host = fx.rt.host_networks().await.unwrap();
    let pool: Ipv4Net = "10.214.0.0/16".parse().unwrap();
    let choice = choose(pool, &BTreeMap::new(), &host).unwrap();
    assert_eq!(choice.subnet.to_string(), "10.214.1.0/24");
    let why = choice.skipped[0].to_string();
    assert!(
        why.starts_with("10.214.0.0/24 (the host has ") && why.contains("ncx0"),
        "{why}"
    );
    // The chosen subnet works.
    let info = fx
        .rt
        .ensure_network(&NetworkSpec::new("shop", choice.subnet))
        .await
        .unwrap();
    assert_eq!(info.gateway.to_string(), "10.214.1.1");
    fx.rt.remove_network("shop").await.unwrap();

    // Without the interface the first /24 is free again.
    must("ip link del ncx0");
    let host = fx.rt.host_networks().await.unwrap();
    let choice = choose(pool, &BTreeMap::new(), &host).unwrap();
    assert_eq!(choice.subnet.to_string(), "10.214.0.0/24");
    assert!(choice.skipped.is_empty());
}

#[tokio::test]
async fn a_restart_sweeps_leftovers_and_keeps_the_instance_it_adopts() {
    let mut cleanup = Cleanup::default();
    let fx = Fixture::build(17, with_prefix("nc2"), None).await;
    let names = fx.rt.names().clone();
    fx.rt
        .ensure_network(&NetworkSpec::new(
            "shop",
            "10.214.200.0/24".parse().unwrap(),
        ))
        .await
        .unwrap();
    let kept = fx
        .rt
        .create(&fx.spec("keep-1", "shop", "app-web", "exec sleep 600"))
        .await
        .unwrap();

    // What a crash left: a bridge of an environment since removed, a wired namespace of a
    // create that died before its record, an instance directory with a mount, a cgroup.
    let bridge = names.bridge("gone");
    let veth = names.host_veth("ghost-1");
    let netns = names.netns("ghost-1");
    let half = fx.root.join("instances/ghost-1");
    let layer = half.join("layer");
    cleanup
        .links
        .extend([bridge.clone(), veth.clone(), "ncx1".into()]);
    cleanup.netns.push(netns.clone());
    cleanup.mounts.push(layer.clone());
    must(&format!(
        "ip link add {bridge} type bridge && ip addr add 10.214.201.1/24 dev {bridge} && \
         ip netns add {netns} && ip link add {veth} type veth peer name eth0 netns {netns}"
    ));
    std::fs::create_dir_all(&layer).unwrap();
    must(&format!(
        "mount -t tmpfs -o size=1m tmpfs {}",
        layer.display()
    ));
    let cgroup = fx
        .rt
        .cgroup_dir("memory", "ghost-1")
        .unwrap()
        .expect("a memory hierarchy");
    std::fs::create_dir(&cgroup).unwrap();
    cleanup.cgroups.push(cgroup.clone());
    // Not ours: another prefix's bridge (this kernel has no dummy links).
    must("ip link add ncx1 type bridge");

    // A restarted agent's runtime: a new value over the same data directory.
    let again = NativeRuntime::new(fx.rt.options().clone()).unwrap();
    let removed = again.sweep().await.unwrap();
    let text: Vec<String> = removed.iter().map(ToString::to_string).collect();
    for expected in [
        Leftover::Link {
            name: veth.clone(),
            kind: "veth".into(),
        },
        Leftover::Link {
            name: bridge.clone(),
            kind: "bridge".into(),
        },
        Leftover::Netns {
            name: netns.clone(),
        },
        Leftover::Mount {
            path: layer.clone(),
        },
        Leftover::InstanceDir { path: half.clone() },
        Leftover::Cgroup {
            path: cgroup.clone(),
        },
    ] {
        assert!(removed.contains(&expected), "{expected} not in {text:#?}");
    }
    assert_eq!(removed.len(), 6, "{text:#?}");
    assert!(!link_exists(&bridge) && !link_exists(&veth));
    assert!(!netns_exists(&netns));
    assert!(!half.exists());
    assert!(!cgroup.exists());

    // Untouched: the foreign link, and everything of the running instance.
    assert!(link_exists("ncx1"), "a foreign interface was removed");
    assert!(link_exists(&names.bridge("shop")));
    assert!(link_exists(&names.host_veth("keep-1")));
    assert!(netns_exists(&names.netns("keep-1")));
    assert_eq!(
        again.state("keep-1").await.unwrap().status,
        Status::Running { pid: kept.pid }
    );
    let out = again.exec("keep-1", &["hostname".into()]).await.unwrap();
    assert_eq!(out.stdout_str(), "app-web\n");

    // A second sweep finds nothing.
    assert!(again.sweep().await.unwrap().is_empty());

    again.stop("keep-1", Duration::from_secs(5)).await.unwrap();
    again.delete("keep-1").await.unwrap();
    again.remove_network("shop").await.unwrap();
}
