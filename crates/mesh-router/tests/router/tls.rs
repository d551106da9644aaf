//! TLS: certificates picked by SNI, hot certificate swaps, HTTP/2 and HTTP/1.1 over ALPN.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_router::{CertificateConfig, Router, RouterConfig, RouterOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::*;

/// A throwaway CA that issues leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "widemesh test ca");
        let cert = params.self_signed(&key).expect("ca cert");
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` as the router takes it, and its DER to compare with what clients see.
    pub fn issue(&self, names: &[&str]) -> (CertificateConfig, CertificateDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let key = KeyPair::generate().expect("leaf key");
        let cert = CertificateParams::new(names.clone())
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("leaf");
        (
            CertificateConfig {
                domains: names,
                chain_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            cert.der().clone(),
        )
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("root");
        roots
    }
}

pub async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    roots: RootCertStore,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// A router with both listeners on 127.0.0.1.
pub async fn tls_router(config: RouterConfig) -> Router {
    init();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let r = Router::bind_with(any, Some(any), RouterOptions::default())
        .await
        .expect("bind");
    let report = r.update(config).expect("update");
    assert!(report.certificate_errors.is_empty(), "{report:?}");
    r
}

fn leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().expect("peer certs")[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_picks_the_protocol() {
    let ca = Ca::new();
    let (cert_a, der_a) = ca.issue(&["a.test"]);
    let (cert_b, der_b) = ca.issue(&["b.test"]);
    let a = Backend::echo("a").await;
    let b = Backend::echo("b").await;
    let mut cfg = Cfg::default()
        .route("a.test", "/", "a")
        .route("b.test", "/", "b")
        .upstream("a", vec![inst("a-1", a.addr)])
        .upstream("b", vec![inst("b-1", b.addr)])
        .build();
    cfg.certificates = vec![cert_a, cert_b];
    let r = tls_router(cfg).await;
    let https = r.https_addr().expect("https listener");

    // a.test over HTTP/2.
    let tls = within(
        "tls a",
        tls_connect(https, "a.test", ca.roots(), &[b"h2", b"http/1.1"]),
    )
    .await
    .expect("handshake a");
    assert_eq!(leaf(&tls), der_a);
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for path in ["/one", "/two"] {
        let req = Request::get(format!("https://a.test{path}"))
            .body(empty())
            .expect("request");
        let resp = within("h2 response", h2.send_request(req))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let e = Echo::parse(&String::from_utf8_lossy(&body));
        assert_eq!(e.backend, "a");
        assert_eq!(e.path, path);
        assert_eq!(e.version, "HTTP/1.1", "instances are spoken to in HTTP/1.1");
        assert_eq!(e.header("x-forwarded-proto"), "https");
        assert_eq!(e.header("x-scheme"), "https");
        assert_eq!(e.header("x-forwarded-port"), https.port().to_string());
        assert_eq!(e.header("x-forwarded-host"), "a.test");
        assert_eq!(e.header("host"), "a.test");
    }

    // b.test over HTTP/1.1.
    let tls = within(
        "tls b",
        tls_connect(https, "b.test", ca.roots(), &[b"http/1.1"]),
    )
    .await
    .expect("handshake b");
    assert_eq!(leaf(&tls), der_b);
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "b.test")
        .body(empty())
        .expect("request");
    let resp = within("h1 response", h1.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.headers()["x-backend"], "b");

    // No certificate for the name: no handshake.
    let err = within("tls c", tls_connect(https, "c.test", ca.roots(), &[b"h2"])).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn certificates_swap_hot() {
    let ca = Ca::new();
    let (old, old_der) = ca.issue(&["a.test"]);
    let (new, new_der) = ca.issue(&["a.test", "*.apps.test"]);
    let a = Backend::echo("a").await;
    let base = Cfg::default()
        .route("a.test", "/", "a")
        .upstream("a", vec![inst("a-1", a.addr)])
        .build();
    let mut cfg = base.clone();
    cfg.certificates = vec![old];
    let r = tls_router(cfg).await;
    let https = r.https_addr().expect("https");
    // A connection made before the swap keeps working after it.
    let before = within(
        "tls",
        tls_connect(https, "a.test", ca.roots(), &[b"http/1.1"]),
    )
    .await
    .expect("handshake");
    assert_eq!(leaf(&before), old_der);
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(before))
        .await
        .expect("h1");
    tokio::spawn(conn);

    let mut cfg = base;
    cfg.certificates = vec![new];
    assert!(r.update(cfg).expect("update").certificate_errors.is_empty());
    let after = within(
        "tls",
        tls_connect(https, "a.test", ca.roots(), &[b"http/1.1"]),
    )
    .await
    .expect("handshake");
    assert_eq!(leaf(&after), new_der);
    let wild = within(
        "tls",
        tls_connect(https, "x.apps.test", ca.roots(), &[b"http/1.1"]),
    )
    .await
    .expect("wildcard handshake");
    assert_eq!(leaf(&wild), new_der);

    let req = Request::get("/")
        .header("host", "a.test")
        .body(empty())
        .expect("request");
    let resp = within("old connection", h1.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn clients_without_sni_get_the_default_certificate() {
    let ca = Ca::new();
    let (named, _) = ca.issue(&["a.test"]);
    let (fallback, fallback_der) = ca.issue(&["edge.test", "127.0.0.1"]);
    let a = Backend::echo("a").await;
    let mut cfg = Cfg::default()
        .route("127.0.0.1", "/", "a")
        .upstream("a", vec![inst("a-1", a.addr)])
        .build();
    cfg.certificates = vec![named, fallback];
    cfg.default_certificate = Some("edge.test".to_owned());
    let r = tls_router(cfg).await;
    let https = r.https_addr().expect("https");
    // An IP address as server name: rustls sends no SNI.
    let tls = within(
        "tls",
        tls_connect(https, "127.0.0.1", ca.roots(), &[b"http/1.1"]),
    )
    .await
    .expect("handshake without sni");
    assert_eq!(leaf(&tls), fallback_der);
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "127.0.0.1")
        .body(empty())
        .expect("request");
    let resp = within("response", h1.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// One certificate for two names (so a client may reuse a connection made for one for the
/// other, as HTTP/2 clients do), both routed.
async fn two_name_router(ca: &Ca) -> (Backend, Backend, Router) {
    let (cert, _) = ca.issue(&["a.test", "b.test"]);
    let a = Backend::echo("a").await;
    let b = Backend::echo("b").await;
    let mut cfg = Cfg::default()
        .route("a.test", "/", "a")
        .route("b.test", "/", "b")
        .upstream("a", vec![inst("a-1", a.addr)])
        .upstream("b", vec![inst("b-1", b.addr)])
        .build();
    cfg.certificates = vec![cert];
    let r = tls_router(cfg).await;
    (a, b, r)
}

#[tokio::test]
async fn http1_requests_for_another_host_than_the_tls_name_are_misdirected() {
    let ca = Ca::new();
    let (a, b, r) = two_name_router(&ca).await;
    let https = r.https_addr().expect("https");
    let tls = within(
        "tls a",
        tls_connect(https, "a.test", ca.roots(), &[b"http/1.1"]),
    )
    .await
    .expect("handshake a");
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    for (host, status) in [
        ("b.test", StatusCode::MISDIRECTED_REQUEST),
        ("a.test", StatusCode::OK),
        // The same name, written differently, is the same name.
        ("A.Test.", StatusCode::OK),
        (&*format!("a.test:{}", https.port()), StatusCode::OK),
        ("B.test:443", StatusCode::MISDIRECTED_REQUEST),
    ] {
        let req = Request::get("/")
            .header("host", host)
            .body(empty())
            .expect("request");
        let resp = within("h1 response", h1.send_request(req))
            .await
            .expect("response");
        assert_eq!(resp.status(), status, "Host: {host}");
        if status == StatusCode::MISDIRECTED_REQUEST {
            assert_eq!(resp.headers()["x-mesh-error"], "misdirected");
        } else {
            assert_eq!(resp.headers()["x-backend"], "a");
        }
        resp.into_body().collect().await.expect("body");
    }
    assert_eq!(
        b.hits(),
        0,
        "b.test was never reached over a.test's connection"
    );
    assert_eq!(a.hits(), 3);
}

#[tokio::test]
async fn http2_requests_for_another_host_than_the_tls_name_are_misdirected() {
    let ca = Ca::new();
    let (a, b, r) = two_name_router(&ca).await;
    let https = r.https_addr().expect("https");
    let tls = within("tls a", tls_connect(https, "a.test", ca.roots(), &[b"h2"]))
        .await
        .expect("handshake a");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for (authority, status) in [
        ("b.test", StatusCode::MISDIRECTED_REQUEST),
        ("a.test", StatusCode::OK),
    ] {
        let req = Request::get(format!("https://{authority}/"))
            .body(empty())
            .expect("request");
        let resp = within("h2 response", h2.send_request(req))
            .await
            .expect("response");
        assert_eq!(resp.status(), status, ":authority {authority}");
        resp.into_body().collect().await.expect("body");
    }
    assert_eq!((a.hits(), b.hits()), (1, 0));

    // A connection made for b.test serves b.test.
    let tls = within("tls b", tls_connect(https, "b.test", ca.roots(), &[b"h2"]))
        .await
        .expect("handshake b");
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("https://b.test/")
        .body(empty())
        .expect("request");
    let resp = within("h2 response", h2.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-backend"], "b");
}
