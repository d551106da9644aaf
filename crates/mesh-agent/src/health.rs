//! Health probes, from the host to an instance's address: a TCP connect to its port, or an HTTP
//! GET of its health path answering 2xx or 3xx.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(1);

pub async fn probe(address: Ipv4Addr, port: u16, http_path: Option<&str>) -> bool {
    let addr = SocketAddr::from((address, port));
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let Some(path) = http_path else {
            return Some(true);
        };
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: widemesh-health\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head).await.ok()?;
        let line = std::str::from_utf8(&head[..n]).ok()?;
        // "HTTP/1.x 2xx" or "3xx"
        Some(
            line.starts_with("HTTP/1.")
                && matches!(line.as_bytes().get(9), Some(b'2') | Some(b'3')),
        )
    };
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    async fn server(status: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn tcp_and_http_probes() {
        let lo = Ipv4Addr::LOCALHOST;
        let ok = server("200 OK").await;
        assert!(probe(lo, ok, None).await);
        assert!(probe(lo, ok, Some("/healthz")).await);
        let bad = server("503 Service Unavailable").await;
        assert!(!probe(lo, bad, Some("/healthz")).await);
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!probe(lo, closed, None).await);
    }
}
