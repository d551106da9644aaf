use std::os::unix::fs::MetadataExt;

use super::*;

#[test]
fn hosts_lists_localhost_self_and_peers_once() {
    let me = Ipv4Addr::new(10, 1, 0, 2);
    let peer = Ipv4Addr::new(10, 1, 0, 3);
    let text = render_hosts(
        "app-web",
        me,
        &[
            HostEntry::new("app-worker", peer),
            HostEntry::new("app-worker", peer),
            HostEntry::new("app-web", me),
            HostEntry::new("app-web", Ipv4Addr::new(10, 1, 0, 4)),
        ],
    );
    assert_eq!(
        text,
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         10.1.0.2\tapp-web\n10.1.0.3\tapp-worker\n10.1.0.4\tapp-web\n"
    );
}

#[test]
fn resolv_fails_fast() {
    assert_eq!(
        render_resolv(None),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
    );
    assert!(render_resolv(Some(Ipv4Addr::new(10, 1, 0, 1))).starts_with("nameserver 10.1.0.1\n"));
}

#[test]
fn rewrites_keep_the_inode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts");
    std::fs::write(&p, "a much longer first version\n").unwrap();
    let ino = std::fs::metadata(&p).unwrap().ino();
    rewrite_in_place(&p, "short\n").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "short\n");
    assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
}
