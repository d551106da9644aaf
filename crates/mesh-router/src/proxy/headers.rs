//! Header rewriting between client and instance: hop-by-hop removal and forwarding headers.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::balance::random_u64;
use crate::forwarding::{self, Owned, Verdict};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_SCHEME: HeaderName = HeaderName::from_static("x-scheme");
pub(crate) static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1 plus the usual extras).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `Connection: upgrade` with an `Upgrade` protocol: a WebSocket or similar handshake.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers and those the `Connection` header names. With `keep_upgrade`,
/// `Upgrade` survives and `Connection` becomes exactly `upgrade`, so the handshake goes through.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup per name.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            if !(keep_upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
    }
    let upgrade = if keep_upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(proto) = upgrade {
        headers.insert(header::UPGRADE, proto);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// What the router knows about the client side of a request.
pub(crate) struct Forwarded<'a> {
    pub client_ip: IpAddr,
    pub https: bool,
    /// The router port the client connected to.
    pub port: u16,
    /// The client's `Host` (or `:authority`), as sent.
    pub host: &'a str,
    /// The peer is a trusted proxy: its forwarding headers are kept (`forwarding`).
    pub trusted: bool,
}

/// Sets the forwarding headers every proxied request carries: `X-Forwarded-For`,
/// `X-Real-Ip`, `X-Forwarded-Proto`, `X-Scheme`, `X-Forwarded-Port`, `X-Forwarded-Host` and
/// `X-Request-ID`. An untrusted client's own forwarding headers (and `Forwarded`) go first; a
/// trusted proxy's stay, its `X-Forwarded-For` list appended to. Underscore aliases of the
/// router's headers go whoever sent them.
pub(crate) fn set_forwarding(headers: &mut HeaderMap, f: &Forwarded<'_>, request_id: &HeaderValue) {
    // Header names are lowercase here; most requests have no underscore in any.
    if headers.keys().any(|k| k.as_str().contains('_')) {
        let aliases: Vec<HeaderName> = headers
            .keys()
            .filter(|k| forwarding::classify(k.as_str(), f.trusted) == Verdict::Drop)
            .cloned()
            .collect();
        for name in aliases {
            headers.remove(name);
        }
    }
    if !f.trusted {
        for owned in Owned::ALL {
            headers.remove(owned.name());
        }
    }
    let mut ip_text = [0u8; 64];
    let ip = ip_bytes(f.client_ip, &mut ip_text);
    let ip_value = HeaderValue::from_bytes(ip).ok();
    if headers.contains_key(&X_FORWARDED_FOR) {
        let mut xff = String::new();
        for v in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                let v = v.trim();
                if !v.is_empty() {
                    xff.push_str(v);
                    xff.push_str(", ");
                }
            }
        }
        let _ = write!(xff, "{}", f.client_ip);
        set(headers, &X_FORWARDED_FOR, xff);
    } else if let Some(v) = &ip_value {
        headers.insert(X_FORWARDED_FOR.clone(), v.clone());
    }
    // From here on a header already present came from a trusted proxy and stays.
    if let Some(v) = ip_value {
        headers.entry(&X_REAL_IP).or_insert(v);
    }
    let proto = HeaderValue::from_static(if f.https { "https" } else { "http" });
    headers.entry(&X_FORWARDED_PROTO).or_insert(proto.clone());
    headers.entry(&X_SCHEME).or_insert(proto);
    headers
        .entry(&X_FORWARDED_PORT)
        .or_insert(HeaderValue::from(f.port));
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Ok(v) = HeaderValue::from_str(f.host)
    {
        headers.insert(X_FORWARDED_HOST.clone(), v);
    }
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: String) {
    match HeaderValue::try_from(value) {
        Ok(v) => {
            headers.insert(name.clone(), v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// The client's `X-Request-ID` if it is sane (1..=200 visible ASCII characters), else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    new_request_id()
}

/// 128 random bits as 32 lowercase hex digits.
pub(crate) fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    let bits = (u128::from(random_u64()) << 64) | u128::from(random_u64());
    for (i, c) in out.iter_mut().enumerate() {
        *c = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The address as text in `buf`, without allocating.
fn ip_bytes(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{ip}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    &buf[..len]
}
