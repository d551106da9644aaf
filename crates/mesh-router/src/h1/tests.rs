//! Heads as the engine rewrites them.

use std::net::{IpAddr, Ipv4Addr};

use super::head::{self, Client, Exchange, Framing, Parsed};

fn client() -> Client {
    Client::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), false, 8080, false)
}

fn request(raw: &str) -> (head::Request, String) {
    request_from(&client(), raw)
}

fn request_from(client: &Client, raw: &str) -> (head::Request, String) {
    let mut out = Vec::new();
    match head::parse_request(raw.as_bytes(), client, &mut out) {
        Ok(Parsed::Complete(r)) => (r, String::from_utf8(out).expect("utf-8")),
        Ok(Parsed::Partial) => panic!("partial: {raw}"),
        Err(e) => panic!("invalid {e:?}: {raw}"),
    }
}

const HOP_INPUT: &str = "POST /a?b=1 HTTP/1.1\r\nHost: Shop.Test:8080\r\nConnection: keep-alive, X-Secret\r\n\
     X-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 6.6.6.6\r\n\
     Content-Length: 3\r\nAccept: text/html\r\n\r\nabc";

fn raw_head_len(raw: &str) -> usize {
    raw.find("\r\n\r\n").expect("end of head") + 4
}

fn refused(raw: &str) -> u16 {
    match head::parse_request(raw.as_bytes(), &client(), &mut Vec::new()) {
        Err(e) => e.status,
        Ok(_) => panic!("accepted: {raw}"),
    }
}

#[test]
fn requests_lose_hop_by_hop_headers_and_gain_forwarding_ones() {
    let (r, out) = request(HOP_INPUT);
    assert_eq!(r.body, Framing::Length(3));
    assert!(r.keep_alive && r.html && !r.upgrade);
    assert_eq!(r.host.as_deref(), Some("Shop.Test:8080"));
    assert!(out.starts_with("POST /a?b=1 HTTP/1.1\r\n"), "{out}");
    for gone in ["X-Secret", "Keep-Alive", "Connection", "6.6.6.6", "1.2.3.4"] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    for kept in [
        "Content-Length: 3\r\n",
        "Host: Shop.Test:8080\r\n",
        "X-Forwarded-For: 10.0.0.7\r\n",
        "X-Real-Ip: 10.0.0.7\r\n",
        "X-Forwarded-Proto: http\r\n",
        "X-Forwarded-Port: 8080\r\n",
        "X-Forwarded-Host: Shop.Test:8080\r\n",
    ] {
        assert!(out.contains(kept), "{kept:?} missing in {out}");
    }
    assert!(out.ends_with("\r\n\r\n"));
    assert_eq!(
        r.head_len,
        raw_head_len(HOP_INPUT),
        "the body is not part of the head"
    );
}

#[test]
fn absolute_form_names_the_host_and_becomes_origin_form() {
    let (r, out) = request("GET http://app.test/x HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(r.host.as_deref(), Some("app.test"));
    assert!(out.starts_with("GET /x HTTP/1.1\r\n"), "{out}");
}

#[test]
fn framing_and_connection_rules() {
    let (r, out) = request("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(r.body, Framing::Chunked);
    assert!(out.contains("Transfer-Encoding: chunked\r\n"));
    let (r, _) = request("GET / HTTP/1.0\r\nHost: a\r\n\r\n");
    assert!(!r.keep_alive);
    let (r, _) = request("GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(r.keep_alive);
    let (r, out) =
        request("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(r.upgrade);
    assert!(
        out.contains("Upgrade: websocket\r\nConnection: upgrade\r\n"),
        "{out}"
    );
    let (r, out) =
        request("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(r.expect_continue);
    assert!(!out.to_ascii_lowercase().contains("expect"), "{out}");

    assert_eq!(
        refused(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        ),
        400
    );
    assert_eq!(
        refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        400
    );
    assert_eq!(
        refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
        400
    );
    assert_eq!(
        refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
        501
    );
    assert_eq!(refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_eq!(refused("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
    assert_eq!(refused("NOT HTTP\r\n\r\n"), 400);
    assert!(matches!(
        head::parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", &client(), &mut Vec::new()),
        Ok(Parsed::Partial)
    ));
}

fn response(raw: &str, head_request: bool, client_minor: u8) -> (head::Response, String) {
    let id = http::HeaderValue::from_static("rid-1");
    let x = Exchange {
        head_request,
        client_minor,
        close: false,
        request_id: &id,
    };
    let mut out = Vec::new();
    match head::parse_response(raw.as_bytes(), &x, &mut out) {
        Ok(Parsed::Complete(r)) => (r, String::from_utf8(out).expect("utf-8")),
        Ok(Parsed::Partial) => panic!("partial"),
        Err(e) => panic!("invalid {e:?}"),
    }
}

#[test]
fn responses_keep_their_framing_and_get_a_request_id() {
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
        false,
        1,
    );
    assert_eq!(r.body, Framing::Length(5));
    assert!(r.reusable && !r.close);
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: rid-1\r\nDate: "),
        "{out}"
    );
    assert!(out.ends_with(" GMT\r\n\r\n"), "{out}");
    let (_, out) = response(
        "HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
        false,
        1,
    );
    assert_eq!(
        out.matches("Date: ").count(),
        1,
        "the instance's date is kept: {out}"
    );
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-ID: mine\r\n\r\n",
        false,
        1,
    );
    assert_eq!(r.body, Framing::Chunked);
    assert!(out.contains("Transfer-Encoding: chunked\r\n") && !out.contains("rid-1"));
    // An HTTP/1.0 client cannot take chunks: data only, then close.
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
        0,
    );
    assert!(r.dechunk && r.close);
    assert!(!out.contains("chunked") && out.contains("Connection: close"));
    let (r, _) = response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, 1);
    assert_eq!(r.body, Framing::Empty, "HEAD responses have no body");
    let (r, out) = response("HTTP/1.0 200 OK\r\n\r\n", false, 1);
    assert_eq!(r.body, Framing::UntilClose);
    assert!(!r.reusable && r.close && out.contains("Connection: close"));
    let (r, _) = response("HTTP/1.1 204 No Content\r\n\r\n", false, 1);
    assert_eq!(r.body, Framing::Empty);
    let (r, out) = response(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        false,
        1,
    );
    assert_eq!(r.status, 101);
    assert!(
        out.contains("Upgrade: websocket\r\nConnection: upgrade\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn a_deadline_moved_later_leaves_its_timer_alone_and_fires_at_the_last_time() {
    use std::time::Duration;
    use tokio::time::Instant;

    let shortest = Duration::from_millis(40);
    let mut d = super::Deadline::new(shortest);
    let start = Instant::now();
    d.arm(start + shortest);
    let timer = d.sleep.deadline();
    for i in 1..=5u64 {
        d.arm(start + shortest + Duration::from_millis(i * 20));
    }
    assert_eq!(
        d.sleep.deadline(),
        timer,
        "arming later must not touch the timer"
    );
    d.passed().await;
    assert!(start.elapsed() >= Duration::from_millis(140), "fired early");
    // After firing early it re-armed no further than `shortest` ahead, so arming the shortest
    // timeout again does not move it either.
    let now = Instant::now();
    d.arm(now + shortest);
    let rearmed = d.sleep.deadline();
    d.arm(now + shortest + Duration::from_millis(5));
    assert_eq!(d.sleep.deadline(), rearmed);
    // Sooner than the timer moves it.
    let mut d = super::Deadline::new(Duration::from_secs(10));
    let now = Instant::now();
    d.arm(now + Duration::from_secs(10));
    d.arm(now + Duration::from_millis(5));
    assert_eq!(d.sleep.deadline(), now + Duration::from_millis(5));
    let started = Instant::now();
    d.passed().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_head_may_end_only_at_an_empty_line() {
    use super::read::head_may_end;
    assert!(head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(head_may_end(b"GET / HTTP/1.1\nHost: a\n\n"));
    assert!(head_may_end(b"\n\r\n"));
    assert!(!head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n"));
    assert!(!head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
    assert!(!head_may_end(b""));
}

#[test]
fn no_header_can_take_the_framing_away() {
    // `Connection` naming `Content-Length` must not leave the instance a body without a length.
    let (r, out) = request(
        "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 4\r\n\r\n",
    );
    assert_eq!(r.body, Framing::Length(4));
    assert_eq!(out.matches("Content-Length: 4\r\n").count(), 1, "{out}");
    let (_, out) = request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n");
    assert!(
        out.contains("Content-Length: 5\r\n") && !out.contains("5, 5"),
        "{out}"
    );

    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n",
        false,
        1,
    );
    assert_eq!(r.body, Framing::Length(3));
    assert!(out.contains("Content-Length: 3\r\n"), "{out}");
    let (r, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n", true, 1);
    assert_eq!(r.body, Framing::Empty);
    assert!(
        out.contains("Content-Length: 12345\r\n"),
        "HEAD keeps the length: {out}"
    );
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        false,
        1,
    );
    assert_eq!(r.body, Framing::Chunked);
    assert!(!r.reusable, "both framings: not pooled");
    assert!(!out.contains("Content-Length"), "{out}");

    let id = http::HeaderValue::from_static("rid");
    let x = Exchange {
        head_request: false,
        client_minor: 1,
        close: false,
        request_id: &id,
    };
    let gz = head::parse_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        &x,
        &mut Vec::new(),
    );
    assert_eq!(gz.err().map(|e| e.status), Some(502));
}

const FORGED: &str = "GET / HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-For: 6.6.6.6\r\n\
     x-forwarded-for: 7.7.7.7\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
     X-Forwarded-Host: evil.test\r\nX-Forwarded-Port: 1\r\nX-Scheme: https\r\n\
     Forwarded: for=6.6.6.6;proto=https\r\nX_Forwarded_For: 8.8.8.8\r\nX_Real_IP: 8.8.8.8\r\n\
     X_App_Thing: kept\r\n\r\n";

#[test]
fn untrusted_clients_forwarding_headers_are_replaced() {
    let (_, out) = request(FORGED);
    for gone in [
        "6.6.6.6",
        "7.7.7.7",
        "8.8.8.8",
        "evil.test",
        "https",
        "Forwarded:",
    ] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    for set in [
        "X-Forwarded-For: 10.0.0.7\r\n",
        "X-Real-Ip: 10.0.0.7\r\n",
        "X-Forwarded-Proto: http\r\n",
        "X-Scheme: http\r\n",
        "X-Forwarded-Port: 8080\r\n",
        "X-Forwarded-Host: shop.test\r\n",
        "X_App_Thing: kept\r\n",
    ] {
        assert!(out.contains(set), "{set:?} missing in {out}");
    }
    assert_eq!(out.matches("X-Forwarded-For").count(), 1, "{out}");
}

#[test]
fn trusted_proxies_forwarding_headers_are_kept_and_appended_to() {
    let lb = Client::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), true, 8443, true);
    let (_, out) = request_from(&lb, FORGED);
    for kept in [
        "X-Forwarded-For: 6.6.6.6, 7.7.7.7, 10.0.0.7\r\n",
        "X-Real-IP: 6.6.6.6\r\n",
        "X-Forwarded-Proto: https\r\n",
        "X-Forwarded-Host: evil.test\r\n",
        "X-Forwarded-Port: 1\r\n",
        "Forwarded: for=6.6.6.6;proto=https\r\n",
    ] {
        assert!(out.contains(kept), "{kept:?} missing in {out}");
    }
    // The router adds none of its own where the proxy sent one; aliases never pass.
    for gone in [
        "X-Real-Ip: 10.0.0.7",
        "X-Forwarded-Port: 8443",
        "X-Forwarded-Host: shop",
        "8.8.8.8",
    ] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    // What the proxy left out, the router fills in.
    let (_, out) = request_from(&lb, "GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    for set in [
        "X-Forwarded-For: 10.0.0.7\r\n",
        "X-Real-Ip: 10.0.0.7\r\n",
        "X-Forwarded-Proto: https\r\n",
        "X-Forwarded-Port: 8443\r\n",
        "X-Forwarded-Host: shop.test\r\n",
    ] {
        assert!(out.contains(set), "{set:?} missing in {out}");
    }
}

#[test]
fn a_trusted_proxy_gets_a_bound_on_forwarded_for_lines() {
    let lb = Client::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), false, 80, true);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-Forwarded-For: 1.1.1.1\r\n".repeat(9)
    );
    match head::parse_request(many.as_bytes(), &lb, &mut Vec::new()) {
        Err(e) => assert_eq!(e.status, 400),
        Ok(_) => panic!("accepted"),
    }
}

// Found by the `h1_request` and `h1_response` fuzz targets (fuzz/).

#[test]
fn absolute_form_without_a_path_becomes_slash() {
    let (r, out) = request("GET http://app.test?q=1 HTTP/1.1\r\n\r\n");
    assert_eq!(r.path.as_str(), "/?q=1");
    assert_eq!(r.host.as_deref(), Some("app.test"));
    assert!(out.starts_with("GET /?q=1 HTTP/1.1\r\n"), "{out}");
    let (r, _) = request("GET http://app.test HTTP/1.1\r\n\r\n");
    assert_eq!(r.path.as_str(), "/");
}

/// `n` headers `X-N: v`.
fn many_headers(n: usize) -> String {
    (0..n).map(|i| format!("X-{i}: v\r\n")).collect()
}

fn header_count(head: &str) -> usize {
    head.trim_end_matches("\r\n").lines().count() - 1
}

#[test]
fn the_router_never_sends_more_headers_than_it_accepts() {
    // A client's 100 headers plus the forwarding ones would be more than an instance takes.
    let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", many_headers(99));
    assert_eq!(refused(&raw), 431);
    // The largest request that fits is sent with exactly MAX_HEADERS headers at most.
    let mut fits = None;
    for n in (0..=99).rev() {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", many_headers(n));
        let mut out = Vec::new();
        if head::parse_request(raw.as_bytes(), &client(), &mut out).is_ok() {
            fits = Some(String::from_utf8(out).expect("utf-8"));
            break;
        }
    }
    let out = fits.expect("a request with few headers is accepted");
    assert!(header_count(&out) <= head::MAX_HEADERS, "{out}");
    assert!(header_count(&out) >= head::MAX_HEADERS - 1, "{out}");

    // Likewise an instance's response, with the router's Date, X-Request-ID and length.
    let id = http::HeaderValue::from_static("rid-1");
    let x = Exchange {
        head_request: false,
        client_minor: 1,
        close: false,
        request_id: &id,
    };
    let raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{}\r\n",
        many_headers(99)
    );
    let e = head::parse_response(raw.as_bytes(), &x, &mut Vec::new()).err();
    assert_eq!(
        e.map(|e| (e.status, e.why)),
        Some((502, "too many headers"))
    );
    let raw = format!(
        "HTTP/1.1 200 OK\r\nDate: x\r\nX-Request-ID: r\r\n{}\r\n",
        many_headers(97)
    );
    let (_, out) = response(&raw, false, 1);
    assert_eq!(header_count(&out), head::MAX_HEADERS, "{out}");
}

#[test]
fn switching_protocols_carries_no_body_length() {
    let (r, out) = response(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
         Content-Length: 12\r\n\r\n",
        false,
        1,
    );
    assert_eq!(r.body, Framing::Empty);
    assert!(
        !out.to_ascii_lowercase().contains("content-length"),
        "{out}"
    );
    assert!(
        out.contains("Upgrade: websocket\r\nConnection: upgrade\r\n"),
        "{out}"
    );
}
