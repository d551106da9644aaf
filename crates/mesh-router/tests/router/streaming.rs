//! Responses (SSE) and request bodies stream through without buffering.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{Semaphore, mpsc};

use mesh_router::RouterOptions;

use crate::support::*;

#[tokio::test]
async fn sse_chunks_arrive_while_the_instance_holds_the_stream() {
    let gate = Arc::new(Semaphore::new(0));
    let backend_gate = gate.clone();
    let sse = Backend::start(move |_req| {
        let gate = backend_gate.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
                gate.acquire().await.expect("gate").forget();
                let _ = tx.send(Bytes::from_static(b"data: two\n\n")).await;
            });
            http::Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(body)
                .expect("response")
        }
    })
    .await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/events", "sse")
            .upstream("sse", vec![inst("sse-1", sse.addr)])
            .build(),
    )
    .await;
    let req = Request::get(format!("http://{}/events", r.http_addr()))
        .header("host", "shop.test")
        .body(empty())
        .expect("request");
    let resp = within("the response head", client().request(req))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = within("the first event", body.frame())
        .await
        .expect("a frame")
        .expect("no error")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"data: one\n\n");
    // Only now does the instance send the rest.
    assert_eq!(gate.available_permits(), 0);
    gate.add_permits(1);
    let rest = within("the rest", body.collect())
        .await
        .expect("rest")
        .to_bytes();
    assert_eq!(&rest[..], b"data: two\n\n");
}

#[tokio::test]
async fn request_bodies_stream_to_the_instance() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Bytes>();
    let upload = Backend::start(move |req| {
        let seen_tx = seen_tx.clone();
        async move {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.expect("frame").into_data() {
                    total += data.len();
                    let _ = seen_tx.send(data);
                }
            }
            http::Response::new(full(format!("received {total}")))
        }
    })
    .await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "upload")
            .upstream("upload", vec![inst("up-1", upload.addr)])
            .build(),
    )
    .await;
    let (tx, body) = channel_body();
    let req = Request::put("/file").body(body).expect("request");
    let addr = r.http_addr();
    let reply = tokio::spawn(async move { send(&client(), addr, "shop.test", req).await });

    tx.send(Bytes::from_static(b"first chunk "))
        .await
        .expect("send");
    // The instance has the first chunk while the client still holds the rest.
    let got = within("the first chunk at the instance", seen.recv())
        .await
        .expect("chunk");
    assert_eq!(&got[..], b"first chunk ");
    tx.send(Bytes::from_static(b"second chunk"))
        .await
        .expect("send");
    drop(tx);
    let reply = within("the reply", reply)
        .await
        .expect("join")
        .expect("send");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "received 24");
}

/// `n` bytes of a pattern no two nearby offsets share, so a lost or repeated piece shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8)
        .collect()
}

#[tokio::test]
async fn large_bodies_pass_whole_both_ways() {
    const SIZE: usize = 3 * 1024 * 1024 + 17;
    // The instance answers a GET with the pattern (`/length`: one Content-Length body,
    // `/chunked`: 64 KiB chunks), and a POST with the checksum of what it received.
    let web = Backend::start(|req: Request<hyper::body::Incoming>| async move {
        if req.method() == http::Method::POST {
            let body = req.into_body().collect().await.expect("body").to_bytes();
            let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
            return http::Response::new(full(format!("{} {sum}", body.len())));
        }
        let data = Bytes::from(pattern(SIZE));
        if req.uri().path() == "/length" {
            return http::Response::new(full(data));
        }
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            for piece in data.chunks(64 * 1024) {
                if tx.send(Bytes::copy_from_slice(piece)).await.is_err() {
                    break;
                }
            }
        });
        http::Response::new(body)
    })
    .await;
    let r = shop_router(web.addr, RouterOptions::default()).await;
    let c = client();
    let expected = pattern(SIZE);
    // Exact bytes, both framings.
    for path in ["/chunked", "/length"] {
        let resp = c
            .request(
                Request::get(format!("http://{}{path}", r.http_addr()))
                    .header("host", "shop.test")
                    .body(empty())
                    .expect("req"),
            )
            .await
            .expect("response");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(body[..] == expected[..], "{path}: the body differs");
    }

    let sum: u64 = expected.iter().map(|b| u64::from(*b)).sum();
    let want = format!("{SIZE} {sum}");
    let reply = send(
        &c,
        r.http_addr(),
        "shop.test",
        Request::post("/")
            .body(full(expected.clone()))
            .expect("req"),
    )
    .await
    .expect("upload");
    assert_eq!(reply.body, want, "fixed-length upload");
    let (tx, body) = channel_body();
    let upload = expected.clone();
    tokio::spawn(async move {
        for piece in upload.chunks(100 * 1024) {
            if tx.send(Bytes::copy_from_slice(piece)).await.is_err() {
                break;
            }
        }
    });
    let reply = send(
        &c,
        r.http_addr(),
        "shop.test",
        Request::post("/").body(body).expect("req"),
    )
    .await
    .expect("upload");
    assert_eq!(reply.body, want, "chunked upload");
}
