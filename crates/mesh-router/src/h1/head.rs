//! Message heads: a client's request parsed and rewritten for an instance, an instance's
//! response parsed and rewritten for the client. Headers are copied as bytes, never put in a
//! map: hop-by-hop headers (and those `Connection` names) are dropped, the forwarding headers
//! are replaced by the router's own, and the body's framing is decided here.

use std::net::IpAddr;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Uri};

use crate::forwarding::{self, Owned, Sent, Verdict};
use crate::proxy::headers::new_request_id;

/// Most headers a request or response head may carry (hyper's default too).
pub(crate) const MAX_HEADERS: usize = 100;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
    /// Until the instance closes the connection (responses only).
    UntilClose,
}

impl Framing {
    pub(crate) fn is_empty(self) -> bool {
        matches!(self, Framing::Empty | Framing::Length(0))
    }
}

/// A head could not be used: the status to answer with (requests) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub status: u16,
    pub why: &'static str,
}

const fn invalid(status: u16, why: &'static str) -> Invalid {
    Invalid { status, why }
}

/// The outcome of parsing what has arrived so far.
pub(crate) enum Parsed<T> {
    /// The head is not complete yet.
    Partial,
    Complete(T),
}

/// The client side of a connection, as forwarding headers describe it (written once per
/// connection, copied into every request).
pub(crate) struct Client {
    /// The client's address as text.
    ip: Vec<u8>,
    /// `X-Real-Ip`, `X-Forwarded-Proto`, `X-Scheme` and `X-Forwarded-Port` lines.
    lines: Vec<u8>,
    /// Where each of those lines ends in `lines`.
    ends: [usize; 4],
    /// The peer is a trusted proxy: its forwarding headers pass (see `forwarding`).
    trusted: bool,
}

/// The headers in `Client::lines`, in order.
const CLIENT_LINES: [Owned; 4] = [Owned::RealIp, Owned::Proto, Owned::Scheme, Owned::Port];

impl Client {
    /// `port`: the router port the client connected to; `trusted`: the peer is a trusted proxy.
    pub(crate) fn new(ip: IpAddr, https: bool, port: u16, trusted: bool) -> Self {
        let ip = ip.to_string().into_bytes();
        let proto = if https { "https" } else { "http" };
        let mut lines = Vec::with_capacity(128);
        let mut ends = [0; 4];
        put_header(&mut lines, b"X-Real-Ip", &ip);
        ends[0] = lines.len();
        put_header(&mut lines, b"X-Forwarded-Proto", proto.as_bytes());
        ends[1] = lines.len();
        put_header(&mut lines, b"X-Scheme", proto.as_bytes());
        ends[2] = lines.len();
        put_header(&mut lines, b"X-Forwarded-Port", port.to_string().as_bytes());
        ends[3] = lines.len();
        Self {
            ip,
            lines,
            ends,
            trusted,
        }
    }

    /// Whether the peer's forwarding headers count for the next request: a configured proxy,
    /// or a router of the platform forwarding here now.
    pub(crate) fn set_trusted(&mut self, trusted: bool) {
        self.trusted = trusted;
    }

    /// Writes the router's forwarding lines, but not those a trusted peer `sent` itself.
    fn put_lines(&self, out: &mut Vec<u8>, sent: Sent) {
        if sent.is_empty() {
            out.extend_from_slice(&self.lines);
            return;
        }
        let mut start = 0;
        for (owned, end) in CLIENT_LINES.into_iter().zip(self.ends) {
            if !sent.has(owned) {
                out.extend_from_slice(&self.lines[start..end]);
            }
            start = end;
        }
    }
}

/// What the router needs of a client's request; its rewritten head is in the caller's buffer.
pub(crate) struct Request {
    /// Bytes of the head in the input.
    pub head_len: usize,
    pub method: Method,
    /// Origin-form path and query.
    pub path: PathAndQuery,
    /// `HTTP/1.x`: 0 or 1.
    pub minor: u8,
    /// The host the client asked for, as sent (absolute-form authority or `Host`).
    pub host: Option<String>,
    pub body: Framing,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// The client asks to switch protocols (`Connection: upgrade`).
    pub upgrade: bool,
    /// `Expect: 100-continue` (answered by the router; not forwarded).
    pub expect_continue: bool,
    /// The client prefers HTML error pages.
    pub html: bool,
    /// The client's `X-Request-ID` if sane, else a new one.
    pub request_id: HeaderValue,
    /// A trusted peer says the client came over HTTPS (`forwarding::forwarded_https`).
    pub forwarded_https: bool,
}

/// Headers the router replaces with its own on the way to an instance (the forwarding
/// headers too, unless a trusted proxy sent them: `forwarding`).
const REPLACED: [&str; 2] = ["host", "x-request-id"];

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1 plus the usual
/// extras). `Content-Length` is never copied either: the router writes its own, one value,
/// from the framing it decided, so no header (not even one a `Connection` header names) can
/// make the router and an instance disagree on where a body ends.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Comma-separated tokens of a header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

fn has_token(value: &[u8], token: &str) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether a header is named by a `Connection` header (and so hop-by-hop).
fn named_by(connection: &[&[u8]], name: &str) -> bool {
    connection
        .iter()
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// A `Content-Length` value: digits only, every copy equal.
fn content_length<'h>(mut values: impl Iterator<Item = &'h [u8]>) -> Result<Option<u64>, Invalid> {
    let mut found: Option<u64> = None;
    let bad = invalid(400, "invalid Content-Length");
    for v in &mut values {
        for t in tokens(v) {
            if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
                return Err(bad);
            }
            let n: u64 = std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(bad)?;
            if found.is_some_and(|f| f != n) {
                return Err(bad);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Parses a request head and writes the head to send to the instance into `out`.
pub(crate) fn parse_request(
    input: &[u8],
    client: &Client,
    out: &mut Vec<u8>,
) -> Result<Parsed<Request>, Invalid> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid(431, "too many headers"));
        }
        Err(_) => return Err(invalid(400, "malformed request")),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(invalid(400, "malformed request"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| invalid(400, "malformed method"))?;
    if method == Method::CONNECT {
        return Err(invalid(405, "CONNECT is not supported"));
    }
    // Absolute-form (`GET http://host/path`) names the host; origin-form relies on `Host`.
    let (path, authority) = if target.starts_with('/') {
        let path = PathAndQuery::try_from(target).map_err(|_| invalid(400, "malformed target"))?;
        (path, None)
    } else if target == "*" {
        (PathAndQuery::from_static("*"), None)
    } else {
        let uri = Uri::try_from(target).map_err(|_| invalid(400, "malformed target"))?;
        // `http://host` and `http://host?q` have an empty path: origin-form makes it `/`.
        let path = match uri.path_and_query() {
            Some(p) if p.as_str().starts_with('/') => p.clone(),
            Some(p) => PathAndQuery::try_from(format!("/{}", p.as_str()))
                .map_err(|_| invalid(400, "malformed target"))?,
            None => PathAndQuery::from_static("/"),
        };
        (path, uri.authority().map(|a| a.as_str().to_owned()))
    };
    let headers = req.headers;

    let mut connection: Vec<&[u8]> = Vec::new();
    let mut host_header: Option<&[u8]> = None;
    let mut hosts = 0;
    let mut te: Option<&[u8]> = None;
    let mut upgrade: Option<&[u8]> = None;
    let mut expect_continue = false;
    let mut html = false;
    let mut request_id = None;
    let mut forwarded_https = None;
    for h in headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            connection.push(h.value);
        } else if name.eq_ignore_ascii_case("host") {
            host_header = Some(h.value);
            hosts += 1;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if te.is_some() {
                return Err(invalid(400, "repeated Transfer-Encoding"));
            }
            te = Some(h.value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("accept") {
            html = html || h.value.windows(9).any(|w| w == b"text/html");
        } else if client.trusted
            && forwarded_https.is_none()
            && name.eq_ignore_ascii_case("x-forwarded-proto")
        {
            forwarded_https = Some(forwarding::forwarded_https(h.value));
        } else if name.eq_ignore_ascii_case("x-request-id") && request_id.is_none() {
            let v = h.value;
            if !v.is_empty() && v.len() <= 200 && v.iter().all(u8::is_ascii_graphic) {
                request_id = HeaderValue::from_bytes(v).ok();
            }
        }
    }
    if hosts > 1 {
        return Err(invalid(400, "repeated Host"));
    }
    let lengths = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value);
    let length = content_length(lengths)?;
    let body = match (te, length) {
        (Some(_), Some(_)) => {
            return Err(invalid(400, "both Transfer-Encoding and Content-Length"));
        }
        (Some(te), None) => {
            if minor == 0 || !te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(invalid(501, "unsupported Transfer-Encoding"));
            }
            Framing::Chunked
        }
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Empty,
    };
    let close = connection.iter().any(|v| has_token(v, "close"));
    let keep_alive = if minor == 1 {
        !close
    } else {
        !close && connection.iter().any(|v| has_token(v, "keep-alive"))
    };
    let upgrade = match upgrade {
        Some(u) if minor == 1 && connection.iter().any(|v| has_token(v, "upgrade")) => Some(u),
        _ => None,
    };
    let host = match authority {
        Some(a) => Some(a),
        None => host_header
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(|h| h.trim().to_owned()),
    };
    let request_id = request_id.unwrap_or_else(new_request_id);

    // The head for the instance: always HTTP/1.1, origin-form.
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // A trusted proxy's `X-Forwarded-For` lines, kept in place (the router's own comes after).
    let mut xff: [&[u8]; 8] = [&[]; 8];
    let mut n_xff = 0;
    let mut sent = Sent::default();
    for h in headers.iter() {
        let name = h.name;
        match forwarding::classify(name, client.trusted) {
            Verdict::Other => {}
            Verdict::Drop => continue,
            Verdict::Keep(Owned::For) => {
                if n_xff == xff.len() {
                    return Err(invalid(400, "too many X-Forwarded-For headers"));
                }
                xff[n_xff] = h.value;
                n_xff += 1;
                continue;
            }
            Verdict::Keep(owned) => {
                sent.add(owned);
                put_header(out, name.as_bytes(), h.value);
                continue;
            }
        }
        if is_one_of(name, &HOP_BY_HOP)
            || is_one_of(name, &REPLACED)
            || name.eq_ignore_ascii_case("content-length")
            || (expect_continue && name.eq_ignore_ascii_case("expect"))
            || (!connection.is_empty() && named_by(&connection, name))
        {
            continue;
        }
        put_header(out, name.as_bytes(), h.value);
    }
    if let Some(h) = &host {
        put_header(out, b"Host", h.as_bytes());
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    for v in &xff[..n_xff] {
        let v = v.trim_ascii();
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(&client.ip);
    out.extend_from_slice(b"\r\n");
    client.put_lines(out, sent);
    if let Some(h) = &host
        && !sent.has(Owned::Host)
    {
        put_header(out, b"X-Forwarded-Host", h.as_bytes());
    }
    put_header(out, b"X-Request-ID", request_id.as_bytes());
    match body {
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Length(n) => put_length(out, n),
        Framing::Empty | Framing::UntilClose => {}
    }
    if let Some(u) = upgrade {
        put_header(out, b"Upgrade", u);
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    if header_lines(out) > MAX_HEADERS {
        // The router's own headers would take the head past what the instance accepts.
        return Err(invalid(431, "too many headers"));
    }
    out.extend_from_slice(b"\r\n");

    Ok(Parsed::Complete(Request {
        head_len,
        method,
        path,
        minor,
        host,
        body,
        keep_alive,
        upgrade: upgrade.is_some(),
        expect_continue,
        html,
        request_id,
        forwarded_https: forwarded_https.unwrap_or(false),
    }))
}

/// What the router needs of an instance's response; the client's head is in the caller's buffer.
pub(crate) struct Response {
    pub head_len: usize,
    pub status: u16,
    pub body: Framing,
    /// The body is chunked but the client speaks HTTP/1.0: send the data only, then close.
    pub dechunk: bool,
    /// The instance connection can serve another request after this body.
    pub reusable: bool,
    /// The client connection closes after this body.
    pub close: bool,
}

/// How the exchange stands when a response head is parsed.
pub(crate) struct Exchange<'a> {
    pub head_request: bool,
    pub client_minor: u8,
    /// The client connection closes after this response whatever the instance says.
    pub close: bool,
    pub request_id: &'a HeaderValue,
}

/// Parses a response head and writes the head to send to the client into `out` (for 1xx
/// interim responses other than 101, `out` gets the head as the instance sent it).
pub(crate) fn parse_response(
    input: &[u8],
    x: &Exchange<'_>,
    out: &mut Vec<u8>,
) -> Result<Parsed<Response>, Invalid> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let bad = invalid(502, "malformed response head");
    let head_len = match resp.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err(bad),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(bad);
    };
    if !(100..=999).contains(&status) {
        return Err(bad);
    }
    let reason = resp.reason.unwrap_or("");
    let headers = resp.headers;
    out.clear();
    if (100..200).contains(&status) && status != 101 {
        out.extend_from_slice(&input[..head_len]);
        return Ok(Parsed::Complete(Response {
            head_len,
            status,
            body: Framing::Empty,
            dechunk: false,
            reusable: true,
            close: false,
        }));
    }

    let mut connection: Vec<&[u8]> = Vec::new();
    let mut te: Option<&[u8]> = None;
    let mut upgrade: Option<&[u8]> = None;
    let mut has_request_id = false;
    let mut has_date = false;
    for h in headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            connection.push(h.value);
        } else if name.eq_ignore_ascii_case("date") {
            has_date = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = Some(h.value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        } else if name.eq_ignore_ascii_case("x-request-id") {
            has_request_id = true;
        }
    }
    let lengths = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value);
    let length = content_length(lengths).map_err(|_| invalid(502, "invalid Content-Length"))?;
    if let Some(te) = te {
        // Codings other than chunked would reach the client unlabelled once the router
        // strips the hop-by-hop header; instances practically never send them.
        let mut codings = tokens(te).filter(|t| !t.is_empty());
        if !(codings
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none())
        {
            return Err(invalid(502, "unsupported transfer coding"));
        }
    }
    let body = if x.head_request || status == 101 || status == 204 || status == 304 {
        Framing::Empty
    } else if te.is_some() {
        Framing::Chunked
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let instance_close = connection.iter().any(|v| has_token(v, "close"))
        || (minor == 0 && !connection.iter().any(|v| has_token(v, "keep-alive")));
    // Both framings at once is how smuggling starts (RFC 9112 6.3): use it, then close it.
    let reusable = !instance_close
        && body != Framing::UntilClose
        && status != 101
        && !(te.is_some() && length.is_some());
    let dechunk = body == Framing::Chunked && x.client_minor == 0;
    let close = x.close || body == Framing::UntilClose || dechunk;

    // `status` has three digits (checked above).
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers.iter() {
        let name = h.name;
        if is_one_of(name, &HOP_BY_HOP)
            || name.eq_ignore_ascii_case("content-length")
            || (!connection.is_empty() && named_by(&connection, name))
        {
            continue;
        }
        put_header(out, name.as_bytes(), h.value);
    }
    // One length, from the framing (`HEAD` and `304` keep the length they describe; `101`
    // and `204` have none, RFC 9110 8.6).
    if te.is_none()
        && status != 204
        && status != 101
        && let Some(n) = length
    {
        put_length(out, n);
    }
    if !has_request_id {
        put_header(out, b"X-Request-ID", x.request_id.as_bytes());
    }
    // A proxy adds the date an answer without one was received (RFC 9110 6.6.1).
    if !has_date {
        super::date::put_header(out);
    }
    if status == 101 {
        if let Some(u) = upgrade {
            put_header(out, b"Upgrade", u);
        }
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else {
        if body == Framing::Chunked && !dechunk {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if x.client_minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    if header_lines(out) > MAX_HEADERS {
        // The headers the router adds would take the head past what clients accept.
        return Err(invalid(502, "too many headers"));
    }
    out.extend_from_slice(b"\r\n");
    Ok(Parsed::Complete(Response {
        head_len,
        status,
        body,
        dechunk,
        reusable,
        close,
    }))
}

/// Appends a `Content-Length` header line.
pub(crate) fn put_length(out: &mut Vec<u8>, mut n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Header lines in a head written so far (start line written, final CRLF not yet): parsed
/// names and values never hold a line feed, so each one after the start line ends a header.
fn header_lines(out: &[u8]) -> usize {
    out.iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1)
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
