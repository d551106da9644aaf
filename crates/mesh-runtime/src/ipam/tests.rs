use std::collections::HashMap;

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

#[test]
fn next_fit_skips_the_gateway_and_reuses_late() {
    let mut ipam = Ipam::new(net("10.9.0.0/29"));
    // /29: .0 network, .1 gateway, .2-.6 instances, .7 broadcast.
    let got: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|o| ipam.allocate(o).unwrap().octets()[3])
        .collect();
    assert_eq!(got, [2, 3, 4]);
    assert_eq!(ipam.release("a"), Some(Ipv4Addr::new(10, 9, 0, 2)));
    // .2 is free again but the search goes on from .5 first.
    assert_eq!(ipam.allocate("d").unwrap().octets()[3], 5);
    assert_eq!(ipam.allocate("e").unwrap().octets()[3], 6);
    assert_eq!(ipam.allocate("f").unwrap().octets()[3], 2);
    assert_eq!(ipam.allocate("g"), Err(IpamError::Exhausted));
    assert_eq!(ipam.len(), 5);
}

#[test]
fn allocation_is_idempotent_per_owner() {
    let mut ipam = Ipam::new(net("10.9.0.0/24"));
    let a = ipam.allocate("a").unwrap();
    assert_eq!(ipam.allocate("a").unwrap(), a);
    assert_eq!(ipam.len(), 1);
    assert_eq!(ipam.release("nobody"), None);
}

#[test]
fn reservations_are_checked() {
    let mut ipam = Ipam::new(net("10.9.0.0/24"));
    let a = Ipv4Addr::new(10, 9, 0, 50);
    ipam.reserve(a, "a").unwrap();
    ipam.reserve(a, "a").unwrap();
    assert_eq!(
        ipam.reserve(a, "b"),
        Err(IpamError::InUse { owner: "a".into() })
    );
    for bad in [[10, 9, 0, 1], [10, 9, 0, 0], [10, 9, 0, 255], [10, 9, 1, 5]] {
        assert_eq!(
            ipam.reserve(Ipv4Addr::from(bad), "b"),
            Err(IpamError::OutsideSubnet),
            "{bad:?}"
        );
    }
    // Moving an owner frees its old address.
    ipam.reserve(Ipv4Addr::new(10, 9, 0, 51), "a").unwrap();
    assert_eq!(ipam.owner(a), None);
    assert_eq!(ipam.len(), 1);
}

/// A long random walk of allocate/reserve/release against a model: no address is ever held
/// by two owners, and allocation fails only when the subnet is full.
#[test]
fn never_hands_out_an_address_in_use() {
    let subnet = net("10.9.0.0/27");
    let mut ipam = Ipam::new(subnet);
    let mut model: HashMap<String, Ipv4Addr> = HashMap::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..20_000 {
        let owner = format!("i{}", rand(40));
        match rand(3) {
            0 => match ipam.allocate(&owner) {
                Ok(a) => {
                    if let Some(prev) = model.get(&owner) {
                        assert_eq!(*prev, a, "step {step}");
                    }
                    model.insert(owner, a);
                }
                Err(IpamError::Exhausted) => {
                    assert!(!model.contains_key(&owner));
                    assert_eq!(model.len() as u32, subnet.instance_capacity());
                }
                Err(e) => panic!("step {step}: {e:?}"),
            },
            1 => {
                let a = subnet.instance_address(rand(29) as u32).unwrap();
                let holder = model.iter().find(|(_, v)| **v == a).map(|(k, _)| k.clone());
                match (ipam.reserve(a, &owner), holder) {
                    (Ok(()), None) => {
                        model.insert(owner, a);
                    }
                    (Ok(()), Some(h)) => assert_eq!(h, owner),
                    (Err(IpamError::InUse { owner: o }), Some(h)) => assert_eq!(o, h),
                    (r, h) => panic!("step {step}: {r:?} with holder {h:?}"),
                }
            }
            _ => assert_eq!(ipam.release(&owner), model.remove(&owner)),
        }
        let mut seen = std::collections::HashSet::new();
        for a in model.values() {
            assert!(seen.insert(*a), "step {step}: {a} held twice");
            assert!(subnet.instance_index(*a).is_some());
        }
        assert_eq!(ipam.len(), model.len());
    }
}

#[test]
fn survives_a_json_round_trip() {
    let mut ipam = Ipam::new(net("10.9.0.0/24"));
    ipam.allocate("a").unwrap();
    let back: Ipam = serde_json::from_str(&serde_json::to_string(&ipam).unwrap()).unwrap();
    assert_eq!(back, ipam);
}
