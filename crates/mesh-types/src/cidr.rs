//! Address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address), IPv4 and
//! IPv6, e.g. for the proxies whose forwarding headers the edge router trusts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range: the network address (host bits zero) and the prefix length. A bare address
/// is the range of just that address (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a text is not a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    Empty,
    /// The part before `/` is not an IPv4 or IPv6 address.
    Address(String),
    /// The part after `/` is not a number within the family's bits.
    Prefix {
        text: String,
        max: u8,
    },
    /// Bits set past the prefix (`10.1.2.3/8`): the network is probably not what was meant.
    HostBits {
        given: String,
        network: String,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Empty => write!(
                f,
                "empty address range (expected e.g. 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7)"
            ),
            CidrError::Address(a) => write!(
                f,
                "'{a}' is not an IPv4 or IPv6 address (expected e.g. 10.0.0.0/8 or 2001:db8::/32)"
            ),
            CidrError::Prefix { text, max } => {
                write!(f, "prefix length '{text}' is not a number from 0 to {max}")
            }
            CidrError::HostBits { given, network } => write!(
                f,
                "'{given}' has bits set past its prefix length; did you mean {network}?"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The range of `network`/`prefix`; `None` if the prefix is too long for the family or
    /// `network` has bits set past it.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Cidr> {
        let cidr = Cidr { network, prefix };
        (prefix <= max_prefix(network) && mask(network, prefix) == network).then_some(cidr)
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range. IPv4 addresses written as IPv6 (`::ffff:10.0.0.1`, as a
    /// dual-stack socket reports IPv4 peers) count as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.network
            }
            _ => false,
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ip` with the bits past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(CidrError::Empty);
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let max = max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let bad = || CidrError::Prefix {
                    text: p.to_owned(),
                    max,
                };
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let n: u8 = p.parse().map_err(|_| bad())?;
                if n > max {
                    return Err(bad());
                }
                n
            }
        };
        let masked = mask(network, prefix);
        if masked != network {
            return Err(CidrError::HostBits {
                given: s.to_owned(),
                network: format!("{masked}/{prefix}"),
            });
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn parses_ranges_and_single_addresses() {
        let c: Cidr = "10.0.0.0/8".parse().expect("v4");
        assert_eq!((c.network(), c.prefix()), (ip("10.0.0.0"), 8));
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let c: Cidr = "2001:db8::/32".parse().expect("v6");
        assert_eq!(c.to_string(), "2001:db8::/32");
        let c: Cidr = " 192.0.2.7 ".parse().expect("one v4");
        assert_eq!(c.to_string(), "192.0.2.7/32");
        let c: Cidr = "::1".parse().expect("one v6");
        assert_eq!(c.to_string(), "::1/128");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().expect("all").prefix(), 0);
        assert_eq!("::/0".parse::<Cidr>().expect("all v6").prefix(), 0);
    }

    #[test]
    fn contains_by_prefix_across_families() {
        let c: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(c.contains(ip("10.1.0.0")));
        assert!(c.contains(ip("10.1.255.255")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(!c.contains(ip("::1")));
        // A dual-stack socket's view of an IPv4 peer.
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().expect("cidr");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6all: Cidr = "::/0".parse().expect("cidr");
        assert!(v6all.contains(ip("fe80::1")));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Cidr>().expect_err(s).to_string();
        assert!(err("").contains("empty"));
        assert!(err("10.0.0/8").contains("'10.0.0' is not an IPv4 or IPv6 address"));
        assert!(err("example.com/8").contains("not an IPv4 or IPv6 address"));
        assert!(err("10.0.0.0/33").contains("'33' is not a number from 0 to 32"));
        assert!(err("::/129").contains("from 0 to 128"));
        assert!(err("10.0.0.0/").contains("prefix length ''"));
        assert!(err("10.0.0.0/+8").contains("'+8'"));
        assert!(err("10.0.0.0/0008").contains("'0008'"));
        assert!(err("10.1.2.3/8").contains("did you mean 10.0.0.0/8?"));
        assert!(err("2001:db8::1/32").contains("did you mean 2001:db8::/32?"));
    }

    #[test]
    fn new_checks_prefix_and_host_bits() {
        assert!(Cidr::new(ip("10.0.0.0"), 8).is_some());
        assert!(Cidr::new(ip("10.0.0.1"), 8).is_none());
        assert!(Cidr::new(ip("10.0.0.0"), 33).is_none());
        assert!(Cidr::new(ip("::"), 128).is_some());
    }
}
