//! The edge router of `mesh up`, driven as a user would: services of busybox stacks published on
//! the platform alias and on custom domains answer through the router's HTTP and HTTPS ports
//! (curl with `--resolve`), by host and path prefix, with an uploaded certificate or one issued
//! automatically by a real ACME server (Debian's pebble). Privileged: CI runs it as root.
//!
//! Each test has its own `--net-prefix`, `--subnet-pool` and free loopback ports, and deletes its
//! environment (waiting until the instances are gone) before stopping `mesh up`.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;

use crate::harness::*;
use crate::web::{Purge, assert_root, free_port, wait_no_netns};

/// A page that says which stack answered: busybox httpd serves a file the command writes in
/// /tmp (instances run as uid 65534 on a root filesystem owned by root; /tmp is mode 1777).
fn serve(text: &str, path: &str) -> String {
    format!(
        "mkdir -p /tmp/www{dir} && echo {text} > /tmp/www{path} && exec httpd -f -p $PORT -h /tmp/www",
        dir = Path::new(path).parent().unwrap().display(),
    )
}

/// A port free for both TCP and UDP (a DNS server listens on both).
fn free_dns_port() -> u16 {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

/// `mesh up` with its router on free loopback ports and its own instance names and subnets.
struct Edge {
    p: Platform,
    http: u16,
    https: u16,
    prefix: &'static str,
    _purge: Purge,
}

impl Edge {
    fn start(prefix: &'static str, pool: &str) -> Edge {
        Self::start_on(prefix, pool, free_port(), &[])
    }

    /// With the router's HTTP port chosen beforehand, and more `mesh up` arguments.
    fn start_on(prefix: &'static str, pool: &str, http: u16, extra: &[&str]) -> Edge {
        assert_root();
        let home = Home::new();
        let purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), prefix);
        let https = free_port();
        let (h, hs) = (format!("127.0.0.1:{http}"), format!("127.0.0.1:{https}"));
        let mut args = vec![
            "--http-listen",
            &h,
            "--https-listen",
            &hs,
            "--net-prefix",
            prefix,
            "--subnet-pool",
            pool,
        ];
        args.extend(extra);
        let p = Platform::start_with(home, &args);
        Edge {
            p,
            http,
            https,
            prefix,
            _purge: purge,
        }
    }

    /// A busybox stack of environment `shop` whose service `web` runs `cmd`.
    fn stack(&self, stack: &str, cmd: &str) {
        let at = ["--env", "shop", "--stack", stack];
        let with = |args: &[&str]| -> Vec<String> {
            args.iter()
                .chain(at.iter())
                .map(|s| s.to_string())
                .collect()
        };
        let run = |args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            self.p.mesh(&refs).ok();
        };
        run(vec![
            "create".into(),
            "stack".into(),
            stack.into(),
            "--env".into(),
            "shop".into(),
        ]);
        run(with(&["stack", "set-image", "busybox"]));
        let mut create = with(&["svc", "create", "-n", "web", "--size", "nano"]);
        create.extend(["--".to_string(), cmd.to_string()]);
        run(create);
    }

    fn publish(&self, domain: &str, stack: &str, path: &str) {
        self.p
            .mesh(&[
                "endpoint",
                "publish",
                domain,
                "--env",
                "shop",
                "--stack",
                stack,
                "--service",
                "web",
                "--path",
                path,
            ])
            .ok();
    }

    fn certificates(&self) -> Vec<Value> {
        self.p
            .mesh(&["cert", "list", "--env", "shop", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Deletes the environment, waits (bounded) until its instances and networks are gone, then
    /// stops `mesh up` with SIGTERM.
    fn finish(mut self) {
        self.p.mesh(&["env", "delete", "shop", "--yes"]).ok();
        wait_no_netns(&format!("{}-", self.prefix), Duration::from_secs(60));
        self.p.stop();
    }
}

/// What curl got: status (0 when no HTTP response came), headers (lowercase names) and body.
#[derive(Debug)]
pub(crate) struct Got {
    pub status: u16,
    pub headers: String,
    pub body: String,
    pub error: String,
}

/// `curl` to the router as a client would reach `host`, with `--resolve` pinning it to loopback.
pub(crate) fn curl(scheme: &str, host: &str, port: u16, path: &str, ca: Option<&Path>) -> Got {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-i", "--max-time", "5", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("{scheme}://{host}:{port}{path}"));
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Got {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
        error: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls until `curl` gets 200 with `body`, as instances take a few seconds to start.
fn wait_body(scheme: &str, host: &str, port: u16, path: &str, ca: Option<&Path>, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = curl(scheme, host, port, path, ca);
        if got.status == 200 && got.body.trim() == body {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{scheme}://{host}{path} did not answer {body:?}: {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_certificates(e: &Edge, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let certs = e.certificates();
        if check(&certs) {
            return certs;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 120 s; certificates: {certs:#?}\n{}",
            e.p.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_platform_alias_routes_by_path_to_two_stacks() {
    let metrics = free_port();
    let m = format!("127.0.0.1:{metrics}");
    let e = Edge::start_on(
        "e5a",
        "10.221.0.0/16",
        free_port(),
        &["--router-metrics-listen", &m],
    );
    e.p.mesh(&["env", "create", "shop"]).ok();
    e.stack("a", &serve("from-a", "/index.html"));
    e.stack("b", &serve("from-b", "/api/hello.txt"));
    e.publish("shop.localhost", "a", "/");
    e.publish("shop.localhost", "b", "/api");

    wait_body("http", "shop.localhost", e.http, "/", None, "from-a");
    wait_body(
        "http",
        "shop.localhost",
        e.http,
        "/api/hello.txt",
        None,
        "from-b",
    );
    let got = curl("http", "shop.localhost", e.http, "/", None);
    assert!(got.headers.contains("\nx-request-id: "), "{got:#?}");
    // Prefixes match on segment boundaries: /apix is stack a's (which has no such file).
    let got = curl("http", "shop.localhost", e.http, "/apix", None);
    assert_eq!(got.status, 404, "{got:#?}");
    assert!(!got.headers.contains("x-mesh-error"), "{got:#?}");
    // A host nobody published says so, from the router itself.
    let got = curl("http", "other.localhost", e.http, "/", None);
    assert_eq!(got.status, 404, "{got:#?}");
    assert!(got.headers.contains("x-mesh-error: no-route"), "{got:#?}");

    // The router's metrics, on their own listener, count what it routed.
    let out = Command::new("curl")
        .args(["-s", &format!("http://{m}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mesh_router_requests_total"), "{text}");

    // Plain HTTP redirected to HTTPS when the endpoint asks for it, and served again when not.
    let at = ["--env", "shop"];
    let redirect = |on: &str| {
        e.p.mesh(
            &[
                &[
                    "endpoint",
                    "update",
                    "shop.localhost",
                    "--https-redirect",
                    on,
                ][..],
                &at[..],
            ]
            .concat(),
        )
        .ok();
    };
    redirect("on");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = curl("http", "shop.localhost", e.http, "/", None);
        if got.status == 308 {
            assert!(
                got.headers.contains("\nlocation: https://shop.localhost"),
                "{got:#?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no redirect: {got:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    redirect("off");
    wait_body("http", "shop.localhost", e.http, "/", None, "from-a");

    // Unpublished: the path falls back to the longest prefix left.
    e.p.mesh(&[
        "endpoint",
        "unpublish",
        "shop.localhost",
        "--env",
        "shop",
        "--stack",
        "b",
        "--service",
        "web",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = curl("http", "shop.localhost", e.http, "/api/hello.txt", None);
        if got.status == 404 && !got.headers.contains("x-mesh-error") {
            break;
        }
        assert!(Instant::now() < deadline, "/api still routed: {got:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    e.finish();
}

/// An app that answers with the `X-` headers it got (busybox httpd's CGI puts each header in
/// an `HTTP_` variable, where `X_Forwarded_For` and `X-Forwarded-For` are the same name).
const ECHO_HEADERS: &str = "mkdir -p /tmp/www/cgi-bin && \
     printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nenv | grep ^HTTP_X | sort\\n' \
     > /tmp/www/cgi-bin/h && chmod +x /tmp/www/cgi-bin/h && echo up > /tmp/www/up && \
     exec httpd -f -p $PORT -h /tmp/www";

#[test]
fn the_app_sees_the_address_the_router_saw_not_a_forged_one() {
    let e = Edge::start("e5f", "10.228.0.0/16");
    e.p.mesh(&["env", "create", "shop"]).ok();
    e.stack("a", ECHO_HEADERS);
    e.publish("shop.localhost", "a", "/");
    wait_body("http", "shop.localhost", e.http, "/up", None, "up");

    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "5", "--resolve"])
        .arg(format!("shop.localhost:{}:127.0.0.1", e.http))
        .args([
            "-H",
            "X-Forwarded-For: 6.6.6.6",
            "-H",
            "X_Forwarded_For: 7.7.7.7",
            "-H",
            "X-Real-IP: 6.6.6.6",
            "-H",
            "X-Forwarded-Proto: https",
            "-H",
            "X-Forwarded-Host: admin.localhost",
        ])
        .arg(format!("http://shop.localhost:{}/cgi-bin/h", e.http))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    // curl reaches the router from 127.0.0.1, which no --router-trusted-proxies trusts.
    for line in [
        "HTTP_X_FORWARDED_FOR=127.0.0.1",
        "HTTP_X_REAL_IP=127.0.0.1",
        "HTTP_X_FORWARDED_PROTO=http",
    ] {
        assert!(got.lines().any(|l| l == line), "{line} missing in {got}");
    }
    let host = format!("HTTP_X_FORWARDED_HOST=shop.localhost:{}", e.http);
    assert!(got.lines().any(|l| l == host), "{host} missing in {got}");
    for forged in ["6.6.6.6", "7.7.7.7", "https", "admin.localhost"] {
        assert!(!got.contains(forged), "{forged} reached the app: {got}");
    }
    e.finish();
}

/// A CA and a leaf certificate it signed for `domains`, PEM: (ca, leaf, leaf key).
pub(crate) fn pki(domains: &[&str]) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "edge test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(domains.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, domains[0]);
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

#[test]
fn a_custom_domain_with_an_uploaded_certificate_answers_over_https() {
    let e = Edge::start("e5b", "10.222.0.0/16");
    e.p.mesh(&["env", "create", "shop"]).ok();
    e.stack("a", &serve("from-a", "/index.html"));
    e.p.mesh(&["endpoint", "create", "shop.example.com", "--env", "shop"])
        .ok();
    e.publish("shop.example.com", "a", "/");

    // Without an ACME directory the domain's certificate waits, and says why.
    let certs = wait_certificates(&e, "pending without ACME", |c| {
        c.iter().any(|c| c["state"] == "pending")
    });
    assert_eq!(certs[0]["source"], "acme");
    assert!(
        certs[0]["issuer"]
            .as_str()
            .unwrap()
            .starts_with("ACME is not configured"),
        "{certs:#?}"
    );
    // Plain HTTP works meanwhile.
    wait_body("http", "shop.example.com", e.http, "/", None, "from-a");

    let (ca, leaf, key) = pki(&["shop.example.com"]);
    let dir = e.p.home.work();
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("shop.pem"), leaf).unwrap();
    std::fs::write(dir.join("shop.key"), key).unwrap();
    e.p.mesh(&["cert", "upload", "shop.pem", "shop.key", "--env", "shop"])
        .ok();
    let ca = dir.join("ca.pem");
    wait_body(
        "https",
        "shop.example.com",
        e.https,
        "/",
        Some(&ca),
        "from-a",
    );
    let got = curl("https", "shop.example.com", e.https, "/", Some(&ca));
    assert!(
        got.headers.starts_with("http/2 200"),
        "h2 by ALPN: {got:#?}"
    );
    // SNI picks the certificate: a name without one gets no TLS session.
    let got = curl("https", "www.example.com", e.https, "/", Some(&ca));
    assert!(got.status == 0 && !got.error.is_empty(), "{got:#?}");
    // A connection made for shop.example.com does not serve another host (HTTP/1.1 and h2).
    for version in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args([version, "--resolve"])
            .arg(format!("shop.example.com:{}:127.0.0.1", e.https))
            .arg("--cacert")
            .arg(&ca)
            .args(["-H", "Host: shop.localhost"])
            .arg(format!("https://shop.example.com:{}/", e.https))
            .stdin(Stdio::null())
            .output()
            .expect("curl runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "421", "{version}");
    }
    // The upload covers the domain: its pending record goes away.
    wait_certificates(&e, "only the upload", |c| {
        c.len() == 1 && c[0]["source"] == "uploaded"
    });
    e.finish();
}

/// pebble (a real ACME server) with pebble-challtestsrv as its DNS, answering 127.0.0.1 for
/// every name; it validates HTTP-01 on the router's HTTP port. Killed when dropped.
struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    acme: u16,
    management: u16,
}

impl Pebble {
    fn start(http_port: u16) -> Pebble {
        for bin in ["pebble", "pebble-challtestsrv"] {
            assert!(
                Path::new("/usr/bin").join(bin).exists(),
                "{bin} is missing: run scripts/install-deps (Debian package pebble)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mesh-pebble-")
            .tempdir()
            .unwrap();
        let (ca, leaf, key) = pki(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let (acme, management, dns, dns_management) =
            (free_port(), free_port(), free_dns_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let root = dir.path().to_path_buf();
        let log = |name: &str| std::fs::File::create(root.join(name)).unwrap();
        let mut p = Pebble {
            children: Vec::new(),
            acme,
            management,
            dir,
        };
        p.children.push(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .stdin(Stdio::null())
                .stdout(log("challtestsrv.log"))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        p.children.push(
            Command::new("pebble")
                .arg("-config")
                .arg(p.dir.path().join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                // Validate at once, and never reject a nonce on purpose.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .stdin(Stdio::null())
                .stdout(log("pebble.log"))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [acme, management, dns, dns_management] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "pebble did not start: {}",
                    p.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        p
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme)
    }

    /// The root that issues this run's certificates (it changes at every pebble start).
    fn root(&self) -> PathBuf {
        let out = Command::new("curl")
            .args(["-s", "-S", "--max-time", "5", "--cacert"])
            .arg(self.ca_file())
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .unwrap();
        let pem = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let path = self.dir.path().join("root.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn acme_issues_a_certificate_for_a_custom_domain_automatically() {
    // The router's HTTP port first: pebble must know where to validate.
    let http = free_port();
    let pebble = Pebble::start(http);
    let (directory, ca_file) = (pebble.directory(), pebble.ca_file());
    let ca = ca_file.to_str().unwrap();
    let e = Edge::start_on(
        "e5c",
        "10.223.0.0/16",
        http,
        &["--acme-directory", &directory, "--acme-ca-file", ca],
    );
    e.p.mesh(&["env", "create", "shop"]).ok();
    e.stack("a", &serve("from-a", "/index.html"));
    e.p.mesh(&["endpoint", "create", "shop.example.com", "--env", "shop"])
        .ok();
    e.publish("shop.example.com", "a", "/");

    let certs = wait_certificates(&e, "issued by pebble", |c| {
        c.iter().any(|c| c["state"] == "issued")
    });
    assert_eq!(certs.len(), 1, "the pending record is gone: {certs:#?}");
    assert_eq!(certs[0]["source"], "acme");
    assert_eq!(certs[0]["domains"], serde_json::json!(["shop.example.com"]));
    assert_eq!(certs[0]["fingerprint"].as_str().unwrap().len(), 64);
    assert!(
        certs[0]["issuer"].as_str().unwrap().contains("Pebble"),
        "{certs:#?}\n{}",
        pebble.log()
    );
    // The chain the router serves verifies against pebble's root, for the domain's name.
    let root = pebble.root();
    wait_body(
        "https",
        "shop.example.com",
        e.https,
        "/",
        Some(&root),
        "from-a",
    );
    e.finish();
}

/// An instance that speaks just enough HTTP by hand (busybox `nc -e`, one shell per
/// connection): `/events` is a server-sent event stream with two events two seconds apart;
/// `/ws` a WebSocket that sends "hello", waits for one masked client frame of 4 bytes, answers
/// "got".
const STREAMS: &str = r#"cat > /tmp/h.sh <<'EOF'
#!/bin/sh
read -r method path version
key=
while read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  case "$line" in
    [Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=$(printf '%s' "${line#*:}" | tr -d ' ');;
  esac
done
case "$path" in
/events)
  printf 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n'
  printf 'data: one\n\n'
  sleep 2
  printf 'data: two\n\n'
  ;;
/ws)
  hex=$(printf '%s' "${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -c1-40 | sed 's/../\\x&/g')
  accept=$(printf "$hex" | base64)
  printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"
  printf '\201\005hello'
  dd bs=10 count=1 >/dev/null 2>&1
  printf '\201\003got'
  sleep 1
  ;;
*)
  printf 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
  ;;
esac
EOF
chmod +x /tmp/h.sh
exec nc -ll -p $PORT -e /tmp/h.sh"#;

/// Reads from `s` until `want` has arrived (or the read times out); returns everything read.
fn read_until(s: &mut std::net::TcpStream, got: &mut Vec<u8>, want: &[u8]) {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while !got.windows(want.len()).any(|w| w == want) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading for {:?}: {e}; so far {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(got)
            ),
        }
    }
}

#[test]
fn websockets_server_sent_events_and_limits_on_the_platform_alias() {
    use std::io::{Read, Write};

    let e = Edge::start_on(
        "e5w",
        "10.226.0.0/16",
        free_port(),
        &["--router-max-body-size", "1"],
    );
    e.p.mesh(&["env", "create", "shop"]).ok();
    e.stack("live", STREAMS);
    e.publish("shop.localhost", "live", "/");
    // Routed once the instance answers 404 for an unknown path (not the router's own 404/503).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = curl("http", "shop.localhost", e.http, "/nothing", None);
        if got.status == 404 && !got.headers.contains("x-mesh-error") {
            break;
        }
        assert!(Instant::now() < deadline, "never routed: {got:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", e.http)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };

    // SSE: the first event arrives while the instance still holds the second.
    let mut s = connect();
    s.write_all(
        b"GET /events HTTP/1.1\r\nHost: shop.localhost\r\nAccept: text/event-stream\r\n\r\n",
    )
    .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    read_until(&mut s, &mut got, b"data: one\n\n");
    let first = started.elapsed();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    assert!(
        !text.contains("data: two"),
        "both events came at once: {text}"
    );
    read_until(&mut s, &mut got, b"data: two\n\n");
    assert!(
        started.elapsed() >= first + Duration::from_millis(1500),
        "the stream was buffered: first event after {first:?}, second after {:?}",
        started.elapsed()
    );

    // WebSocket: the upgrade goes through and frames pass both ways.
    let mut s = connect();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: shop.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    read_until(&mut s, &mut got, b"\x81\x05hello");
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    // RFC 6455's example key and its accept value, computed by the instance's shell.
    assert!(
        text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{text}"
    );
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x84];
    frame.extend_from_slice(&mask);
    frame.extend(b"ping".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    s.write_all(&frame).unwrap();
    let mut answer = [0u8; 5];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"\x81\x03got");

    // The router's limits come from `mesh up`'s flags: bodies up to 1 MiB here.
    let mut s = connect();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: shop.localhost\r\nContent-Length: 2097152\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 413") && text.contains("x-mesh-error: body-too-large"),
        "{text}"
    );
    e.finish();
}
