//! The runtime's one nftables table, rendered whole from the networks it knows and swapped in
//! atomically (`nft -f` runs a file as one transaction: create-if-missing, delete, re-create).
//!
//! What it enforces (measured in `notes/linux-host.md`):
//! - forward: traffic from one environment's bridge to another's is dropped (nft cannot
//!   compare `iifname != oifname`, hence rules per bridge); frames bridged within one
//!   environment pass the forward hook too (br_netfilter) and are accepted first; without
//!   egress an environment's traffic may not leave its bridge at all; nothing may start a
//!   connection into an environment from elsewhere (the edge router connects from the host,
//!   which is the output path, not forward); no instance reaches a link-local address
//!   (169.254.0.0/16: a cloud server's metadata service, whose user data holds the rack's
//!   join token), egress or not.
//! - input: instances reach no host address (any bridge's gateway, the host's own interfaces),
//!   except replies to connections the host opened, and DNS on the gateway when the network's
//!   resolver is the gateway.
//! - postrouting: masquerade for networks with egress, to anything that is not a platform
//!   bridge. Forwarding itself (`ip_forward`) is the operator's choice; the runtime never
//!   flips it, and the forward rules keep environments apart when it is on.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::subnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftNetwork {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub egress: bool,
    pub dns: Option<Ipv4Addr>,
}

/// The full `nft -f` input that replaces `table` with the rules for `networks`; with no
/// networks it only removes the table.
pub fn render(table: &str, bridge_glob: &str, networks: &[NftNetwork]) -> String {
    let mut out = render_delete(table);
    if networks.is_empty() {
        return out;
    }
    let g = bridge_glob;
    let _ = writeln!(out, "table inet {table} {{");
    out.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    for n in networks {
        let b = &n.bridge;
        let _ = writeln!(out, "\t\tiifname \"{b}\" oifname \"{b}\" accept");
        // Link-local addresses are the cloud's metadata service (169.254.169.254), which
        // answers with the server's user data and so the rack's join token.
        let _ = writeln!(out, "\t\tiifname \"{b}\" ip daddr 169.254.0.0/16 drop");
        let _ = writeln!(out, "\t\tiifname \"{b}\" oifname \"{g}\" drop");
        if !n.egress {
            let _ = writeln!(out, "\t\tiifname \"{b}\" drop");
        }
        let _ = writeln!(
            out,
            "\t\toifname \"{b}\" ct state established,related accept"
        );
        let _ = writeln!(out, "\t\toifname \"{b}\" drop");
    }
    out.push_str("\t}\n");
    out.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    let _ = writeln!(
        out,
        "\t\tiifname \"{g}\" ct state established,related accept"
    );
    for n in networks {
        let gw = n.subnet.gateway();
        if n.dns == Some(gw) {
            for proto in ["udp", "tcp"] {
                let _ = writeln!(
                    out,
                    "\t\tiifname \"{}\" ip daddr {gw} {proto} dport 53 accept",
                    n.bridge
                );
            }
        }
    }
    let _ = writeln!(out, "\t\tiifname \"{g}\" drop");
    out.push_str("\t}\n");
    if networks.iter().any(|n| n.egress) {
        out.push_str(
            "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
        );
        for n in networks.iter().filter(|n| n.egress) {
            let _ = writeln!(
                out,
                "\t\tip saddr {} oifname != \"{g}\" masquerade",
                n.subnet
            );
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

/// Removes `table` whether or not it exists (declaring it first makes the delete safe).
pub fn render_delete(table: &str) -> String {
    format!("table inet {table} {{}}\ndelete table inet {table}\n")
}

#[cfg(test)]
mod tests;
