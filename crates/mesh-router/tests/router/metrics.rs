//! `/metrics` served over HTTP on its own listener.

use http::{Request, StatusCode};
use tokio::net::TcpListener;

use crate::support::*;

#[tokio::test]
async fn metrics_are_served_over_http_until_shutdown() {
    let (_web, r) = echo_router().await;
    assert_eq!(
        get(r.http_addr(), "shop.test", "/").await.status,
        StatusCode::OK
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mesh_router::serve_metrics(listener, r.metrics(), async {
        let _ = stopped.await;
    }));

    // The response finishes on a router thread; its metrics land just after the client has it.
    let c = client();
    let mut reply = None;
    for _ in 0..200 {
        let req = Request::get("/metrics").body(empty()).expect("request");
        let got = within("metrics", send(&c, addr, "metrics", req))
            .await
            .expect("send");
        if got.body.contains(
            r#"mesh_router_requests_total{endpoint="shop.test",service="shop/app/web",status_class="2xx"} 1"#,
        ) {
            reply = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let reply = reply.expect("the request counted in /metrics");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text"),
        "{reply:?}"
    );
    assert!(
        reply
            .body
            .contains("mesh_router_request_duration_seconds_bucket")
    );

    let req = Request::get("/other").body(empty()).expect("request");
    let other = within("404", send(&c, addr, "metrics", req))
        .await
        .expect("send");
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let req = Request::post("/metrics").body(empty()).expect("request");
    let post = within("405", send(&c, addr, "metrics", req))
        .await
        .expect("send");
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    stop.send(()).expect("server running");
    within("the metrics server to stop", server)
        .await
        .expect("join")
        .expect("served");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}
