use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn policy() -> EgressPolicy {
    EgressPolicy {
        host_addresses: vec!["192.0.2.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        deny: vec!["203.0.113.99/32".parse().unwrap()],
        allow: vec!["10.77.0.0/16".parse().unwrap()],
    }
}

#[test]
fn cidrs_parse_and_contain() {
    let c: Cidr = "10.0.0.0/8".parse().unwrap();
    assert!(c.contains("10.255.1.2".parse().unwrap()));
    assert!(!c.contains("11.0.0.1".parse().unwrap()));
    assert!(!c.contains("::1".parse().unwrap()));
    let v6: Cidr = "fc00::/7".parse().unwrap();
    assert!(v6.contains("fd12::1".parse().unwrap()));
    assert_eq!("1.2.3.4".parse::<Cidr>().unwrap().to_string(), "1.2.3.4/32");
    assert!(
        "0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap())
    );
    for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad}");
    }
}

#[test]
fn the_policy_refuses_the_platform_and_private_ranges_and_lets_the_internet_through() {
    let p = policy();
    for denied in [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "0.0.0.0",
        "0.1.2.3",
        "::",
        "192.0.2.2",
        "fd00::2",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "10.239.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.0.8",
        "224.0.0.1",
        "255.255.255.255",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "64:ff9b::a00:1",
        "203.0.113.99",
    ] {
        let ip: IpAddr = denied.parse().unwrap();
        assert!(p.check(ip).is_err(), "{denied} should be refused");
    }
    for allowed in [
        "203.0.113.80",
        "8.8.8.8",
        "151.101.0.223",
        "2a04:4e42::223",
        "10.77.3.4",
    ] {
        let ip: IpAddr = allowed.parse().unwrap();
        assert_eq!(p.check(ip), Ok(()), "{allowed} should be allowed");
    }
    // An allowed range never opens loopback or the host's own addresses.
    let open = EgressPolicy {
        allow: vec!["0.0.0.0/0".parse().unwrap()],
        ..policy()
    };
    assert!(open.check("127.0.0.1".parse().unwrap()).is_err());
    assert!(open.check("192.0.2.2".parse().unwrap()).is_err());
    assert_eq!(open.check("10.1.1.1".parse().unwrap()), Ok(()));
    // The operator's denials win over allows.
    let both = EgressPolicy {
        deny: vec!["10.77.5.0/24".parse().unwrap()],
        ..policy()
    };
    assert!(both.check("10.77.5.1".parse().unwrap()).is_err());
    let reason = p.check("10.1.1.1".parse().unwrap()).unwrap_err();
    assert!(reason.contains("RFC 1918"), "{reason}");
}

#[test]
fn ip_addr_output_gives_every_address_and_fails_closed() {
    let json = br#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1"},{"family":"inet6","local":"::1"}]},
                   {"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.2"}]}]"#;
    let addrs = parse_host_addresses(json).unwrap();
    assert_eq!(addrs.len(), 3);
    assert!(addrs.contains(&"192.0.2.2".parse().unwrap()));
    assert!(parse_host_addresses(b"not json").is_err());
    assert!(parse_host_addresses(b"[]").is_err());
    assert!(parse_host_addresses(br#"[{"addr_info":[{"local":"x"}]}]"#).is_err());
}

#[test]
fn requests_parse_to_a_destination_and_an_origin_form_head() {
    let r = Request::parse(b"CONNECT registry.npmjs.org:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(r.connect);
    assert_eq!((r.host.as_str(), r.port), ("registry.npmjs.org", 443));
    let r = Request::parse(
        b"GET http://Deb.Debian.org/debian/dists/x?y=1 HTTP/1.1\r\nHost: deb.debian.org\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nUser-Agent: apt\r\n\r\n",
    )
    .unwrap();
    assert!(!r.connect);
    assert_eq!((r.host.as_str(), r.port), ("deb.debian.org", 80));
    let head = String::from_utf8(r.forward_head).unwrap();
    assert_eq!(
        head,
        "GET /debian/dists/x?y=1 HTTP/1.1\r\nHost: deb.debian.org\r\nUser-Agent: apt\r\nConnection: close\r\n\r\n"
    );
    let r = Request::parse(b"GET http://[2001:db8::1]:8080 HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!((r.host.as_str(), r.port), ("2001:db8::1", 8080));
    assert!(
        String::from_utf8(r.forward_head)
            .unwrap()
            .starts_with("GET / HTTP/1.0\r\nHost: [2001:db8::1]:8080\r\n")
    );
    for bad in [
        &b"GET /relative HTTP/1.1\r\n\r\n"[..],
        b"CONNECT host HTTP/1.1\r\n\r\n",
        b"CONNECT host:0 HTTP/1.1\r\n\r\n",
        b"CONNECT host:99999 HTTP/1.1\r\n\r\n",
        b"GET http://user:pw@host/ HTTP/1.1\r\n\r\n",
        b"GET ftp://host/ HTTP/1.1\r\n\r\n",
        b"CONNECT ho st:1 HTTP/1.1\r\n\r\n",
        b"GET http://h/ HTTP/2\r\n\r\n",
    ] {
        assert!(
            Request::parse(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

async fn proxy_on_loopback(
    peer: IpAddr,
) -> (
    u16,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(serve(
        listener,
        peer,
        Arc::new(policy()),
        ProxyLimits::default(),
        Some(tx),
    ));
    (port, rx, task)
}

async fn ask(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_string(&mut out),
    )
    .await
    .expect("the proxy answers and closes");
    out
}

/// Tried for real: the proxy refuses loopback (a service the test runs there sees no
/// connection), private ranges and the host's own address, whether asked by address or
/// through CONNECT or absolute-form HTTP.
#[tokio::test]
async fn the_proxy_refuses_loopback_and_private_destinations_by_trying() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_port = target.local_addr().unwrap().port();
    let (port, mut denied, task) = proxy_on_loopback(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    for req in [
        format!("CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\n\r\n"),
        format!("CONNECT localhost:{target_port} HTTP/1.1\r\n\r\n"),
        format!("GET http://127.0.0.1:{target_port}/ HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("CONNECT [::ffff:127.0.0.1]:{target_port} HTTP/1.1\r\n\r\n"),
        "CONNECT 10.1.2.3:443 HTTP/1.1\r\n\r\n".to_string(),
        "CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n".to_string(),
        "GET http://192.0.2.2:80/ HTTP/1.1\r\n\r\n".to_string(),
        "CONNECT 203.0.113.99:443 HTTP/1.1\r\n\r\n".to_string(),
    ] {
        let answer = ask(port, &req).await;
        assert!(
            answer.starts_with("HTTP/1.1 403 Forbidden"),
            "{req:?} -> {answer}"
        );
        assert!(answer.contains("widemesh build proxy: refused"), "{answer}");
        let logged = denied.recv().await.unwrap();
        assert!(logged.contains("refused"), "{logged}");
    }
    // Nothing reached the loopback service.
    let accepted =
        tokio::time::timeout(std::time::Duration::from_millis(200), target.accept()).await;
    assert!(accepted.is_err(), "a refused request reached the target");
    let bad = ask(port, "GET /x HTTP/1.1\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    task.abort();
}

/// A connection from any address but the build's own gets no answer at all.
#[tokio::test]
async fn the_proxy_ignores_peers_other_than_its_build() {
    let (port, _denied, task) = proxy_on_loopback("127.0.0.2".parse().unwrap()).await;
    let answer = ask(port, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n").await;
    assert_eq!(answer, "");
    task.abort();
}

#[test]
fn proxy_env_names_every_spelling() {
    let env = proxy_env("10.230.0.1".parse().unwrap(), 3128);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_https_proxy",
        "CARGO_HTTP_PROXY",
    ] {
        assert_eq!(get(k), Some("http://10.230.0.1:3128"), "{k}");
    }
    assert!(
        get("MAVEN_OPTS")
            .unwrap()
            .contains("-Dhttps.proxyHost=10.230.0.1 -Dhttps.proxyPort=3128")
    );
    assert!(is_proxy_var("https_proxy") && is_proxy_var("ALL_PROXY") && !is_proxy_var("PATH"));
}
