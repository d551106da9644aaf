//! Entry points for the fuzz targets in `fuzz/` (not part of the router's API): the HTTP/1
//! head parsers and the chunked scanner, over plain bytes.

use std::net::{IpAddr, Ipv4Addr};

use http::HeaderValue;

use crate::h1::head::{self, Client, Exchange, Framing, Parsed};

/// How a parsed head says its body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A head the router accepted: its length in the input, the head it writes for the other
/// side, and the body framing it decided.
#[derive(Debug)]
pub struct Head {
    pub head_len: usize,
    pub out: Vec<u8>,
    pub body: Body,
    /// Responses: the status; requests: 0.
    pub status: u16,
    /// Responses: the body is sent without chunk framing (HTTP/1.0 client).
    pub dechunk: bool,
}

/// The result of parsing a head: `Ok(None)` while incomplete, `Err(status)` when refused.
pub type Parse = Result<Option<Head>, u16>;

fn body(f: Framing) -> Body {
    match f {
        Framing::Empty => Body::Empty,
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked,
        Framing::UntilClose => Body::UntilClose,
    }
}

/// A client request head, as the router rewrites it for an instance.
pub fn request_head(input: &[u8]) -> Parse {
    let client = Client::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), true, 443, false);
    let mut out = Vec::new();
    match head::parse_request(input, &client, &mut out) {
        Ok(Parsed::Partial) => Ok(None),
        Ok(Parsed::Complete(r)) => Ok(Some(Head {
            head_len: r.head_len,
            out,
            body: body(r.body),
            status: 0,
            dechunk: false,
        })),
        Err(e) => Err(e.status),
    }
}

/// An instance's response head to a request (`HEAD` or not, from an HTTP/1.`client_minor`
/// client), as the router rewrites it for the client.
pub fn response_head(input: &[u8], head_request: bool, client_minor: u8, close: bool) -> Parse {
    let request_id = HeaderValue::from_static("fuzz");
    let x = Exchange {
        head_request,
        client_minor,
        close,
        request_id: &request_id,
    };
    let mut out = Vec::new();
    match head::parse_response(input, &x, &mut out) {
        Ok(Parsed::Partial) => Ok(None),
        Ok(Parsed::Complete(r)) => Ok(Some(Head {
            head_len: r.head_len,
            out,
            body: body(r.body),
            status: r.status,
            dechunk: r.dechunk,
        })),
        Err(e) => Err(e.status),
    }
}

/// What the chunked scanner made of a body fed in pieces of `piece` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Dechunked {
    /// The chunk data.
    pub data: Vec<u8>,
    /// Input bytes that belong to the body (all of it until the end was seen).
    pub used: usize,
    pub done: bool,
}

/// Scans `input` as a chunked body; `Err` with the error's text when the framing is refused.
pub fn dechunk(input: &[u8], piece: usize) -> Result<Dechunked, String> {
    use crate::h1::chunked::{Chunked, Step};
    let piece = piece.max(1);
    let mut c = Chunked::default();
    let mut data = Vec::new();
    let mut at = 0;
    while at < input.len() && !c.is_done() {
        let end = at.saturating_add(piece).min(input.len());
        let mut slice = &input[at..end];
        while !slice.is_empty() && !c.is_done() {
            let n = match c.step(slice).map_err(|e| e.to_string())? {
                Step::Data(n) => {
                    data.extend_from_slice(&slice[..n]);
                    n
                }
                Step::Framing(n) | Step::Done(n) => n,
            };
            assert!(
                n > 0 && n <= slice.len(),
                "a step consumes 1..={}",
                slice.len()
            );
            slice = &slice[n..];
            at += n;
        }
    }
    Ok(Dechunked {
        data,
        used: at,
        done: c.is_done(),
    })
}
