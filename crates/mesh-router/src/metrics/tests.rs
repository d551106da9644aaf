use std::time::Duration;

use super::*;

#[test]
fn counts_by_class_and_exposes_text() {
    let m = Metrics::new();
    let r = m.route("shop.example.com", "env/app/web");
    r.record(200, Duration::from_millis(3));
    r.record(204, Duration::from_millis(3));
    r.record(503, Duration::from_millis(1));
    m.unmatched().record(404, Duration::from_micros(10));
    // Same pair, same handles.
    m.route("shop.example.com", "env/app/web")
        .record(201, Duration::ZERO);
    let text = m.text();
    assert!(
        text.contains(
            r#"mesh_router_requests_total{endpoint="shop.example.com",service="env/app/web",status_class="2xx"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"mesh_router_requests_total{endpoint="shop.example.com",service="env/app/web",status_class="5xx"} 1"#
    ));
    assert!(
        text.contains(
            r#"mesh_router_requests_total{endpoint="-",service="-",status_class="4xx"} 1"#
        )
    );
    assert!(text.contains(
        r#"mesh_router_request_duration_seconds_count{endpoint="shop.example.com",service="env/app/web"} 4"#
    ));
}

#[test]
fn shards_of_every_worker_add_up() {
    let m = Metrics::with_shards(3);
    let r = m.route("shop.example.com", "env/app/web");
    std::thread::scope(|s| {
        for worker in 0..4 {
            let r = r.clone();
            s.spawn(move || {
                set_thread_shard(worker);
                for _ in 0..25 {
                    r.record(200, Duration::from_millis(2));
                }
            });
        }
    });
    let text = m.text();
    assert!(
        text.contains(
            r#"mesh_router_requests_total{endpoint="shop.example.com",service="env/app/web",status_class="2xx"} 100"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"mesh_router_request_duration_seconds_bucket{le="0.002",endpoint="shop.example.com",service="env/app/web"} 100"#
    ));
    assert!(text.contains(
        r#"mesh_router_request_duration_seconds_sum{endpoint="shop.example.com",service="env/app/web"} 0.2"#
    ));
}

#[test]
fn access_log_drops_are_exposed() {
    let m = Metrics::new();
    assert!(m.text().contains("mesh_router_access_log_dropped_total 0"));
    m.access_log_dropped().inc_by(3);
    let text = m.text();
    assert!(
        text.contains("mesh_router_access_log_dropped_total 3"),
        "{text}"
    );
}
