use super::*;

#[test]
fn command_lines_read_like_a_shell() {
    let c = Cmd::new("ip")
        .args(["link", "del"])
        .arg("wmv123")
        .stdin("x");
    assert_eq!(c.line(), "ip link del wmv123");
    assert_eq!(c.stdin.as_deref(), Some(&b"x"[..]));
}

#[test]
fn mount_paths_are_unescaped_and_listed_deepest_first() {
    let info = "\
22 1 0:20 / / rw - ext4 /dev/vda rw
90 22 0:50 / /data/instances/a/bundle/rootfs rw - overlay overlay rw,lowerdir=/x
91 22 0:51 / /data/instances/a/layer rw - tmpfs tmpfs rw
92 22 0:52 / /data/instances/with\\040space rw - tmpfs tmpfs rw
93 22 0:53 / /elsewhere rw - tmpfs tmpfs rw
";
    assert_eq!(
        mounts_under(info, Path::new("/data/instances")),
        vec![
            PathBuf::from("/data/instances/a/bundle/rootfs"),
            PathBuf::from("/data/instances/a/layer"),
            PathBuf::from("/data/instances/with space"),
        ]
    );
    assert!(mounts_under(info, Path::new("/data/instances/b")).is_empty());
    assert_eq!(unescape_mount_path("a\\011b\\134"), "a\tb\\");
}

#[tokio::test]
async fn run_ok_names_the_command_and_missing_programs() {
    let rec = Recorder::default();
    let fake = FakeRunner::new(rec.clone());
    fake.on(
        "ip link show",
        CmdOutput::failed(1, "Device does not exist\n"),
    );
    let e = run_ok(&fake, &Cmd::new("ip").args(["link", "show", "x"]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`ip link show x` failed (exit code 1): Device does not exist"
    );
    assert!(run_ok(&fake, &Cmd::new("ip").arg("route")).await.is_ok());
    assert_eq!(rec.events(), ["run: ip link show x", "run: ip route"]);

    let e = run_ok(&RealRunner, &Cmd::new("surely-not-a-program-widemesh"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("run scripts/install-runtime-deps"),
        "{e}"
    );
}

#[tokio::test]
async fn the_real_runner_feeds_stdin_and_captures_output() {
    let out = RealRunner
        .run(
            &Cmd::new("sh")
                .args(["-c", "cat; echo err >&2; exit 3"])
                .stdin("in"),
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout_str(), "in");
    assert_eq!(out.stderr_str(), "err");
}

#[tokio::test]
async fn in_netns_wraps_every_program_in_nsenter() {
    let rec = Recorder::default();
    let r = InNetns {
        netns: PathBuf::from("/run/netns/h"),
        inner: FakeRunner::new(rec.clone()),
    };
    r.run(&Cmd::new("nft").args(["-f", "-"]).stdin("table"))
        .await
        .unwrap();
    assert_eq!(
        rec.events(),
        ["run: nsenter --net=/run/netns/h -- nft -f -"]
    );
    assert_eq!(r.inner.last_stdin("nsenter").as_deref(), Some("table"));
}

#[test]
fn the_fake_sys_tracks_mounts_in_mountinfo() {
    let rec = Recorder::default();
    let sys = FakeSys::new(rec.clone());
    sys.mount_tmpfs(Path::new("/d/layer"), 8).unwrap();
    sys.mount_overlay(
        &[PathBuf::from("/l2"), PathBuf::from("/l1")],
        Path::new("/d/layer/upper"),
        Path::new("/d/layer/work"),
        Path::new("/d/rootfs"),
    )
    .unwrap();
    let info = sys.read_file(Path::new("/proc/self/mountinfo")).unwrap();
    assert_eq!(mounts_under(&info, Path::new("/d")).len(), 2);
    sys.unmount(Path::new("/d/rootfs")).unwrap();
    assert_eq!(sys.mounted(), [PathBuf::from("/d/layer")]);
    sys.add_existing("/cg/x");
    assert!(sys.exists(Path::new("/cg/x")));
    sys.remove_dir(Path::new("/cg/x")).unwrap();
    assert!(sys.remove_dir(Path::new("/cg/x")).is_err());
    assert_eq!(
        rec.events(),
        [
            "mount tmpfs /d/layer size=8m",
            "mount overlay /d/rootfs lower=/l2:/l1",
            "umount /d/rootfs",
            "rmdir /cg/x",
            "rmdir /cg/x"
        ]
    );
}
