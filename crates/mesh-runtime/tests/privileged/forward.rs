//! With forwarding on (as egress needs), the nft rules alone keep environments apart. This
//! runs the whole runtime inside a private "host" network namespace, so `ip_forward=1` and
//! the NAT rules never touch the real host: every `ip`/`nft` call goes through `nsenter`.

use std::sync::Arc;

use mesh_runtime::host::{InNetns, RealRunner};
use mesh_runtime::{NetworkSpec, Runtime};

use super::support::{Fixture, http_get, httpd};

/// The private namespaces of the test ("host" and "uplink"), removed on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

fn sh(script: &str) {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn forwarding_host_keeps_environments_apart_and_masquerades_egress() {
    let tag = format!("fw{}", std::process::id());
    let (host, uplink) = (format!("{tag}host"), format!("{tag}up"));
    let _guard = Namespaces(vec![host.clone(), uplink.clone()]);
    // host <-(up0 192.168.77.1 / up1 192.168.77.2)-> uplink, forwarding on in host only.
    sh(&format!(
        "ip netns add {host} && ip netns add {uplink} && \
         ip -n {host} link set lo up && ip -n {uplink} link set lo up && \
         ip -n {host} link add up0 type veth peer name up1 netns {uplink} && \
         ip -n {host} addr add 192.168.77.1/24 dev up0 && ip -n {host} link set up0 up && \
         ip -n {uplink} addr add 192.168.77.2/24 dev up1 && ip -n {uplink} link set up1 up && \
         nsenter --net=/run/netns/{host} sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' && \
         ip -n {uplink} addr add 169.254.169.254/32 dev up1 && \
         ip -n {host} route add 169.254.169.254/32 via 192.168.77.2"
    ));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "0",
        "the real host's forwarding must stay off"
    );

    let runner = Arc::new(InNetns {
        netns: format!("/run/netns/{host}").into(),
        inner: RealRunner,
    });
    let fx = Fixture::build(14, |_| {}, Some(runner)).await;
    let mut shop = NetworkSpec::new("shop", fx.subnet(0));
    shop.egress = true;
    fx.rt.ensure_network(&shop).await.unwrap();
    fx.network("blog", 1).await;

    // A web server on the uplink (the "internet"), logging who connects.
    let www = fx.root.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello-from-uplink\n").unwrap();
    let log = fx.root.join("uplink-httpd.log");
    let mut server = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{uplink}"))
        .args(["busybox", "httpd", "-f", "-vv", "-p", "8080", "-h"])
        .arg(&www)
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let web = fx
        .rt
        .create(&fx.spec("a-web", "shop", "app-web", &httpd("hello-from-shop")))
        .await
        .unwrap();
    let a = fx
        .rt
        .create(&fx.spec("a-cli", "shop", "app-cli", "exec sleep 600"))
        .await
        .unwrap();
    fx.rt
        .create(&fx.spec("b-cli", "blog", "blog-cli", "exec sleep 600"))
        .await
        .unwrap();
    let b_web = fx
        .rt
        .create(&fx.spec("b-web", "blog", "blog-web", &httpd("hello-from-blog")))
        .await
        .unwrap();

    // Within an environment: fine.
    let mut out = fx
        .sh("a-cli", &http_get(&web.address.to_string(), 80))
        .await;
    for _ in 0..50 {
        if out.stdout_str().contains("hello-from-shop") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        out = fx
            .sh("a-cli", &http_get(&web.address.to_string(), 80))
            .await;
    }
    assert!(out.stdout_str().contains("hello-from-shop"), "{out:?}");

    // Egress through masquerade: the uplink sees the host's address, not the instance's.
    let out = fx.sh("a-cli", &http_get("192.168.77.2", 8080)).await;
    assert!(out.stdout_str().contains("hello-from-uplink"), "{out:?}");
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(seen.contains("192.168.77.1"), "{seen}");
    assert!(!seen.contains(&a.address.to_string()), "{seen}");
    // The same uplink as a cloud's metadata service (169.254.169.254), whose user data holds
    // the rack's join token: not reachable, even with egress.
    let out = fx.sh("a-cli", &http_get("169.254.169.254", 8080)).await;
    assert!(!out.stdout_str().contains("hello-from-uplink"), "{out:?}");

    // Across environments, both ways, although the host forwards: blocked by the rules.
    let out = fx
        .sh("a-cli", &http_get(&b_web.address.to_string(), 80))
        .await;
    assert!(!out.stdout_str().contains("hello-from-blog"), "{out:?}");
    let out = fx
        .sh("b-cli", &http_get(&web.address.to_string(), 80))
        .await;
    assert!(!out.stdout_str().contains("hello-from-shop"), "{out:?}");
    // An environment without egress stays inside its bridge.
    let out = fx.sh("b-cli", &http_get("192.168.77.2", 8080)).await;
    assert!(!out.stdout_str().contains("hello-from-uplink"), "{out:?}");

    // The control: without the runtime's table, the forwarding host does connect them.
    sh(&format!(
        "nsenter --net=/run/netns/{host} nft delete table inet {}",
        fx.table
    ));
    let out = fx
        .sh("a-cli", &http_get(&b_web.address.to_string(), 80))
        .await;
    assert!(out.stdout_str().contains("hello-from-blog"), "{out:?}");
    fx.rt.ensure_network(&shop).await.unwrap();
    let out = fx
        .sh("a-cli", &http_get(&b_web.address.to_string(), 80))
        .await;
    assert!(!out.stdout_str().contains("hello-from-blog"), "{out:?}");

    let _ = server.kill().await;
    for id in ["a-web", "a-cli", "b-cli", "b-web"] {
        fx.rt.delete(id).await.unwrap();
    }
    fx.rt.remove_network("shop").await.unwrap();
    fx.rt.remove_network("blog").await.unwrap();
    fx.assert_clean().await;
}
