use super::*;

/// Trimmed from `ip -j -4 route show table all` on a host with a leftover bridge and a VPN.
const ROUTES: &str = r#"[
 {"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
 {"dst":"0.0.0.0/1","gateway":"10.8.0.1","dev":"tun0","flags":[]},
 {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
 {"dst":"10.214.0.0/16","dev":"tun0","scope":"link","flags":[]},
 {"type":"local","dst":"10.231.4.1","dev":"oldbr","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.231.4.1","flags":[]},
 {"type":"unreachable","dst":"172.16.0.0/12","flags":[]}
]"#;

const ADDRS: &str = r#"[
 {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
 {"ifindex":7,"ifname":"docker0","operstate":"DOWN","addr_info":[
   {"family":"inet","local":"172.17.0.1","prefixlen":16},
   {"family":"inet6","local":"fe80::1","prefixlen":64}]},
 {"ifindex":8,"ifname":"ncx0","addr_info":[]}
]"#;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

#[test]
fn routes_keep_every_table_but_drop_catch_alls() {
    let r = parse_routes(ROUTES);
    let shown: Vec<String> = r.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "route 192.0.2.0/24 dev eth0",
            "route 10.214.0.0/16 dev tun0",
            "route 10.231.4.1/32 dev oldbr",
            "route 172.16.0.0/12",
        ]
    );
}

#[test]
fn addresses_are_ipv4_only_and_count_on_down_links() {
    let a = parse_addrs(ADDRS);
    let shown: Vec<String> = a.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "address 127.0.0.1/8 on lo",
            "address 172.17.0.1/16 on docker0"
        ]
    );
    assert!(a[1].overlaps(&net("172.17.200.0/24")));
}

#[test]
fn overlap_works_both_ways_and_at_the_edges() {
    let wide = HostNet {
        network: Ipv4Addr::new(10, 214, 0, 0),
        prefix: 16,
        dev: "tun0".into(),
        kind: HostNetKind::Route,
    };
    assert!(wide.overlaps(&net("10.214.0.0/24")));
    assert!(wide.overlaps(&net("10.214.255.0/24")));
    assert!(!wide.overlaps(&net("10.215.0.0/24")));
    assert!(!wide.overlaps(&net("10.213.255.0/24")));
    let host = HostNet {
        network: Ipv4Addr::new(10, 214, 3, 77),
        prefix: 32,
        dev: "wg0".into(),
        kind: HostNetKind::Address,
    };
    assert!(host.overlaps(&net("10.214.3.0/24")));
    assert!(host.overlaps(&net("10.214.0.0/16")));
    assert!(!host.overlaps(&net("10.214.4.0/24")));
}

#[test]
fn garbage_reads_as_nothing() {
    assert!(parse_routes("").is_empty());
    assert!(parse_addrs("not json").is_empty());
    assert!(parse_routes(r#"[{"dst":"fd00::/64"},{"dst":"10.0.0.0/99"}]"#).is_empty());
}
