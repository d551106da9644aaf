//! Checks shared by the fuzz targets.

use std::io::Write;
use std::path::Path;

use mesh_router::fuzzing::Body;

/// Most headers the router may send (hyper's default limit, and the router's own).
pub const MAX_HEADERS: usize = 100;

/// The framing a receiver derives from a head's headers (RFC 9112 6.3), after checking that
/// the router wrote at most one `Content-Length`, at most one `Transfer-Encoding`, never both.
pub fn framing(headers: &[httparse::Header<'_>]) -> Option<Body> {
    let named = |n: &'static str| -> Vec<&httparse::Header<'_>> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .collect()
    };
    let lengths = named("content-length");
    let codings = named("transfer-encoding");
    assert!(
        lengths.len() <= 1,
        "{} Content-Length headers",
        lengths.len()
    );
    assert!(
        codings.len() <= 1,
        "{} Transfer-Encoding headers",
        codings.len()
    );
    assert!(
        lengths.is_empty() || codings.is_empty(),
        "both Content-Length and Transfer-Encoding"
    );
    if let Some(te) = codings.first() {
        assert_eq!(te.value, b"chunked", "the router writes only chunked");
        return Some(Body::Chunked);
    }
    lengths.first().map(|cl| {
        let n = std::str::from_utf8(cl.value).expect("ascii length");
        Body::Length(n.parse().expect("a number"))
    })
}

/// Gzips `data` unless it already is gzip, so the fuzzer mutates tar bytes, not a checksum.
pub fn gzipped(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        return data.to_vec();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("in memory");
    gz.finish().expect("in memory")
}

/// After an unpack into `dir/dest`: accepted → `dest` is the only thing in `dir`
/// (besides `keep`); refused → nothing but `keep` is left.
pub fn check_leftovers(dir: &Path, accepted: bool, keep: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the scratch dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    names.sort();
    let expected: Vec<String> = if accepted {
        vec!["dest".into()]
    } else {
        vec![]
    };
    assert_eq!(
        names, expected,
        "left beside the destination (accepted: {accepted})"
    );
}
