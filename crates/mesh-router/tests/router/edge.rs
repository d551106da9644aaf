//! Plain-HTTP edge duties: HTTPS redirects and ACME HTTP-01 answers.

use http::StatusCode;

use crate::support::*;
use crate::tls::{Ca, tls_router};

#[tokio::test]
async fn redirects_http_to_https_except_acme_challenges() {
    let ca = Ca::new();
    let (cert, _) = ca.issue(&["secure.test"]);
    let web = Backend::echo("web").await;
    let mut cfg = Cfg::default()
        .route("secure.test", "/", "web")
        .route("plain.test", "/", "web")
        .upstream("web", vec![inst("web-1", web.addr)])
        .build();
    cfg.certificates = vec![cert];
    cfg.https_redirects = vec!["secure.test".to_owned()];
    cfg.acme_challenges
        .insert("tok-123".to_owned(), "tok-123.thumbprint".to_owned());
    let r = tls_router(cfg).await;
    let http = r.http_addr();
    let https_port = r.https_addr().expect("https").port();

    let reply = get(http, "Secure.test:80", "/cart?item=1").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.headers["location"],
        format!("https://secure.test:{https_port}/cart?item=1")
    );
    assert_eq!(web.hits(), 0);

    // Challenges are answered on HTTP for any host, before redirects and routing.
    for host in ["secure.test", "plain.test", "unrouted.test"] {
        let reply = get(http, host, "/.well-known/acme-challenge/tok-123").await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
        assert_eq!(reply.body, "tok-123.thumbprint");
    }
    // An unknown token is the application's business.
    let reply = get(http, "plain.test", "/.well-known/acme-challenge/other").await;
    assert_eq!(reply.backend(), "web");
    assert_eq!(get(http, "plain.test", "/").await.backend(), "web");

    // Over HTTPS the host is served, not redirected.
    let tls = within(
        "tls",
        crate::tls::tls_connect(
            r.https_addr().expect("https"),
            "secure.test",
            ca.roots(),
            &[b"http/1.1"],
        ),
    )
    .await
    .expect("handshake");
    let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = http::Request::get("/cart")
        .header("host", "secure.test")
        .body(empty())
        .expect("request");
    let resp = within("https response", h1.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-backend"], "web");
}

/// A router whose `secure.test` (served by backend `web`) redirects plain HTTP to HTTPS; its
/// config, to change.
async fn secure_only() -> (Backend, mesh_router::RouterConfig, mesh_router::Router) {
    let web = Backend::echo("web").await;
    let mut cfg = Cfg::default()
        .route("secure.test", "/", "web")
        .upstream("web", vec![inst("web-1", web.addr)])
        .build();
    cfg.https_redirects = vec!["secure.test".to_owned()];
    let r = router(cfg.clone()).await;
    (web, cfg, r)
}

/// This machine's loopback as a router forwarding `hosts` here.
fn peer(hosts: &[&str]) -> mesh_router::TrustedPeer {
    mesh_router::TrustedPeer {
        ip: "127.0.0.1".parse().expect("ip"),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

/// A plain-HTTP request with `X-Forwarded-Proto`, as another router forwards it.
async fn forwarded(router: std::net::SocketAddr, proto: &str) -> Reply {
    let req = http::Request::get("/cart")
        .header("x-forwarded-proto", proto)
        .body(empty())
        .expect("request");
    within("a response", send(&client(), router, "secure.test", req))
        .await
        .expect("request through the router")
}

#[tokio::test]
async fn a_trusted_peer_that_terminated_tls_is_not_redirected() {
    let (web, mut cfg, r) = secure_only().await;
    let http = r.http_addr();

    // From anyone, the header changes nothing.
    let reply = forwarded(http, "https").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(web.hits(), 0);

    // From a router of the platform that forwards here now (a rack being left), it counts, for
    // the hosts that router forwards only.
    cfg.trusted_peers = vec![peer(&["other.test"])];
    r.update(cfg.clone()).expect("update");
    assert_eq!(
        forwarded(http, "https").await.status,
        StatusCode::PERMANENT_REDIRECT
    );
    cfg.trusted_peers = vec![peer(&["other.test", "Secure.Test"])];
    r.update(cfg.clone()).expect("update");
    let reply = forwarded(http, "https").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.backend(), "web");
    assert_eq!(
        forwarded(http, "http").await.status,
        StatusCode::PERMANENT_REDIRECT
    );
    assert_eq!(
        forwarded(http, "http, https").await.status,
        StatusCode::PERMANENT_REDIRECT,
        "the first entry is the client's"
    );

    // Once it is no longer listed, nor does it.
    cfg.trusted_peers.clear();
    r.update(cfg).expect("update");
    assert_eq!(
        forwarded(http, "https").await.status,
        StatusCode::PERMANENT_REDIRECT
    );
}

#[tokio::test]
async fn a_peer_is_trusted_from_its_next_request_on_an_open_connection() {
    let (_web, mut cfg, r) = secure_only().await;
    // One keep-alive connection, as a forwarding router's pool holds it.
    let tcp = tokio::net::TcpStream::connect(r.http_addr())
        .await
        .expect("connect");
    let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let ask = |h1: &mut hyper::client::conn::http1::SendRequest<_>| {
        let req = http::Request::get("/cart")
            .header("host", "secure.test")
            .header("x-forwarded-proto", "https")
            .body(empty())
            .expect("request");
        h1.send_request(req)
    };
    let resp = within("first", ask(&mut h1)).await.expect("response");
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    cfg.trusted_peers = vec![peer(&["secure.test"])];
    r.update(cfg).expect("update");
    let resp = within("second", ask(&mut h1)).await.expect("response");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the same connection, now trusted"
    );
}
