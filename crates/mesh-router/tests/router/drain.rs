//! Draining instances, hot table swaps under load, graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

use crate::support::*;

/// An echo backend whose `/slow` requests report their arrival and wait for a permit.
struct Gated {
    backend: Backend,
    arrived: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

async fn gated(name: &'static str) -> Gated {
    let (tx, arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let gate = release.clone();
    let backend = Backend::start(move |req| {
        let tx = tx.clone();
        let gate = gate.clone();
        async move {
            if req.uri().path() == "/slow" {
                let _ = tx.send(());
                gate.acquire().await.expect("gate open").forget();
            }
            let body = format!("{name} {}", req.uri().path());
            http::Response::builder()
                .header("x-backend", name)
                .body(full(body))
                .expect("response")
        }
    })
    .await;
    Gated {
        backend,
        arrived,
        release,
    }
}

#[tokio::test]
async fn draining_instance_finishes_in_flight_and_gets_nothing_new() {
    let mut a = gated("a").await;
    let b = Backend::echo("b").await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![inst("a-1", a.backend.addr)])
            .build(),
    )
    .await;
    let slow = tokio::spawn({
        let addr = r.http_addr();
        async move { get(addr, "shop.test", "/slow").await }
    });
    within("the slow request to arrive", a.arrived.recv()).await;
    assert_eq!(r.in_flight("a-1"), 1);

    let mut draining = inst("a-1", a.backend.addr);
    draining.draining = true;
    r.update(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![draining, inst("b-1", b.addr)])
            .build(),
    )
    .expect("update");
    for _ in 0..10 {
        let reply = get(r.http_addr(), "shop.test", "/").await;
        assert_eq!(reply.backend(), "b");
    }
    assert_eq!(a.backend.hits(), 1);
    assert_eq!(r.in_flight("a-1"), 1, "the slow request is still counted");

    a.release.add_permits(1);
    let reply = within("the slow reply", slow).await.expect("join");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "a /slow");
    eventually("a-1 to drain", || r.in_flight("a-1") == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swaps_under_load_fail_nothing() {
    let backends = [
        Backend::echo("a").await,
        Backend::echo("b").await,
        Backend::echo("c").await,
        Backend::echo("d").await,
    ];
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let version = move |v: usize| {
        let (x, y) = if v.is_multiple_of(2) { (0, 1) } else { (2, 3) };
        let mut cfg = Cfg::default().route("shop.test", "/", "web").upstream(
            "web",
            vec![
                inst(&format!("i{x}"), addrs[x]),
                inst(&format!("i{y}"), addrs[y]),
            ],
        );
        if v.is_multiple_of(3) {
            cfg = cfg
                .route("shop.test", "/api", "api")
                .upstream("api", vec![inst(&format!("api{x}"), addrs[y])]);
        }
        cfg.build()
    };
    let r = router(version(0)).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    const WORKERS: usize = 8;
    const REQUESTS: usize = 60;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let addr = r.http_addr();
        let failures = failures.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            // One keep-alive client per worker: its connections must survive the swaps.
            let c = client();
            for i in 0..REQUESTS {
                let path = if (w + i) % 2 == 0 { "/" } else { "/api/x" };
                let req = http::Request::get(path).body(empty()).expect("request");
                match send(&c, addr, "shop.test", req).await {
                    Ok(reply) if reply.status == StatusCode::OK => {}
                    other => {
                        eprintln!("worker {w} request {i}: {other:?}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let mut swaps = 0;
    while done.load(Ordering::SeqCst) < WORKERS && swaps < 1000 {
        swaps += 1;
        r.update(version(swaps)).expect("update");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for t in tasks {
        within("workers", t).await.expect("join");
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(swaps >= 5, "only {swaps} swaps happened during the load");
    let total: usize = backends.iter().map(Backend::hits).sum();
    assert_eq!(total, WORKERS * REQUESTS);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut a = gated("a").await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![inst("a-1", a.backend.addr)])
            .build(),
    )
    .await;
    let addr = r.http_addr();
    let slow = tokio::spawn(async move { get(addr, "shop.test", "/slow").await });
    within("the slow request to arrive", a.arrived.recv()).await;

    let shutdown = tokio::spawn(r.shutdown(Duration::from_secs(15)));
    // The listener goes away: new connections are refused.
    let mut refused = false;
    for _ in 0..1000 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "router still accepting after shutdown began");
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the request"
    );

    a.release.add_permits(1);
    let reply = within("the slow reply", slow).await.expect("join");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "a /slow");
    let report = within("shutdown", shutdown).await.expect("join");
    assert!(report.clean, "{report:?}");
}

#[tokio::test]
async fn shutdown_deadline_closes_stuck_requests() {
    let mut a = gated("a").await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![inst("a-1", a.backend.addr)])
            .build(),
    )
    .await;
    let addr = r.http_addr();
    let stuck = tokio::spawn(async move {
        let req = http::Request::get("/slow").body(empty()).expect("request");
        send(&client(), addr, "shop.test", req).await
    });
    within("the request to arrive", a.arrived.recv()).await;
    let report = within("shutdown", r.shutdown(Duration::from_millis(200))).await;
    assert!(!report.clean);
    assert_eq!(report.forced, 1);
    assert!(
        within("the client to see the close", stuck)
            .await
            .expect("join")
            .is_err()
    );
}
