//! HTTP/1 on the wire, as the router's own engine speaks it: raw requests, pipelining,
//! HTTP/1.0 clients, chunked bodies, `Expect: 100-continue`, instance connections that close
//! under it, and HTTP/2 with prior knowledge on the plain port.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use mesh_router::RouterOptions;

use crate::support::*;

/// Sends `raw` on a new connection, reads until the router closes it (or `PATIENCE`).
async fn exchange(router: SocketAddr, raw: &[u8]) -> String {
    let mut tcp = TcpStream::connect(router).await.expect("connect");
    tcp.write_all(raw).await.expect("write");
    let mut buf = Vec::new();
    let _ = within("the router to close", tcp.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (web, r) = echo_router().await;
    let text = exchange(
        r.http_addr(),
        b"GET /one HTTP/1.1\r\nHost: shop.test\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 3\r\n\r\nabc\
          GET /three HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let one = text.find("path=/one").expect("first answer");
    let two = text.find("path=/two").expect("second answer");
    let three = text.find("path=/three").expect("third answer");
    assert!(one < two && two < three, "{text}");
    assert!(text.contains("body=3"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    assert_eq!(web.hits(), 3);
}

#[tokio::test]
async fn chunked_request_bodies_arrive_whole() {
    let (_web, r) = echo_router().await;
    let text = exchange(
        r.http_addr(),
        b"POST /up HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("body=11"), "{text}");

    let bad = exchange(
        r.http_addr(),
        b"POST /up HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let smuggle = exchange(
        r.http_addr(),
        b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(smuggle.starts_with("HTTP/1.1 400"), "{smuggle}");
}

#[tokio::test]
async fn http10_clients_get_bodies_they_can_read() {
    // A chunked answer: an HTTP/1.0 client gets the data alone, then the connection closes.
    let web = Backend::start(|_req| async {
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            for part in ["one-", "two-", "three"] {
                let _ = tx.send(bytes::Bytes::from(part)).await;
            }
        });
        http::Response::new(body)
    })
    .await;
    let r = shop_router(web.addr, RouterOptions::default()).await;
    let text = exchange(r.http_addr(), b"GET / HTTP/1.0\r\nHost: shop.test\r\n\r\n").await;
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    assert_eq!(body, "one-two-three");

    // The same to an HTTP/1.1 client passes the chunks through.
    let text = exchange(
        r.http_addr(),
        b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    assert!(text.ends_with("0\r\n\r\n"), "{text}");
}

#[tokio::test]
async fn head_requests_and_expect_continue() {
    let (_web, r) = echo_router().await;
    let text = exchange(
        r.http_addr(),
        b"HEAD / HTTP/1.1\r\nHost: shop.test\r\n\r\nGET /after HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("path=/after"),
        "the HEAD answer carried no body: {text}"
    );

    let mut tcp = TcpStream::connect(r.http_addr()).await.expect("connect");
    tcp.write_all(
        b"PUT /big HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("head");
    let mut interim = [0u8; 25];
    within("100 Continue", tcp.read_exact(&mut interim))
        .await
        .expect("read");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    tcp.write_all(b"data").await.expect("body");
    let mut rest = Vec::new();
    let _ = within("the answer", tcp.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.starts_with("HTTP/1.1 200") && rest.contains("body=4"),
        "{rest}"
    );
    assert!(!rest.to_ascii_lowercase().contains("h:expect"), "{rest}");
}

/// An instance that answers one request per connection, then closes it without saying so.
async fn one_shot_backend() -> SocketAddr {
    raw_backend(|mut tcp| async move {
        let mut buf = vec![0u8; 8192];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await
}

#[tokio::test]
async fn instance_connections_closed_under_the_router_are_replaced() {
    let addr = one_shot_backend().await;
    let r = shop_router(addr, RouterOptions::default()).await;
    let c = client();
    for i in 0..20 {
        let reply = send(
            &c,
            r.http_addr(),
            "shop.test",
            Request::get("/").body(empty()).expect("req"),
        )
        .await
        .expect("send");
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {reply:?}");
        assert_eq!(reply.body, "ok");
        if i % 5 == 4 {
            // Long enough for the pool to probe the connection before using it.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
}

#[tokio::test]
async fn http2_with_prior_knowledge_works_on_the_plain_port() {
    let (_web, r) = echo_router().await;
    let tcp = TcpStream::connect(r.http_addr()).await.expect("connect");
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("http://shop.test/h2c")
        .body(empty())
        .expect("req");
    let resp = within("h2 response", h2.send_request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let echo = Echo::parse(&String::from_utf8_lossy(&body));
    assert_eq!(echo.path, "/h2c");
    assert_eq!(echo.header("x-forwarded-host"), "shop.test");
}

#[tokio::test]
async fn heads_and_bodies_split_into_single_bytes_still_arrive() {
    let (web, r) = echo_router().await;
    let raw = b"POST /split HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                3\r\nabc\r\n0\r\n\r\n\
                GET /next HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";
    let mut tcp = TcpStream::connect(r.http_addr()).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    for b in raw.iter() {
        tcp.write_all(&[*b]).await.expect("byte");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let mut buf = Vec::new();
    let _ = within("the answers", tcp.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.contains("path=/split") && text.contains("body=3"),
        "{text}"
    );
    assert!(text.contains("path=/next"), "{text}");
    assert_eq!(web.hits(), 2);
}

#[tokio::test]
async fn the_routers_own_answers_to_head_carry_no_body() {
    let (_web, r) = echo_router().await;
    let text = exchange(
        r.http_addr(),
        b"HEAD / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, rest) = text.split_once("\r\n\r\n").expect("first head");
    assert!(head.starts_with("HTTP/1.1 404"), "{text}");
    assert!(
        head.contains("content-length: ") || head.contains("Content-Length: "),
        "{head}"
    );
    assert!(
        rest.starts_with("HTTP/1.1 200"),
        "a body followed the HEAD answer: {text}"
    );
}

/// Answers the first request on each connection; reads the second, counts it, and closes the
/// connection without answering (an app that crashed on it).
async fn second_request_crashes() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let addr = raw_backend(move |mut tcp| {
        let counter = counter.clone();
        async move {
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            for n in 0..2 {
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                got.clear();
                if n == 1 {
                    counter.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
        }
    })
    .await;
    (addr, seen)
}

#[tokio::test]
async fn only_idempotent_requests_are_sent_again_after_an_instance_dropped_them() {
    use std::sync::atomic::Ordering;
    let (addr, dropped) = second_request_crashes().await;
    let r = shop_router(addr, RouterOptions::default()).await;
    let c = client();
    let get = || Request::get("/").body(empty()).expect("req");
    assert_eq!(
        send(&c, r.http_addr(), "shop.test", get())
            .await
            .expect("get")
            .status,
        StatusCode::OK
    );
    // The POST lands on the pooled connection, which the instance drops after reading it: it
    // may have acted on it, so the router answers 502 instead of sending it twice.
    let post = Request::post("/").body(full("pay")).expect("req");
    let reply = send(&c, r.http_addr(), "shop.test", post)
        .await
        .expect("post");
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{reply:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    // A GET in the same spot is sent again on a new connection and answered.
    assert_eq!(
        send(&c, r.http_addr(), "shop.test", get())
            .await
            .expect("get")
            .status,
        StatusCode::OK
    );
    let reply = send(&c, r.http_addr(), "shop.test", get())
        .await
        .expect("get");
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}
