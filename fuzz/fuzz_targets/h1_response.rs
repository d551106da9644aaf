//! An instance's response head: refused, or rewritten into a head the client parses with the
//! framing the router relays. The first byte picks the exchange (HEAD, client HTTP/1.0, close).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_fuzz::{MAX_HEADERS, framing};
use mesh_router::fuzzing::{Body, response_head};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let (head_request, client_minor, close) = (flags & 1 != 0, (flags >> 1) & 1, flags & 4 != 0);
    let head = match response_head(input, head_request, client_minor, close) {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(status) => {
            assert_eq!(status, 502);
            return;
        }
    };
    assert!(head.head_len <= input.len());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head.out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.out.len(), "one head"),
        other => panic!(
            "rewritten head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&head.out)
        ),
    }
    assert_eq!(resp.code, Some(head.status));
    if (100..200).contains(&head.status) && head.status != 101 {
        return; // interim: passed on as the instance sent it
    }
    assert_eq!(resp.version, Some(1));
    let sent = framing(resp.headers);
    let no_body =
        head_request || (100..200).contains(&head.status) || [204, 304].contains(&head.status);
    if head.status == 101 || head.status == 204 {
        assert_eq!(sent, None, "{} with framing headers", head.status);
    }
    let expected = match head.body {
        _ if no_body => None,
        Body::Empty | Body::UntilClose => None,
        Body::Chunked if head.dechunk => None,
        b => Some(b),
    };
    if !no_body {
        // What the client reads as the body is what the router relays.
        assert_eq!(sent, expected, "framing sent differs from framing relayed");
        let closes = resp
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("connection") && h.value == b"close");
        if sent.is_none() {
            assert!(closes, "a body until close without Connection: close");
        }
    }
});
