//! The `Date` header value, rendered at most once a second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends a `Date` header line with the current date to `out`.
pub(crate) fn put_header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Date: ");
    append_now(out);
    out.extend_from_slice(b"\r\n");
}

/// Appends the current date as an HTTP date (`Tue, 25 Nov 2026 13:14:05 GMT`) to `out`.
fn append_now(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(c.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_an_http_date() {
        let mut out = Vec::new();
        super::append_now(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.ends_with(" GMT") && text.len() == 29, "{text}");
        assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
    }
}
