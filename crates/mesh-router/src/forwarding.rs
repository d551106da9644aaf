//! Who may tell the router where a request came from: the forwarding-header policy both
//! engines (the HTTP/1 engine, hyper for HTTP/2) apply, and the SNI/`Host` check.
//!
//! The router owns `X-Forwarded-For`, `X-Real-Ip`, `X-Forwarded-Proto`, `X-Scheme`,
//! `X-Forwarded-Port`, `X-Forwarded-Host` and `Forwarded`. From a client it does not trust,
//! it drops them all and writes its own (`X-Forwarded-For` is then the address the router saw,
//! alone). From a peer in `trusted_proxies` (a load balancer in front of the router) they pass:
//! `X-Forwarded-For` gets the peer's address appended, the others are kept and the router's
//! own are written only where the peer sent none. Header names with underscores that alias a
//! header the router owns (`X_Forwarded_For`, which CGI-style servers read as the same
//! variable) are dropped from everyone.
//!
//! Everything here is pure: no I/O, no allocation.

use std::net::IpAddr;

use mesh_types::Cidr;

/// A forwarding header the router owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owned {
    For,
    RealIp,
    Proto,
    Scheme,
    Port,
    Host,
    Forwarded,
}

impl Owned {
    pub(crate) const ALL: [Owned; 7] = [
        Owned::For,
        Owned::RealIp,
        Owned::Proto,
        Owned::Scheme,
        Owned::Port,
        Owned::Host,
        Owned::Forwarded,
    ];

    /// The lowercase header name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Owned::For => "x-forwarded-for",
            Owned::RealIp => "x-real-ip",
            Owned::Proto => "x-forwarded-proto",
            Owned::Scheme => "x-scheme",
            Owned::Port => "x-forwarded-port",
            Owned::Host => "x-forwarded-host",
            Owned::Forwarded => "forwarded",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn of(name: &str) -> Option<Owned> {
        // Most header names are not forwarding headers: rule them out by length and first letter.
        let first = name.as_bytes().first()?.to_ascii_lowercase();
        if !(first == b'x' || first == b'f') || !(8..=17).contains(&name.len()) {
            return None;
        }
        Owned::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }
}

/// Other headers the router sets or interprets itself, which an underscore alias must not
/// shadow either.
const ALSO_ALIASED: [&str; 7] = [
    "host",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "expect",
];

/// `name` written with underscores for some dashes: the same header to servers that map both
/// to `_` (CGI, WSGI, PHP, nginx variables).
fn aliases(name: &str, owned: &str) -> bool {
    name.len() == owned.len()
        && name.bytes().zip(owned.bytes()).all(|(a, b)| {
            let a = a.to_ascii_lowercase();
            a == b || (a == b'_' && b == b'-')
        })
}

/// What happens to one request header a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not the router's business: copied.
    Other,
    /// Dropped (an untrusted client's forwarding header, or an underscore alias).
    Drop,
    /// A trusted peer's forwarding header: kept (`X-Forwarded-For` is appended to).
    Keep(Owned),
}

/// The verdict for a header named `name` from a peer that is `trusted` or not.
pub(crate) fn classify(name: &str, trusted: bool) -> Verdict {
    if let Some(owned) = Owned::of(name) {
        return if trusted {
            Verdict::Keep(owned)
        } else {
            Verdict::Drop
        };
    }
    if name.contains('_')
        && (Owned::ALL.iter().any(|o| aliases(name, o.name()))
            || ALSO_ALIASED.iter().any(|o| aliases(name, o)))
    {
        return Verdict::Drop;
    }
    Verdict::Other
}

/// Which owned headers a trusted peer sent (so the router does not add its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent(u8);

impl Sent {
    pub(crate) fn add(&mut self, o: Owned) {
        self.0 |= o.bit();
    }

    pub(crate) fn has(self, o: Owned) -> bool {
        self.0 & o.bit() != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Whether a peer at `ip` is one of the `trusted` proxies.
pub(crate) fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// Whether an `X-Forwarded-Proto` value from a trusted peer says the client came over HTTPS:
/// its first entry (the client's side, when proxies appended theirs) is `https`. The router
/// then answers as over HTTPS (no redirect to HTTPS): the peer terminated TLS.
pub(crate) fn forwarded_https(value: &[u8]) -> bool {
    let first = value.split(|b| *b == b',').next().unwrap_or_default();
    first.trim_ascii().eq_ignore_ascii_case(b"https")
}

/// The SNI name as the router compares it: lowercase, without a trailing dot.
pub(crate) fn sni_name(sni: &str) -> Option<String> {
    let name = sni.strip_suffix('.').unwrap_or(sni);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Whether a request for `host` (normalized: lowercase, no port, no trailing dot) came over a
/// TLS connection made for another name (`sni`, see `sni_name`): it is answered 421 Misdirected
/// Request (RFC 9110 15.5.20), never routed by the `Host` a certificate did not vouch for. A
/// connection without SNI (a client that connected by address) has nothing to compare.
pub(crate) fn misdirected(https: bool, sni: Option<&str>, host: &str) -> bool {
    https && sni.is_some_and(|s| s != host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_forwarded_proto_of_https_is_its_first_entry() {
        use super::forwarded_https;
        assert!(forwarded_https(b"https"));
        assert!(forwarded_https(b" HTTPS , http"));
        assert!(!forwarded_https(b"http, https"));
        assert!(!forwarded_https(b""));
        assert!(!forwarded_https(b"httpsx"));
    }

    use super::*;

    #[test]
    fn untrusted_clients_lose_every_forwarding_header() {
        for name in [
            "X-Forwarded-For",
            "x-forwarded-for",
            "X-Real-IP",
            "X-Forwarded-Proto",
            "X-Scheme",
            "X-Forwarded-Port",
            "X-Forwarded-Host",
            "Forwarded",
            "FORWARDED",
        ] {
            assert_eq!(classify(name, false), Verdict::Drop, "{name}");
        }
    }

    #[test]
    fn trusted_peers_keep_them() {
        assert_eq!(classify("X-Forwarded-For", true), Verdict::Keep(Owned::For));
        assert_eq!(
            classify("x-forwarded-proto", true),
            Verdict::Keep(Owned::Proto)
        );
        assert_eq!(classify("Forwarded", true), Verdict::Keep(Owned::Forwarded));
        assert_eq!(classify("X-Real-Ip", true), Verdict::Keep(Owned::RealIp));
    }

    #[test]
    fn underscore_aliases_are_dropped_even_from_trusted_peers() {
        for trusted in [false, true] {
            for name in [
                "X_Forwarded_For",
                "x_forwarded-for",
                "X-Forwarded_Proto",
                "X_REAL_IP",
                "x_request_id",
                "Content_Length",
                "Transfer_Encoding",
            ] {
                assert_eq!(classify(name, trusted), Verdict::Drop, "{name}");
            }
        }
        // Underscores elsewhere are the application's business.
        assert_eq!(classify("x_my_app", false), Verdict::Other);
        assert_eq!(classify("X_Forwarded_Fo", false), Verdict::Other);
    }

    #[test]
    fn ordinary_headers_pass() {
        for name in [
            "Accept",
            "x-forwarded",
            "x-forwarded-for-real",
            "forwarded-for",
            "X-Request-Id",
            "Cookie",
            "",
        ] {
            assert_eq!(classify(name, false), Verdict::Other, "{name}");
        }
    }

    #[test]
    fn sent_remembers_what_a_trusted_peer_set() {
        let mut s = Sent::default();
        assert!(s.is_empty());
        s.add(Owned::Proto);
        s.add(Owned::Forwarded);
        assert!(s.has(Owned::Proto) && s.has(Owned::Forwarded));
        assert!(!s.has(Owned::For) && !s.has(Owned::Host) && !s.is_empty());
    }

    #[test]
    fn trust_is_by_peer_address() {
        let list: Vec<Cidr> = ["10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|s| s.parse().expect("cidr"))
            .collect();
        assert!(is_trusted(&list, "10.9.8.7".parse().expect("ip")));
        assert!(is_trusted(&list, "::ffff:10.9.8.7".parse().expect("ip")));
        assert!(is_trusted(&list, "2001:db8::5".parse().expect("ip")));
        assert!(!is_trusted(&list, "192.0.2.1".parse().expect("ip")));
        assert!(!is_trusted(&[], "10.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn host_must_be_the_sni_name_over_tls() {
        let sni = sni_name("Shop.Example.").expect("name");
        assert_eq!(sni, "shop.example");
        assert!(!misdirected(true, Some(&sni), "shop.example"));
        assert!(misdirected(true, Some(&sni), "admin.example"));
        // No SNI (connected by address) or plain HTTP: nothing to compare.
        assert!(!misdirected(true, None, "admin.example"));
        assert!(!misdirected(false, Some(&sni), "admin.example"));
        assert_eq!(sni_name(""), None);
    }
}
