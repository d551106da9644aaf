use std::net::{IpAddr, Ipv4Addr};

use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::headers::*;
use super::pages::{self, Failure};

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

#[test]
fn strips_hop_by_hop_and_connection_named_headers() {
    let mut h = map(&[
        ("connection", "keep-alive, x-secret-hop"),
        ("keep-alive", "timeout=5"),
        ("x-secret-hop", "1"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("proxy-authorization", "Basic x"),
        ("upgrade", "websocket"),
        ("x-kept", "yes"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h["x-kept"], "yes");
}

#[test]
fn upgrade_keeps_upgrade_and_connection_upgrade_only() {
    let mut h = map(&[
        ("connection", "Upgrade, keep-alive"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "abc"),
    ]);
    assert!(is_upgrade(&h));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h[header::UPGRADE], "websocket");
    assert_eq!(h[header::CONNECTION], "upgrade");
    assert_eq!(h["sec-websocket-key"], "abc");
    assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
    assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
}

fn forged() -> HeaderMap {
    map(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "198.51.100.2"),
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.test"),
        ("forwarded", "for=6.6.6.6"),
        ("x_forwarded_for", "8.8.8.8"),
        ("x_real_ip", "8.8.8.8"),
        ("x_app", "kept"),
    ])
}

fn forward(h: &mut HeaderMap, trusted: bool) {
    let id = HeaderValue::from_static("req-1");
    set_forwarding(
        h,
        &Forwarded {
            client_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            https: false,
            port: 8080,
            host: "Shop.Example.com:8080",
            trusted,
        },
        &id,
    );
}

#[test]
fn an_untrusted_clients_forwarding_headers_are_replaced() {
    let mut h = forged();
    forward(&mut h, false);
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-scheme"], "http");
    assert_eq!(h["x-forwarded-port"], "8080");
    assert_eq!(h["x-forwarded-host"], "Shop.Example.com:8080");
    assert_eq!(h["x-request-id"], "req-1");
    assert!(!h.contains_key("forwarded"));
    assert!(!h.contains_key("x_forwarded_for") && !h.contains_key("x_real_ip"));
    assert_eq!(h["x_app"], "kept");
}

#[test]
fn a_trusted_proxys_forwarding_headers_are_kept_and_appended_to() {
    let mut h = forged();
    forward(&mut h, true);
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.2, 127.0.0.1");
    assert_eq!(h["x-real-ip"], "6.6.6.6");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "evil.test");
    assert_eq!(h["forwarded"], "for=6.6.6.6");
    // What the proxy left out, the router fills in.
    assert_eq!(h["x-scheme"], "http");
    assert_eq!(h["x-forwarded-port"], "8080");
    assert!(!h.contains_key("x_forwarded_for") && !h.contains_key("x_real_ip"));
    assert_eq!(h["x_app"], "kept");
}

#[test]
fn request_ids_pass_through_or_are_generated() {
    let given = map(&[("x-request-id", "abc-123")]);
    assert_eq!(request_id(&given), "abc-123");
    let generated = request_id(&HeaderMap::new());
    assert_eq!(generated.len(), 32);
    assert!(generated.as_bytes().iter().all(u8::is_ascii_hexdigit));
    assert_ne!(generated, request_id(&HeaderMap::new()));
    let spaced = map(&[("x-request-id", "a b")]);
    assert_ne!(request_id(&spaced), "a b");
}

#[test]
fn error_pages_name_the_case_and_escape_the_id() {
    let id = HeaderValue::from_static("<script>");
    for (failure, status, words) in [
        (Failure::NoRoute, 404, "No application"),
        (Failure::NoHealthyInstance, 503, "No healthy instance"),
        (Failure::BadGateway, 502, "could not be reached"),
        (Failure::Timeout, 504, "did not answer in time"),
        (Failure::BodyTooLarge, 413, "larger than"),
        (Failure::Misdirected, 421, "another host name"),
    ] {
        let resp = pages::error_page(failure, &id, true);
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()["x-mesh-error"], failure.code());
        assert!(failure.message().contains(words));
    }
}

#[tokio::test]
async fn error_page_bodies_escape_the_request_id() {
    use http_body_util::BodyExt as _;
    let id = HeaderValue::from_static("<script>");
    let resp = pages::error_page(Failure::NoRoute, &id, true);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("full body")
        .to_bytes();
    let body = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(body.contains("&lt;script&gt;"), "{body}");
    assert!(!body.contains("<script>"));
    let text = pages::error_page(Failure::Timeout, &HeaderValue::from_static("r1"), false);
    let body = text
        .into_body()
        .collect()
        .await
        .expect("full body")
        .to_bytes();
    assert_eq!(
        &body[..],
        b"504 Gateway Timeout\nThe application did not answer in time.\nRequest ID: r1\n"
    );
}
