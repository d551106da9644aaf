//! Balancing across healthy instances, retry of failed connects, 503 when none is usable.

use http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn spreads_load_and_skips_unhealthy() {
    let a = Backend::echo("a").await;
    let b = Backend::echo("b").await;
    let sick = Backend::echo("sick").await;
    let mut unhealthy = inst("sick-1", sick.addr);
    unhealthy.healthy = false;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream(
                "web",
                vec![inst("a-1", a.addr), unhealthy, inst("b-1", b.addr)],
            )
            .build(),
    )
    .await;
    for _ in 0..40 {
        let reply = get(r.http_addr(), "shop.test", "/").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(sick.hits(), 0, "unhealthy instance got traffic");
    assert_eq!(a.hits() + b.hits(), 40);
    assert!(
        a.hits() >= 10 && b.hits() >= 10,
        "a={} b={}",
        a.hits(),
        b.hits()
    );
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_instance() {
    let live = Backend::echo("live").await;
    let dead = closed_port().await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![inst("dead-1", dead), inst("live-1", live.addr)])
            .build(),
    )
    .await;
    for i in 0..20 {
        // POST with a body: retrying is safe because nothing reached the dead instance.
        let req = http::Request::post("/submit")
            .body(full(format!("payload {i}")))
            .expect("request");
        let reply = within("reply", send(&client(), r.http_addr(), "shop.test", req))
            .await
            .expect("send");
        assert_eq!(reply.status, StatusCode::OK, "attempt {i}: {reply:?}");
        assert_eq!(reply.echo().body_len, format!("payload {i}").len());
    }
    assert_eq!(live.hits(), 20);
}

#[tokio::test]
async fn all_instances_dead_is_502() {
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream(
                "web",
                vec![
                    inst("d1", closed_port().await),
                    inst("d2", closed_port().await),
                ],
            )
            .build(),
    )
    .await;
    let reply = get(r.http_addr(), "shop.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.headers["x-mesh-error"], "bad-gateway");
    assert!(!reply.body.contains("127.0.0.1"), "{}", reply.body);
}

#[tokio::test]
async fn no_healthy_instance_is_503() {
    let a = Backend::echo("a").await;
    let mut sick = inst("a-1", a.addr);
    sick.healthy = false;
    let mut draining = inst("a-2", a.addr);
    draining.draining = true;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .route("empty.test", "/", "nothing")
            .upstream("web", vec![sick, draining])
            .upstream("nothing", vec![])
            .build(),
    )
    .await;
    for host in ["shop.test", "empty.test"] {
        let reply = get(r.http_addr(), host, "/").await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{host}");
        assert_eq!(reply.headers["x-mesh-error"], "no-healthy-instance");
        assert!(reply.body.contains("No healthy instance"), "{}", reply.body);
    }
    assert_eq!(a.hits(), 0);
}
