use super::*;
use crate::hostnet::HostNetKind;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn route(cidr: &str, dev: &str) -> HostNet {
    let (a, p) = cidr.split_once('/').unwrap();
    HostNet {
        network: a.parse().unwrap(),
        prefix: p.parse().unwrap(),
        dev: dev.into(),
        kind: HostNetKind::Route,
    }
}

fn address(cidr: &str, dev: &str) -> HostNet {
    HostNet {
        kind: HostNetKind::Address,
        ..route(cidr, dev)
    }
}

fn taken(pairs: &[(&str, &str)]) -> BTreeMap<String, Ipv4Net> {
    pairs.iter().map(|(e, n)| (e.to_string(), net(n))).collect()
}

#[test]
fn an_empty_host_gets_the_lowest_free_slice() {
    let c = choose(net("10.214.0.0/16"), &taken(&[]), &[]).unwrap();
    assert_eq!(c.subnet, net("10.214.0.0/24"));
    assert!(c.skipped.is_empty());
    let c = choose(
        net("10.214.0.0/16"),
        &taken(&[("shop", "10.214.0.0/24")]),
        &[],
    )
    .unwrap();
    assert_eq!(c.subnet, net("10.214.1.0/24"));
    assert!(c.skipped.is_empty(), "our own subnets are not 'skipped'");
}

#[test]
fn a_route_over_a_slice_skips_it_and_says_which() {
    let host = [route("10.214.0.0/24", "ncx0")];
    let c = choose(net("10.214.0.0/16"), &taken(&[]), &host).unwrap();
    assert_eq!(c.subnet, net("10.214.1.0/24"));
    assert_eq!(c.skipped.len(), 1);
    assert_eq!(
        c.skipped[0].to_string(),
        "10.214.0.0/24 (the host has route 10.214.0.0/24 dev ncx0)"
    );
}

#[test]
fn an_address_inside_a_slice_skips_it() {
    // A /32 (a VPN's point-to-point address) is enough to make the /24 unusable.
    let host = [address("10.214.0.9/32", "wg0")];
    let c = choose(net("10.214.0.0/16"), &taken(&[]), &host).unwrap();
    assert_eq!(c.subnet, net("10.214.1.0/24"));
    assert_eq!(c.skipped[0].because.dev, "wg0");
}

#[test]
fn a_wide_route_covers_many_slices_in_one_run() {
    let host = [route("10.214.0.0/17", "tun0")];
    let c = choose(net("10.214.0.0/16"), &taken(&[]), &host).unwrap();
    assert_eq!(c.subnet, net("10.214.128.0/24"));
    assert_eq!(c.skipped.len(), 1, "{:?}", c.skipped);
    assert_eq!(
        c.skipped[0].to_string(),
        "10.214.0.0/24 to 10.214.127.0/24 (the host has route 10.214.0.0/17 dev tun0)"
    );
}

#[test]
fn free_gaps_are_found_between_host_and_own_slices() {
    let host = [
        route("10.214.0.0/24", "docker0"),
        route("10.214.2.0/23", "vpn"),
    ];
    let c = choose(
        net("10.214.0.0/16"),
        &taken(&[("shop", "10.214.1.0/24")]),
        &host,
    )
    .unwrap();
    assert_eq!(c.subnet, net("10.214.4.0/24"));
    assert_eq!(c.skipped.len(), 2);
    assert_eq!(c.skipped[1].first, net("10.214.2.0/24"));
    assert_eq!(c.skipped[1].last, net("10.214.3.0/24"));
}

#[test]
fn an_exhausted_pool_names_the_pool_and_what_fills_it() {
    let host = [
        route("10.214.0.0/23", "tun0"),
        address("10.214.3.1/24", "docker0"),
    ];
    let e = choose(
        net("10.214.0.0/22"),
        &taken(&[("shop", "10.214.2.0/24"), ("elsewhere", "10.99.0.0/24")]),
        &host,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the subnet pool 10.214.0.0/22 is full: 1 /24s are taken by environments on this server \
         (shop) and 3 by the host (route 10.214.0.0/23 dev tun0; address 10.214.3.1/24 on \
         docker0); remove what holds them or give the agent another --subnet-pool"
    );
}

#[test]
fn a_route_over_the_whole_pool_exhausts_it() {
    let e = choose(
        net("10.214.0.0/16"),
        &taken(&[]),
        &[route("10.0.0.0/8", "corp")],
    )
    .unwrap_err();
    match e {
        PoolError::Exhausted {
            host_count, host, ..
        } => {
            assert_eq!(host_count, 256);
            assert_eq!(host, vec![route("10.0.0.0/8", "corp")]);
        }
        other => panic!("{other:?}"),
    }
}
