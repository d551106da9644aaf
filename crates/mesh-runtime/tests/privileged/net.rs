//! Instances of one environment reach each other by hostname; nothing reaches across
//! environments, and no instance reaches the host.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_runtime::{HostEntry, Runtime};
use tokio::io::AsyncWriteExt;

use super::support::{Fixture, http_get, httpd, wait_port};

/// The host's own addresses (eth0 and the like), which instances must not reach either.
fn host_addresses() -> Vec<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
        .filter(|a: &Ipv4Addr| !a.is_loopback())
        .collect()
}

#[tokio::test]
async fn same_environment_only_and_never_the_host() {
    let fx = Fixture::new(7).await;
    let net_a = fx.network("shop", 0).await;
    let net_b = fx.network("blog", 1).await;

    // A port on every host address, counting who gets through.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"host-secret\n").await;
        }
    });

    let web = fx
        .rt
        .create(&fx.spec("web", "shop", "app-web", &httpd("hello-from-web")))
        .await
        .unwrap();
    let mut client = fx.spec("client", "shop", "app-client", "exec sleep 600");
    client.hosts = vec![HostEntry::new("app-web", web.address)];
    let client = fx.rt.create(&client).await.unwrap();
    let mut other = fx.spec("other", "blog", "blog-web", "exec sleep 600");
    other.hosts = vec![HostEntry::new("app-web", web.address)];
    fx.rt.create(&other).await.unwrap();

    // The host (where the edge router runs) reaches instances.
    wait_port(web.address, 80, 10).await;

    // Same environment, by name, over HTTP.
    let out = fx.sh("client", &http_get("app-web", 80)).await;
    assert!(out.stdout_str().contains("200 OK"), "{out:?}");
    assert!(out.stdout_str().contains("hello-from-web"), "{out:?}");

    // Another environment: neither by name nor by address.
    for target in ["app-web".to_string(), web.address.to_string()] {
        let out = fx.sh("other", &http_get(&target, 80)).await;
        assert!(
            !out.stdout_str().contains("hello-from-web"),
            "{target}: {out:?}"
        );
        assert_ne!(out.code, 0, "{target}: {out:?}");
    }

    // The host: its gateways on both bridges and its own interfaces.
    let mut host_targets = vec![net_a.gateway, net_b.gateway];
    host_targets.extend(host_addresses());
    let targets: Vec<String> = host_targets.iter().map(|a| a.to_string()).collect();
    let probe = format!(
        "for a in {}; do (echo hi | nc -w 1 $a {host_port}) & done; wait",
        targets.join(" ")
    );
    let (from_a, from_b) = tokio::join!(fx.sh("client", &probe), fx.sh("other", &probe));
    for out in [from_a, from_b] {
        assert!(
            !out.stdout_str().contains("host-secret"),
            "{targets:?}: {out:?}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "an instance reached the host"
    );
    // The port does answer from the host itself: the blocking is the runtime's doing.
    wait_port(net_a.gateway, host_port, 2).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while accepted.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The control: without the runtime's table the instance does reach the host.
    let out = std::process::Command::new("nft")
        .args(["delete", "table", "inet", &fx.table])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = fx
        .sh(
            "client",
            &format!("echo hi | nc -w 1 {} {host_port}", net_a.gateway),
        )
        .await;
    assert!(out.stdout_str().contains("host-secret"), "{out:?}");
    fx.network("shop", 0).await; // puts the table back
    let before = accepted.load(Ordering::SeqCst);
    let out = fx
        .sh(
            "client",
            &format!("echo hi | nc -w 1 {} {host_port}", net_a.gateway),
        )
        .await;
    assert!(!out.stdout_str().contains("host-secret"), "{out:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), before);
    server.abort();

    // Peers change while instances run: the bind-mounted hosts file follows.
    fx.rt
        .update_hosts("web", &[HostEntry::new("app-client", client.address)])
        .await
        .unwrap();
    let out = fx.sh("web", "grep app-client /etc/hosts").await;
    assert_eq!(
        out.stdout_str(),
        format!("{}\tapp-client\n", client.address)
    );
    // Unknown names fail at once rather than hanging on an unreachable resolver.
    let started = std::time::Instant::now();
    let out = fx.sh("client", "nslookup nowhere.invalid 2>&1; true").await;
    assert!(started.elapsed().as_secs() < 5, "{out:?}");

    for id in ["web", "client", "other"] {
        fx.rt.delete(id).await.unwrap();
    }
    fx.rt.remove_network("shop").await.unwrap();
    fx.rt.remove_network("blog").await.unwrap();
    fx.assert_clean().await;
}
