//! The files an instance resolves names with, bind-mounted read-only over `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`.
//!
//! Why generated: inside an isolated network namespace the host's resolver is unreachable and
//! its packets vanish, so a lookup that falls through to DNS hangs for 10 s (measured: a
//! reverse lookup of the instance's own address, and any lookup of a name missing from
//! `/etc/hosts`). So `/etc/hosts` always holds localhost, the instance itself and its peers,
//! and resolv.conf gives up after one attempt of one second, against an address that answers
//! at once: 127.0.0.1 in the instance's own namespace (nothing listens: ICMP unreachable), or
//! the environment's DNS server when there is one.

use std::io::{Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use crate::spec::HostEntry;

pub fn render_hosts(hostname: &str, address: Ipv4Addr, peers: &[HostEntry]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str(&format!("{address}\t{hostname}\n"));
    let mut seen = vec![(hostname.to_string(), address)];
    for p in peers {
        let key = (p.hostname.clone(), p.address);
        if !seen.contains(&key) {
            out.push_str(&format!("{}\t{}\n", p.address, p.hostname));
            seen.push(key);
        }
    }
    out
}

pub fn render_resolv(dns: Option<Ipv4Addr>) -> String {
    let server = dns.unwrap_or(Ipv4Addr::LOCALHOST);
    format!("nameserver {server}\noptions timeout:1 attempts:1\n")
}

/// Rewrites a file in place (same inode). A bind mount follows the inode it was made from, so
/// the usual write-to-temp-and-rename would leave running instances with the old content.
pub fn rewrite_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(content.as_bytes())?;
    f.sync_data()
}

#[cfg(test)]
mod tests;
