use super::*;

fn net(bridge: &str, subnet: &str, egress: bool) -> NftNetwork {
    NftNetwork {
        bridge: bridge.into(),
        subnet: subnet.parse().unwrap(),
        egress,
        dns: None,
    }
}

#[test]
fn no_networks_only_removes_the_table() {
    assert_eq!(
        render("wm", "wmb*", &[]),
        "table inet wm {}\ndelete table inet wm\n"
    );
}

#[test]
fn two_isolated_environments() {
    let text = render(
        "widemesh",
        "wmb*",
        &[
            net("wmba", "10.1.1.0/24", false),
            net("wmbb", "10.1.2.0/24", false),
        ],
    );
    let expected = "\
table inet widemesh {}
delete table inet widemesh
table inet widemesh {
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname \"wmba\" oifname \"wmba\" accept
\t\tiifname \"wmba\" ip daddr 169.254.0.0/16 drop
\t\tiifname \"wmba\" oifname \"wmb*\" drop
\t\tiifname \"wmba\" drop
\t\toifname \"wmba\" ct state established,related accept
\t\toifname \"wmba\" drop
\t\tiifname \"wmbb\" oifname \"wmbb\" accept
\t\tiifname \"wmbb\" ip daddr 169.254.0.0/16 drop
\t\tiifname \"wmbb\" oifname \"wmb*\" drop
\t\tiifname \"wmbb\" drop
\t\toifname \"wmbb\" ct state established,related accept
\t\toifname \"wmbb\" drop
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname \"wmb*\" ct state established,related accept
\t\tiifname \"wmb*\" drop
\t}
}
";
    assert_eq!(text, expected);
}

#[test]
fn egress_masquerades_and_dns_on_the_gateway_is_let_in() {
    let mut a = net("wmba", "10.1.1.0/24", true);
    a.dns = Some("10.1.1.1".parse().unwrap());
    let mut b = net("wmbb", "10.1.2.0/24", false);
    b.dns = Some("10.9.9.9".parse().unwrap());
    let text = render("t", "wmb*", &[a, b]);
    assert!(!text.contains("iifname \"wmba\" drop\n"), "{text}");
    // With egress too, no instance reaches the cloud's metadata service.
    assert!(
        text.contains("iifname \"wmba\" ip daddr 169.254.0.0/16 drop\n"),
        "{text}"
    );
    assert!(text.contains("iifname \"wmbb\" drop\n"), "{text}");
    assert!(text.contains("iifname \"wmba\" ip daddr 10.1.1.1 udp dport 53 accept"));
    assert!(text.contains("iifname \"wmba\" ip daddr 10.1.1.1 tcp dport 53 accept"));
    assert!(
        !text.contains("10.9.9.9"),
        "a resolver off the gateway needs no input rule"
    );
    assert!(text.contains(
        "type nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 10.1.1.0/24 oifname != \"wmb*\" masquerade\n"
    ));
    assert!(!text.contains("10.1.2.0/24"));
    // The input accept for DNS must come before the drop.
    assert!(text.find("dport 53").unwrap() < text.find("iifname \"wmb*\" drop").unwrap());
}
