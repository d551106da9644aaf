//! A router restart under steady load loses nothing: the new router takes the old one's
//! listening sockets (in-process, and over a unix socket with SCM_RIGHTS), then the old one
//! shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mesh_router::{Router, RouterOptions, handover};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Concurrent clients; each opens a new connection per request, so every request goes
/// through an accept queue.
const CLIENTS: usize = 8;
/// Requests per client at most.
const REQUESTS: usize = 400;
/// Load runs at most this long.
const LOAD_TIME: Duration = Duration::from_secs(15);

struct Load {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One request on a fresh connection; `Ok` for a complete 200 answer.
async fn one_request(addr: SocketAddr) -> Result<(), String> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.write_all(b"GET /x HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    if text.starts_with("HTTP/1.1 200") && text.contains("backend=web") {
        Ok(())
    } else {
        Err(format!("answer: {text:?}"))
    }
}

fn start_load(addr: SocketAddr) -> Load {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks = (0..CLIENTS)
        .map(|c| {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0..REQUESTS {
                    if stop.load(Ordering::SeqCst) || started.elapsed() > LOAD_TIME {
                        break;
                    }
                    match within("a request", one_request(addr)).await {
                        Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            eprintln!("client {c} request {i}: {e}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        })
        .collect();
    Load {
        ok,
        failed,
        stop,
        tasks,
    }
}

impl Load {
    async fn until_ok(&self, n: usize) {
        eventually("requests to succeed", || {
            self.ok.load(Ordering::SeqCst) >= n
        })
        .await;
    }

    /// Stops the clients; the number of successful requests.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            within("the clients", t).await.expect("join");
        }
        assert_eq!(self.failed.load(Ordering::SeqCst), 0, "failed requests");
        self.ok.load(Ordering::SeqCst)
    }
}

fn config(backend: SocketAddr) -> mesh_router::RouterConfig {
    Cfg::default()
        .route("shop.test", "/", "web")
        .upstream("web", vec![inst("web-1", backend)])
        .build()
}

fn served(router: &Router) -> usize {
    let text = router.metrics_text();
    let needle = r#"mesh_router_requests_total{endpoint="shop.test",service="shop/app/web",status_class="2xx"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_process_loses_no_request() {
    let web = Backend::echo("web").await;
    let old = router(config(web.addr)).await;
    let addr = old.http_addr();
    let load = start_load(addr);
    load.until_ok(100).await;

    // The config applies before the new router accepts anything.
    let (new, _) = Router::take_over(
        old.listeners().expect("listeners"),
        RouterOptions::default(),
        config(web.addr),
    )
    .expect("new router");
    assert_eq!(new.http_addr(), addr);
    let old_report = within("old router shutdown", old.shutdown(Duration::from_secs(10))).await;
    assert!(old_report.clean, "{old_report:?}");

    let before = served(&new);
    eventually("the new router to serve", || served(&new) >= before + 100).await;
    let ok = load.finish().await;
    assert_eq!(web.hits(), ok, "every success reached the instance once");
    new.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_over_a_unix_socket_loses_no_request() {
    let web = Backend::echo("web").await;
    let dir = std::env::temp_dir().join(format!("mesh-router-handover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("router.sock");

    let old = router(config(web.addr)).await;
    let addr = old.http_addr();
    let load = start_load(addr);
    load.until_ok(100).await;

    let offered = {
        let path = path.clone();
        tokio::spawn(async move {
            handover::offer(&path, &old).await.expect("offer");
            old.shutdown(Duration::from_secs(10)).await
        })
    };
    let (listeners, taken) = within("the handover", async {
        loop {
            match handover::take(&path).await {
                Ok(pair) => break pair,
                // The old router may not listen at `path` yet.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let (new, _) = Router::take_over(listeners, RouterOptions::default(), config(web.addr))
        .expect("new router");
    assert_eq!(new.http_addr(), addr);
    taken.serving().await.expect("tell the old router");
    let old_report = within("old router shutdown", offered).await.expect("join");
    assert!(old_report.clean, "{old_report:?}");

    let before = served(&new);
    eventually("the new router to serve", || served(&new) >= before + 100).await;
    let ok = load.finish().await;
    assert_eq!(web.hits(), ok, "every success reached the instance once");
    new.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn other_listening_sockets_go_along_with_the_routers() {
    let web = Backend::echo("web").await;
    let dir = std::env::temp_dir().join(format!("mesh-router-extra-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("router.sock");
    let old = router(config(web.addr)).await;
    // Another port of the same process (an API, say), with a connection already queued.
    let api = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let api_addr = api.local_addr().expect("addr");
    let queued = TcpStream::connect(api_addr)
        .await
        .expect("queued connection");
    let offered = {
        let path = path.clone();
        tokio::spawn(async move {
            handover::offer_with(&path, &old, &[api])
                .await
                .expect("offer");
            old.shutdown(Duration::from_secs(5)).await
        })
    };
    let (listeners, extra, taken) = within("the handover", async {
        loop {
            match handover::take_with(&path).await {
                Ok(all) => break all,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].local_addr().expect("addr"), api_addr);
    let (new, _) = Router::take_over(listeners, RouterOptions::default(), config(web.addr))
        .expect("new router");
    taken.serving().await.expect("tell the old router");
    within("old router shutdown", offered).await.expect("join");
    // The connection queued before the handover is accepted on the socket handed over.
    let (mut accepted, _) = extra[0].accept().expect("accept");
    let mut queued = queued;
    queued.write_all(b"x").await.expect("write");
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut accepted, &mut byte).expect("read");
    assert_eq!(&byte, b"x");
    new.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Takes the sockets offered at `path`, retrying while nobody offers yet.
async fn take_when_offered(path: &std::path::Path) -> (mesh_router::Listeners, handover::Taken) {
    within("the handover", async {
        loop {
            match handover::take(path).await {
                Ok(pair) => break pair,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_took_over_hands_over_again() {
    // A hands over to B, which offers at the same path before it tells A it serves; A going
    // away must not remove B's offer, or a third process finds nobody to take over from.
    let web = Backend::echo("web").await;
    let dir = std::env::temp_dir().join(format!("mesh-router-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("router.sock");
    let a = router(config(web.addr)).await;
    let addr = a.http_addr();
    let a_offer = {
        let path = path.clone();
        tokio::spawn(async move {
            handover::offer(&path, &a).await.expect("A offers");
            a.shutdown(Duration::from_secs(5)).await
        })
    };
    let (listeners, taken) = take_when_offered(&path).await;
    let ino = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.ino()).ok()
    };
    let a_file = ino(&path);
    let (b, _) = Router::take_over(listeners, RouterOptions::default(), config(web.addr))
        .expect("B takes over");
    let b = std::sync::Arc::new(b);
    let b_offer = {
        let (path, b) = (path.clone(), b.clone());
        tokio::spawn(async move { handover::offer(&path, &b).await })
    };
    // B's offer is bound before it says it serves, as `mesh agent` does.
    eventually("B to offer", || {
        ino(&path).is_some_and(|i| Some(i) != a_file)
    })
    .await;
    taken.serving().await.expect("B tells A");
    within("A's shutdown", a_offer).await.expect("join");
    assert!(path.exists(), "A removed B's offer");
    let (listeners, taken) = take_when_offered(&path).await;
    let (c, _) = Router::take_over(listeners, RouterOptions::default(), config(web.addr))
        .expect("C takes over");
    assert_eq!(c.http_addr(), addr);
    taken.serving().await.expect("C tells B");
    within("B's offer", b_offer)
        .await
        .expect("join")
        .expect("B handed over");
    assert!(one_request(addr).await.is_ok(), "C serves");
    c.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
