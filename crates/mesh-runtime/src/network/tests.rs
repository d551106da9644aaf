use super::*;
use crate::host::{CmdOutput, FakeRunner, Recorder};

fn wiring() -> Wiring {
    Wiring {
        netns: "wm-web-1".into(),
        host_veth: "wmv0123456789".into(),
        bridge: "wmb01234567".into(),
        address: Ipv4Addr::new(10, 231, 1, 21),
        subnet: "10.231.1.0/24".parse().unwrap(),
    }
}

#[tokio::test]
async fn wiring_is_two_batches_with_the_derived_mac() {
    let rec = Recorder::default();
    let fake = FakeRunner::new(rec.clone());
    wire(&fake, &wiring()).await.unwrap();
    assert_eq!(
        rec.events(),
        ["run: ip -batch -", "run: ip -n wm-web-1 -batch -"]
    );
    assert_eq!(
        fake.last_stdin("ip -batch").unwrap(),
        "netns add wm-web-1\n\
         link add wmv0123456789 type veth peer name eth0 address 02:fa:0a:e7:01:15 netns wm-web-1\n\
         link set wmv0123456789 master wmb01234567\n\
         link set wmv0123456789 up\n"
    );
    assert_eq!(
        fake.last_stdin("ip -n").unwrap(),
        "link set lo up\naddr add 10.231.1.21/24 dev eth0\nlink set eth0 up\nroute add default via 10.231.1.1\n"
    );
    assert_eq!(netns_path("wm-web-1"), "/run/netns/wm-web-1");
}

#[tokio::test]
async fn unwiring_deletes_the_veth_before_the_netns_and_tolerates_missing_pieces() {
    let rec = Recorder::default();
    let fake = FakeRunner::new(rec.clone());
    fake.on(
        "ip link del",
        CmdOutput::failed(1, "Cannot find device \"x\""),
    );
    fake.on(
        "ip netns del",
        CmdOutput::failed(1, "Cannot remove namespace file: No such file or directory"),
    );
    unwire(&fake, "wm-web-1", "wmv0123456789").await.unwrap();
    assert_eq!(
        rec.events(),
        [
            "run: ip link del wmv0123456789",
            "run: ip netns del wm-web-1"
        ]
    );
    fake.on(
        "ip netns del",
        CmdOutput::failed(1, "Device or resource busy"),
    );
    assert!(unwire(&fake, "wm-web-1", "wmv0123456789").await.is_err());
}

#[tokio::test]
async fn bridges_are_created_once_and_reasserted() {
    let rec = Recorder::default();
    let fake = FakeRunner::new(rec.clone());
    fake.on(
        "ip link show",
        CmdOutput::failed(1, "Device does not exist"),
    );
    let subnet = "10.231.1.0/24".parse().unwrap();
    ensure_bridge(&fake, "wmbx", subnet).await.unwrap();
    assert_eq!(
        rec.events(),
        [
            "run: ip link show dev wmbx",
            "run: ip link add wmbx address 02:fa:0a:e7:01:01 type bridge",
            "run: ip addr replace 10.231.1.1/24 dev wmbx",
            "run: ip link set wmbx up",
        ]
    );
    rec.clear();
    fake.on("ip link show", CmdOutput::ok(""));
    ensure_bridge(&fake, "wmbx", subnet).await.unwrap();
    assert_eq!(rec.count("run: ip link add"), 0);
}

#[test]
fn iproute_json_names() {
    let links = r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":5,"ifname":"wmb1"}]"#;
    assert_eq!(json_names(links, "ifname"), ["lo", "wmb1"]);
    assert!(json_names("", "name").is_empty());
    assert_eq!(json_names(r#"[{"name":"a","id":0}]"#, "name"), ["a"]);
}
