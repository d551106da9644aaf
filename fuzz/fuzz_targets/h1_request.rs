//! A client's request head: refused with a status, or rewritten into a head an instance
//! parses with the same framing (and that the router itself would accept again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_fuzz::{MAX_HEADERS, framing};
use mesh_router::fuzzing::{Body, request_head};

fuzz_target!(|data: &[u8]| {
    let head = match request_head(data) {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(status) => {
            assert!((400..=599).contains(&status), "refused with {status}");
            return;
        }
    };
    assert!(head.head_len <= data.len());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&head.out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.out.len(), "one head"),
        other => panic!(
            "rewritten head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&head.out)
        ),
    }
    assert_eq!(req.version, Some(1));
    let path = req.path.expect("a target");
    assert!(
        path.starts_with('/') || path == "*",
        "target {path:?} not origin-form"
    );
    let sent = framing(req.headers).unwrap_or(Body::Empty);
    assert_eq!(sent, head.body, "framing sent differs from framing decided");
    // Another router hop accepts what this one sends.
    match request_head(&head.out) {
        Ok(Some(again)) => assert_eq!(again.body, head.body),
        other => panic!(
            "the rewritten head is refused by the router ({other:?}): {:?}",
            String::from_utf8_lossy(&head.out)
        ),
    }
});
