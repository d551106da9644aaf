use super::*;

/// The hybrid layout of this kind of host (trimmed from a real `/proc/self/mountinfo`).
pub(crate) const HYBRID: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 22 0:21 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755
26 25 0:22 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
27 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,xattr,name=systemd
28 25 0:24 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
29 25 0:25 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
30 25 0:26 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpuacct
31 25 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
";

#[test]
fn hybrid_hosts_use_v1_files() {
    let m = CgroupMounts::parse(HYBRID);
    assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
    assert_eq!(m.v1.len(), 5);
    assert_eq!(
        m.oom_file("/wm/web-1").unwrap(),
        Path::new("/sys/fs/cgroup/memory/wm/web-1/memory.oom_control")
    );
    assert_eq!(
        m.dir("pids", "/wm/web-1").unwrap(),
        Path::new("/sys/fs/cgroup/pids/wm/web-1")
    );
    assert_eq!(
        m.dir("name=systemd", "/wm").unwrap(),
        Path::new("/sys/fs/cgroup/systemd/wm")
    );
    // hugetlb lives in the unified hierarchy here.
    assert_eq!(
        m.dir("hugetlb", "/wm").unwrap(),
        Path::new("/sys/fs/cgroup/unified/wm")
    );
    let all = m.all_dirs("wm");
    assert_eq!(all.len(), 6);
    assert!(all.contains(&PathBuf::from("/sys/fs/cgroup/unified/wm")));
    assert!(all.contains(&PathBuf::from("/sys/fs/cgroup/cpuacct/wm")));
}

#[test]
fn pure_v2_hosts_use_memory_events() {
    let m = CgroupMounts::parse(
        "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
    );
    assert!(m.v1.is_empty());
    assert_eq!(
        m.oom_file("/wm/a").unwrap(),
        Path::new("/sys/fs/cgroup/wm/a/memory.events")
    );
    assert_eq!(
        m.dir("cpu", "/wm/a").unwrap(),
        Path::new("/sys/fs/cgroup/wm/a")
    );
    assert_eq!(m.all_dirs("/wm"), [PathBuf::from("/sys/fs/cgroup/wm")]);
}

#[test]
fn no_cgroups_no_paths() {
    let m = CgroupMounts::parse("22 1 254:0 / / rw - ext4 /dev/vda rw\n");
    assert_eq!(m.oom_file("/wm/a"), None);
    assert!(m.all_dirs("wm").is_empty());
}
