//! Hanging and resetting instances, oversized bodies, slow and malformed clients.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use mesh_router::RouterOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Accepts connections and never answers.
async fn hanging_backend() -> std::net::SocketAddr {
    raw_backend(|tcp| async move {
        std::future::pending::<()>().await;
        drop(tcp);
    })
    .await
}

/// Reads the request head, then resets the connection.
async fn resetting_backend() -> std::net::SocketAddr {
    raw_backend(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        drop(tcp.set_zero_linger());
        drop(tcp);
    })
    .await
}

#[tokio::test]
async fn hanging_instance_is_504_and_others_unaffected() {
    let hang = hanging_backend().await;
    let ok = Backend::echo("ok").await;
    let options = RouterOptions {
        response_head_timeout: Duration::from_millis(300),
        ..RouterOptions::default()
    };
    let r = router_with(
        options,
        Cfg::default()
            .route("hang.test", "/", "hang")
            .route("ok.test", "/", "ok")
            .upstream("hang", vec![inst("hang-1", hang)])
            .upstream("ok", vec![inst("ok-1", ok.addr)])
            .build(),
    )
    .await;
    let slow = tokio::spawn({
        let a = r.http_addr();
        async move { get(a, "hang.test", "/").await }
    });
    assert_eq!(
        get(r.http_addr(), "ok.test", "/").await.status,
        StatusCode::OK
    );
    let reply = within("504", slow).await.expect("join");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.headers["x-mesh-error"], "timeout");
    assert!(
        reply.body.contains("did not answer in time"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn resetting_instance_is_502() {
    let reset = resetting_backend().await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![inst("reset-1", reset)])
            .build(),
    )
    .await;
    let reply = get(r.http_addr(), "shop.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.body.contains("closed the connection"),
        "{}",
        reply.body
    );
    // The router itself is fine.
    assert_eq!(
        get(r.http_addr(), "other.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let web = Backend::echo("web").await;
    let options = RouterOptions {
        max_request_body_bytes: 1024,
        ..RouterOptions::default()
    };
    let r = shop_router(web.addr, options).await;
    let c = client();
    // Declared length over the limit: refused before contacting the instance.
    let req = Request::post("/")
        .body(full(vec![b'x'; 4096]))
        .expect("request");
    let reply = within("413", send(&c, r.http_addr(), "shop.test", req))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.headers["x-mesh-error"], "body-too-large");
    assert_eq!(web.hits(), 0);

    // Chunked, no length: cut off while streaming.
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        for _ in 0..8 {
            if tx.send(Bytes::from(vec![b'y'; 512])).await.is_err() {
                break;
            }
        }
    });
    let req = Request::post("/").body(body).expect("request");
    let reply = within("413", send(&c, r.http_addr(), "shop.test", req))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");

    // At the limit is fine.
    let req = Request::post("/")
        .body(full(vec![b'z'; 1024]))
        .expect("request");
    let reply = within("200", send(&c, r.http_addr(), "shop.test", req))
        .await
        .expect("send");
    assert_eq!(reply.echo().body_len, 1024);
}

#[tokio::test]
async fn slow_client_headers_time_out_without_hurting_others() {
    let web = Backend::echo("web").await;
    let options = RouterOptions {
        header_read_timeout: Duration::from_millis(300),
        ..RouterOptions::default()
    };
    let r = shop_router(web.addr, options).await;
    let started = std::time::Instant::now();
    let mut slow = TcpStream::connect(r.http_addr()).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n")
        .await
        .expect("partial head");
    // Others are served meanwhile.
    assert_eq!(
        get(r.http_addr(), "shop.test", "/").await.status,
        StatusCode::OK
    );
    // The slow connection is closed (possibly after a 408), without ever reaching the instance.
    let mut buf = Vec::new();
    let read = within("the slow connection to close", slow.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        read.is_err() || buf.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout"
    );
    assert_eq!(web.hits(), 1);
}

#[tokio::test]
async fn malformed_and_oversized_heads_are_refused() {
    let web = Backend::echo("web").await;
    let r = shop_router(web.addr, RouterOptions::default()).await;
    let raw = |bytes: Vec<u8>| {
        let a = r.http_addr();
        async move {
            let mut tcp = TcpStream::connect(a).await.expect("connect");
            let _ = tcp.write_all(&bytes).await;
            let mut buf = Vec::new();
            let _ = within("an answer", tcp.read_to_end(&mut buf)).await;
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    let garbage = raw(b"NOT HTTP AT ALL\r\n\r\n".to_vec()).await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let mut huge = b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200 * 1024));
    huge.extend(b"\r\n\r\n");
    let big = raw(huge).await;
    assert!(big.is_empty() || big.starts_with("HTTP/1.1 431"), "{big}");
    let no_host = raw(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec()).await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    assert!(garbage.contains("X-Request-ID: "), "{garbage}");
    assert_eq!(web.hits(), 0);
    // Refused before routing, still logged and counted: three 4xx for no endpoint.
    eventually("the refusals to be counted", || {
        r.metrics_text().contains(
            r#"mesh_router_requests_total{endpoint="-",service="-",status_class="4xx"} 3"#,
        )
    })
    .await;
    assert_eq!(
        get(r.http_addr(), "shop.test", "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn client_leaving_early_releases_the_instance() {
    let hang = hanging_backend().await;
    let r = router(
        Cfg::default()
            .route("hang.test", "/", "hang")
            .upstream("hang", vec![inst("hang-1", hang)])
            .build(),
    )
    .await;
    let mut tcp = TcpStream::connect(r.http_addr()).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: hang.test\r\n\r\n")
        .await
        .expect("request");
    eventually("the request to reach the instance", || {
        r.in_flight("hang-1") == 1
    })
    .await;
    drop(tcp);
    eventually("the instance to be released", || r.in_flight("hang-1") == 0).await;
    eventually("the 499 to be counted", || {
        r.metrics_text().contains(
            r#"mesh_router_requests_total{endpoint="hang.test",service="shop/app/hang",status_class="4xx"} 1"#,
        )
    })
    .await;
}

#[tokio::test]
async fn clients_stalling_mid_body_are_cut_off() {
    let web = Backend::echo("web").await;
    let options = RouterOptions {
        client_timeout: Duration::from_millis(300),
        ..RouterOptions::default()
    };
    let r = shop_router(web.addr, options).await;
    let mut tcp = TcpStream::connect(r.http_addr()).await.expect("connect");
    tcp.write_all(b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("partial body");
    eventually("the request to reach the instance", || {
        r.in_flight("web-1") == 1
    })
    .await;
    let mut buf = Vec::new();
    let _ = within("the stalled connection to close", tcp.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    eventually("the instance to be released", || r.in_flight("web-1") == 0).await;
    assert_eq!(
        get(r.http_addr(), "shop.test", "/").await.status,
        StatusCode::OK
    );
}
