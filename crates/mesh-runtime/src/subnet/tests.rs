use super::*;

#[test]
fn parses_and_derives_addresses() {
    let n: Ipv4Net = "10.231.7.0/24".parse().unwrap();
    assert_eq!(n.to_string(), "10.231.7.0/24");
    assert_eq!(n.gateway(), Ipv4Addr::new(10, 231, 7, 1));
    assert_eq!(n.broadcast(), Ipv4Addr::new(10, 231, 7, 255));
    assert_eq!(n.instance_capacity(), 253);
    assert_eq!(n.instance_address(0), Some(Ipv4Addr::new(10, 231, 7, 2)));
    assert_eq!(
        n.instance_address(252),
        Some(Ipv4Addr::new(10, 231, 7, 254))
    );
    assert_eq!(n.instance_address(253), None);
    assert_eq!(n.instance_index(Ipv4Addr::new(10, 231, 7, 254)), Some(252));
    assert_eq!(n.instance_index(Ipv4Addr::new(10, 231, 7, 1)), None);
    assert_eq!(n.instance_index(Ipv4Addr::new(10, 231, 7, 255)), None);
    assert_eq!(n.instance_index(Ipv4Addr::new(10, 231, 8, 2)), None);
}

#[test]
fn refuses_bad_input_with_a_hint() {
    let e = "10.1.2.3/24".parse::<Ipv4Net>().unwrap_err();
    assert!(e.contains("did you mean 10.1.2.0/24"), "{e}");
    assert!("10.1.2.0".parse::<Ipv4Net>().is_err());
    assert!("10.1.2.0/31".parse::<Ipv4Net>().is_err());
    assert!("10.1.2.0/8".parse::<Ipv4Net>().is_err());
    assert!("x/24".parse::<Ipv4Net>().is_err());
}

#[test]
fn overlap_and_serde() {
    let a: Ipv4Net = "10.0.0.0/16".parse().unwrap();
    let b: Ipv4Net = "10.0.5.0/24".parse().unwrap();
    let c: Ipv4Net = "10.1.0.0/24".parse().unwrap();
    assert!(a.overlaps(&b) && b.overlaps(&a));
    assert!(!a.overlaps(&c));
    let json = serde_json::to_string(&b).unwrap();
    assert_eq!(json, "\"10.0.5.0/24\"");
    assert_eq!(serde_json::from_str::<Ipv4Net>(&json).unwrap(), b);
    assert!(serde_json::from_str::<Ipv4Net>("\"10.0.5.1/24\"").is_err());
}
