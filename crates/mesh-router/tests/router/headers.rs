//! Forwarding headers, request ids and hop-by-hop removal.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_router::RouterOptions;

use crate::support::*;

#[tokio::test]
async fn sets_every_forwarding_header() {
    let (_web, r) = echo_router().await;
    let a = r.http_addr();
    let host = format!("shop.test:{}", a.port());
    let req = Request::get("/p?q=1")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-real-ip", "203.0.113.99")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.test")
        .body(empty())
        .expect("request");
    let reply = within("reply", send(&client(), a, &host, req))
        .await
        .expect("send");
    let e = reply.echo();
    // Not a trusted proxy: the client's forwarding headers are replaced, not appended to.
    assert_eq!(e.header("x-forwarded-for"), "127.0.0.1");
    assert_eq!(e.header("x-real-ip"), "127.0.0.1");
    assert_eq!(e.header("x-forwarded-proto"), "http");
    assert_eq!(e.header("x-scheme"), "http");
    assert_eq!(e.header("x-forwarded-port"), a.port().to_string());
    assert_eq!(e.header("x-forwarded-host"), host);
    assert_eq!(e.header("host"), host);
    let id = e.header("x-request-id");
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    // The client sees the same id.
    assert_eq!(reply.headers["x-request-id"], id);
    assert_eq!(e.version, "HTTP/1.1");
}

/// What a hostile client sends to pass as someone else, or as having come over HTTPS.
fn forged(path: &str) -> Request<Body> {
    Request::get(path)
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "admin.test")
        .header("x-forwarded-port", "443")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .header("x_forwarded_for", "8.8.8.8")
        .header("x_real_ip", "8.8.8.8")
        .header("x_app_header", "kept")
        .body(empty())
        .expect("request")
}

/// The echo of `forged` from an untrusted client, as the instance got it.
fn assert_replaced(e: &Echo, port: u16) {
    assert_eq!(e.header("x-forwarded-for"), "127.0.0.1", "{e:?}");
    assert_eq!(e.header("x-real-ip"), "127.0.0.1");
    assert_eq!(e.header("x-forwarded-proto"), "http");
    assert_eq!(e.header("x-forwarded-port"), port.to_string());
    assert!(e.header("x-forwarded-host").starts_with("shop.test"));
    for gone in ["forwarded", "x_forwarded_for", "x_real_ip"] {
        assert!(!e.headers.contains_key(gone), "{gone} passed: {e:?}");
    }
    assert_eq!(e.header("x_app_header"), "kept");
}

#[tokio::test]
async fn an_untrusted_clients_forged_forwarding_headers_are_replaced() {
    let web = Backend::echo("web").await;
    // Trusting some other network changes nothing for a loopback client.
    let options = RouterOptions {
        trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr")],
        ..RouterOptions::default()
    };
    let r = shop_router(web.addr, options).await;
    let reply = within(
        "reply",
        send(&client(), r.http_addr(), "shop.test", forged("/")),
    )
    .await
    .expect("send");
    assert_replaced(&reply.echo(), r.http_addr().port());
}

#[tokio::test]
async fn http2_clients_forged_forwarding_headers_are_replaced_too() {
    let (_web, r) = echo_router().await;
    let tcp = tokio::net::TcpStream::connect(r.http_addr())
        .await
        .expect("connect");
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let (mut parts, body) = forged("/").into_parts();
    parts.uri = "http://shop.test/".parse().expect("uri");
    let resp = within(
        "h2 response",
        h2.send_request(Request::from_parts(parts, body)),
    )
    .await
    .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_replaced(
        &Echo::parse(&String::from_utf8_lossy(&body)),
        r.http_addr().port(),
    );
}

#[tokio::test]
async fn a_trusted_proxys_forwarding_headers_are_kept_and_appended_to() {
    let web = Backend::echo("web").await;
    let options = RouterOptions {
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        ..RouterOptions::default()
    };
    let r = shop_router(web.addr, options).await;
    let reply = within(
        "reply",
        send(&client(), r.http_addr(), "shop.test", forged("/")),
    )
    .await
    .expect("send");
    let e = reply.echo();
    assert_eq!(e.header("x-forwarded-for"), "6.6.6.6, 127.0.0.1", "{e:?}");
    assert_eq!(e.header("x-real-ip"), "6.6.6.6");
    assert_eq!(e.header("x-forwarded-proto"), "https");
    assert_eq!(e.header("x-forwarded-host"), "admin.test");
    assert_eq!(e.header("x-forwarded-port"), "443");
    assert_eq!(e.header("forwarded"), "for=6.6.6.6;proto=https");
    // Underscore aliases are dropped whoever sends them.
    assert!(!e.headers.contains_key("x_forwarded_for"), "{e:?}");
    assert!(!e.headers.contains_key("x_real_ip"));
}

#[tokio::test]
async fn xff_starts_fresh_and_request_ids_differ() {
    let (_web, r) = echo_router().await;
    let one = get(r.http_addr(), "shop.test", "/").await.echo();
    let two = get(r.http_addr(), "shop.test", "/").await.echo();
    assert_eq!(one.header("x-forwarded-for"), "127.0.0.1");
    assert_ne!(one.header("x-request-id"), two.header("x-request-id"));
}

#[tokio::test]
async fn passes_a_client_request_id_through() {
    let (_web, r) = echo_router().await;
    let req = Request::get("/")
        .header("x-request-id", "client-chosen-42")
        .body(empty())
        .expect("request");
    let reply = within("reply", send(&client(), r.http_addr(), "shop.test", req))
        .await
        .expect("send");
    assert_eq!(reply.echo().header("x-request-id"), "client-chosen-42");
    assert_eq!(reply.headers["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn strips_hop_by_hop_headers() {
    let (_web, r) = echo_router().await;
    let req = Request::get("/")
        .header("connection", "x-hop")
        .header("x-hop", "must not pass")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-end-to-end", "passes")
        .body(empty())
        .expect("request");
    let e = within("reply", send(&client(), r.http_addr(), "shop.test", req))
        .await
        .expect("send")
        .echo();
    assert!(!e.headers.contains_key("x-hop"), "{e:?}");
    assert!(!e.headers.contains_key("proxy-authorization"));
    assert_eq!(e.header("x-end-to-end"), "passes");
}
