use super::*;

fn names() -> Names {
    Names::new("wm", "widemesh", "widemesh").unwrap()
}

#[test]
fn interface_names_fit_the_kernel_limit() {
    let long = Names::new("abcde", "t", "c").unwrap();
    let id = "x".repeat(63);
    assert!(long.bridge(&id).len() <= 15);
    assert!(long.host_veth(&id).len() <= 15);
    assert_eq!(long.bridge("shop").len(), 14);
    assert_eq!(long.host_veth("shop").len(), 15);
}

#[test]
fn names_are_stable_and_distinct() {
    let n = names();
    assert_eq!(n.bridge("shop"), n.bridge("shop"));
    assert_ne!(n.bridge("shop"), n.bridge("shop2"));
    assert_ne!(n.host_veth("a"), n.host_veth("b"));
    assert_eq!(n.netns("web-1"), "wm-web-1");
    assert_eq!(n.cgroups_path("web-1"), "/widemesh/web-1");
    assert_eq!(n.bridge_glob(), "wmb*");
    // FNV-1a of "" is the offset basis: pins the hash so names survive upgrades.
    assert_eq!(hex(""), "cbf29ce484222325");
}

#[test]
fn ownership_is_by_exact_shape() {
    let n = names();
    assert!(n.owns_link(&n.bridge("shop")));
    assert!(n.owns_link(&n.host_veth("web-1")));
    assert!(!n.owns_link("eth0"));
    assert!(!n.owns_link("wmbx"));
    let other = Names::new("wmb", "t", "c").unwrap();
    assert!(!n.owns_link(&other.bridge("shop")));
    assert!(!n.owns_link(&other.host_veth("web-1")));
    assert_eq!(n.netns_instance("wm-web-1"), Some("web-1"));
    assert_eq!(n.netns_instance("wmx-web-1"), None);
}

#[test]
fn bad_names_are_refused() {
    assert!(Names::new("", "t", "c").is_err());
    assert!(Names::new("toolong", "t", "c").is_err());
    assert!(Names::new("1a", "t", "c").is_err());
    assert!(Names::new("w-m", "t", "c").is_err());
    assert!(Names::new("wm", "a b", "c").is_err());
    assert!(Names::new("wm", "t", "../x").is_err());
}

#[test]
fn macs_come_from_addresses() {
    assert_eq!(mac_for(Ipv4Addr::new(10, 231, 1, 21)), "02:fa:0a:e7:01:15");
}
