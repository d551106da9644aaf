//! The access log written to a file: one line per request, in order, with the fields of the
//! line `mesh` printed before; and the metrics of the same requests.

use std::path::Path;
use std::time::Duration;

use http::{Request, StatusCode};
use mesh_router::{AccessLog, Router, RouterError, RouterOptions};

use crate::support::*;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn access_lines_and_metrics_describe_each_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let web = Backend::echo("web").await;
    let options = RouterOptions {
        access_log: AccessLog::File(path.clone()),
        ..RouterOptions::default()
    };
    let r = shop_router(web.addr, options).await;
    let c = client();

    let req = Request::get("/logged?secret=1")
        .header("x-request-id", "log-me-7")
        .body(empty())
        .expect("request");
    let reply = within("reply", send(&c, r.http_addr(), "shop.test", req))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        get(r.http_addr(), "nope.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    for i in 0..5 {
        let req = Request::get(format!("/seq/{i}"))
            .header("x-request-id", format!("seq-{i}"))
            .body(empty())
            .expect("request");
        let reply = within("reply", send(&c, r.http_addr(), "shop.test", req))
            .await
            .expect("send");
        assert_eq!(reply.status, StatusCode::OK);
    }

    // Written by the log's own thread, shortly after each response ends.
    eventually("the access lines", || read(&path).contains("seq-4")).await;
    let log = read(&path);
    let line = log
        .lines()
        .find(|l| l.contains("log-me-7"))
        .expect("access line");
    assert!(
        line.contains("  INFO mesh_router::access: request request_id=\"log-me-7\" method=\"GET\""),
        "{line}"
    );
    for field in [
        "host=shop.test",
        "path=/logged",
        "endpoint=\"shop.test\"",
        "service=\"shop/app/web\"",
        "instance=\"web-1\"",
        "status=200",
        "bytes=",
        "attempts=1",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "missing {field} in {line}");
    }
    assert!(
        !log.contains("secret"),
        "query strings stay out of logs: {log}"
    );
    let not_found = log
        .lines()
        .find(|l| l.contains("host=nope.test"))
        .expect("a line for the 404");
    assert!(
        not_found.contains("endpoint=\"-\" service=\"-\" instance=\"-\" status=404"),
        "{not_found}"
    );
    let order: Vec<usize> = (0..5)
        .map(|i| {
            log.find(&format!("request_id=\"seq-{i}\""))
                .expect("every request has its line")
        })
        .collect();
    assert!(order.is_sorted(), "lines in request order: {log}");
    assert_eq!(log.lines().count(), 7, "one line per request: {log}");

    // Counted on a router thread as the response ends, which may be just after the client has it.
    let unmatched = r#"mesh_router_requests_total{endpoint="-",service="-",status_class="4xx"} 1"#;
    eventually("the 404 counted", || r.metrics_text().contains(unmatched)).await;
    let metrics = r.metrics_text();
    assert!(
        metrics.contains(
            r#"mesh_router_requests_total{endpoint="shop.test",service="shop/app/web",status_class="2xx"} 6"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("mesh_router_request_duration_seconds_bucket"));
    assert!(
        metrics.contains("mesh_router_access_log_dropped_total 0"),
        "{metrics}"
    );

    // Shutdown flushes what is queued: every line is there once it returns.
    drop(c);
    let report = within("shutdown", r.shutdown(Duration::from_secs(5))).await;
    assert!(report.clean, "{report:?}");
    assert_eq!(read(&path).lines().count(), 7);
}

#[tokio::test]
async fn an_access_log_that_cannot_be_opened_stops_the_start() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("access.log");
    let options = RouterOptions {
        access_log: AccessLog::File(path.clone()),
        ..RouterOptions::default()
    };
    let err = Router::bind_with("127.0.0.1:0".parse().expect("addr"), None, options)
        .await
        .expect_err("the file cannot be created");
    assert!(
        matches!(&err, RouterError::AccessLog { path: p, .. } if *p == path),
        "{err}"
    );
}
