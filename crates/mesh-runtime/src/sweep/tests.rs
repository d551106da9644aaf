use super::*;

fn names() -> Names {
    Names::new("nc", "widemesh_nc", "widemesh_nc").unwrap()
}

fn set(items: &[String]) -> BTreeSet<String> {
    items.iter().cloned().collect()
}

fn link(name: &str, kind: &str) -> (String, String) {
    (name.to_string(), kind.to_string())
}

/// A runtime that, after a restart, has one running instance `web-1` of environment `shop`
/// (records on disk, so the agent adopts it) and finds leftovers of a crashed create `web-9`
/// and of an environment removed while it was down.
fn restart() -> (Owned, Seen, PathBuf) {
    let n = names();
    let root = PathBuf::from("/data/runtime/instances");
    let owned = Owned {
        instances: set(&["web-1".into()]),
        links: set(&[n.bridge("shop"), n.host_veth("web-1")]),
        netns: set(&[n.netns("web-1")]),
    };
    let seen = Seen {
        links: vec![
            link("eth0", ""),
            link(&n.bridge("shop"), "bridge"),
            link(&n.host_veth("web-1"), "veth"),
            link(&n.bridge("gone"), "bridge"),
            link(&n.host_veth("web-9"), "veth"),
            // Foreign: another prefix, a dummy, docker.
            link("ncx0", "dummy"),
            link("docker0", "bridge"),
        ],
        netns: vec![n.netns("web-1"), n.netns("web-9"), "ncx-web-9".into()],
        containers: vec!["web-1".into(), "web-9".into()],
        instance_dirs: vec!["web-1".into(), "web-9".into()],
        mounts: vec![
            root.join("web-1/bundle/rootfs"),
            root.join("web-9/bundle/rootfs"),
            root.join("web-9/layer"),
        ],
        cgroups: vec![
            PathBuf::from("/sys/fs/cgroup/memory/widemesh_nc/web-1"),
            PathBuf::from("/sys/fs/cgroup/memory/widemesh_nc/web-9"),
        ],
        addresses: vec![
            ("shop".into(), "web-1".into(), Ipv4Addr::new(10, 214, 0, 2)),
            ("shop".into(), "web-9".into(), Ipv4Addr::new(10, 214, 0, 3)),
        ],
    };
    (owned, seen, root)
}

#[test]
fn leftovers_of_a_crash_go_in_a_safe_order() {
    let n = names();
    let (owned, seen, root) = restart();
    let got = leftovers(&n, &root, &owned, &seen);
    assert_eq!(
        got,
        vec![
            Leftover::Container { id: "web-9".into() },
            Leftover::Link {
                name: n.host_veth("web-9"),
                kind: "veth".into()
            },
            Leftover::Link {
                name: n.bridge("gone"),
                kind: "bridge".into()
            },
            Leftover::Netns {
                name: n.netns("web-9")
            },
            Leftover::Address {
                environment: "shop".into(),
                owner: "web-9".into(),
                address: Ipv4Addr::new(10, 214, 0, 3)
            },
            // Deepest first.
            Leftover::Mount {
                path: root.join("web-9/bundle/rootfs")
            },
            Leftover::Mount {
                path: root.join("web-9/layer")
            },
            Leftover::InstanceDir {
                path: root.join("web-9")
            },
            Leftover::Cgroup {
                path: PathBuf::from("/sys/fs/cgroup/memory/widemesh_nc/web-9")
            },
        ]
    );
}

#[test]
fn an_adopted_instance_keeps_everything() {
    let n = names();
    let (owned, seen, root) = restart();
    let got = leftovers(&n, &root, &owned, &seen);
    let text: Vec<String> = got.iter().map(ToString::to_string).collect();
    for kept in [
        n.bridge("shop"),
        n.host_veth("web-1"),
        n.netns("web-1"),
        "web-1".to_string(),
    ] {
        assert!(
            !text.iter().any(|t| t.contains(&kept)),
            "{kept} would be removed: {text:#?}"
        );
    }
}

#[test]
fn foreign_names_are_never_touched() {
    let n = names();
    let other = Names::new("ncx", "t", "t").unwrap();
    let build_like = Names::new("ncv", "t", "t").unwrap();
    let seen = Seen {
        links: vec![
            link("ncx0", "dummy"),
            link(&other.bridge("shop"), "bridge"),
            link(&other.host_veth("a"), "veth"),
            // Prefix `ncv`'s bridge has the shape of prefix `nc`'s veth (`ncv` + 9 hex):
            // only its kind tells them apart.
            link(&build_like.bridge("shop"), "bridge"),
            // Shapes of ours but another kind: someone else's.
            link(&n.bridge("x"), "dummy"),
            link(&n.host_veth("x"), "bridge"),
            link("nc", ""),
            link("ncb", "bridge"),
        ],
        netns: vec!["ncx-a".into(), "nc".into(), "ncfoo".into(), "wm-a".into()],
        mounts: vec![PathBuf::from("/data/elsewhere/instances/a/rootfs")],
        ..Seen::default()
    };
    assert!(n.link_role(&build_like.bridge("shop")).is_some());
    let got = leftovers(
        &n,
        Path::new("/data/runtime/instances"),
        &Owned::default(),
        &seen,
    );
    assert!(got.is_empty(), "{got:#?}");
}

#[test]
fn the_log_line_says_what_and_why() {
    let l = Leftover::Link {
        name: "ncb0123abcd".into(),
        kind: "bridge".into(),
    };
    assert_eq!(
        l.to_string(),
        "bridge ncb0123abcd (no network or instance record names it)"
    );
}

#[test]
fn a_build_sandbox_veth_is_not_a_default_prefix_bridge() {
    // Builds name their host veth `wmb` + 8 hex, the shape of a bridge of prefix `wm`.
    let wm = Names::new("wm", "widemesh", "widemesh").unwrap();
    let seen = Seen {
        links: vec![link("wmb0badf00d", "veth")],
        ..Seen::default()
    };
    let got = leftovers(&wm, Path::new("/x"), &Owned::default(), &seen);
    assert!(got.is_empty(), "{got:#?}");
}
