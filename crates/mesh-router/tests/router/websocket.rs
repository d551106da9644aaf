//! `Connection: upgrade` (WebSocket handshake) is proxied and the upgraded bytes flow both ways.

use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Accepts any upgrade, then echoes bytes (upper-cased, to prove they went through it).
async fn upgrade_echo() -> Backend {
    Backend::start(|mut req| async move {
        let Some(proto) = req.headers().get("upgrade").cloned() else {
            return Response::new(full("not an upgrade"));
        };
        assert_eq!(req.headers()["connection"], "upgrade");
        assert!(req.headers().contains_key("sec-websocket-key"));
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let up = buf[..n].to_ascii_uppercase();
                        if io.write_all(&up).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", proto)
            .header("connection", "upgrade")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(empty())
            .expect("response")
    })
    .await
}

#[tokio::test]
async fn websocket_upgrade_echoes_both_ways() {
    let ws = upgrade_echo().await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "ws")
            .upstream("ws", vec![inst("ws-1", ws.addr)])
            .build(),
    )
    .await;
    let mut tcp = TcpStream::connect(r.http_addr()).await.expect("connect");
    tcp.write_all(
        b"GET /chat HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("handshake");
    // Read the response head byte by byte so no tunnel bytes are swallowed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = within("the 101 head", tcp.read(&mut b))
            .await
            .expect("read");
        assert_eq!(
            n,
            1,
            "closed during handshake: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    for msg in ["hello", "second message"] {
        tcp.write_all(msg.as_bytes()).await.expect("write");
        let mut got = vec![0u8; msg.len()];
        within("the echo", tcp.read_exact(&mut got))
            .await
            .expect("read");
        assert_eq!(got, msg.to_ascii_uppercase().as_bytes());
    }
    drop(tcp);
    eventually("the tunnel to close", || r.in_flight("ws-1") == 0).await;
}
