//! No host privileges: a non-root user with no capabilities, no new privileges, masked and
//! read-only kernel files, read-only name files, limits it cannot raise, Docker's seccomp
//! profile.

use mesh_runtime::{Runtime, User};

use super::support::Fixture;

#[tokio::test]
async fn runs_as_nobody_without_capabilities() {
    let fx = Fixture::new(4).await;
    fx.network("app", 0).await;
    let script = r#"
grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status
echo "nofile=$(ulimit -n)"
echo x >> /etc/hosts 2>/dev/null && echo hosts-writable || echo hosts-readonly
echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo procsys-writable || echo procsys-readonly
head -c 1 /proc/kcore >/dev/null 2>&1 && echo kcore-readable || echo kcore-masked
[ "$(head -c 1 /proc/interrupts | wc -c)" = 0 ] && echo interrupts-masked || echo interrupts-readable
touch /bin/evil 2>/dev/null && echo image-writable || echo image-readonly
mount -t tmpfs none /tmp 2>/dev/null && echo can-mount || echo cannot-mount
"#;
    fx.rt
        .create(&fx.spec("sec", "app", "app-sec", script))
        .await
        .unwrap();
    assert_eq!(
        fx.wait("sec", 10).await.code,
        Some(0),
        "{}",
        fx.stderr("sec")
    );
    let out = fx.stdout("sec");
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534");
    assert_eq!(field("Gid:"), "65534 65534 65534 65534");
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), "0000000000000000", "{cap}");
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    let nofile: u64 = field("nofile=").parse().unwrap_or_else(|_| {
        out.lines()
            .find_map(|l| l.strip_prefix("nofile="))
            .unwrap()
            .parse()
            .unwrap()
    });
    assert!(nofile <= 20_000, "{nofile}");
    for line in [
        "hosts-readonly",
        "procsys-readonly",
        "kcore-masked",
        "interrupts-masked",
        "image-readonly",
        "cannot-mount",
    ] {
        assert!(out.contains(line), "expected {line} in:\n{out}");
    }

    // Root inside keeps only a short capability list, without CAP_SYS_ADMIN or NET_RAW.
    let mut root = fx.spec("root", "app", "app-root", "grep CapEff /proc/self/status");
    root.user = User::ROOT;
    fx.rt.create(&root).await.unwrap();
    assert_eq!(fx.wait("root", 10).await.code, Some(0));
    let eff = fx.stdout("root");
    let mask = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    const CAP_NET_RAW: u64 = 1 << 13;
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_CHOWN: u64 = 1;
    assert_eq!(mask & (CAP_NET_RAW | CAP_SYS_ADMIN), 0, "{eff}");
    assert_ne!(mask & CAP_CHOWN, 0, "{eff}");

    for id in ["sec", "root"] {
        fx.rt.delete(id).await.unwrap();
    }
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}

/// Tried from inside, as a hostile tenant would: the seccomp filter is on for the instance's
/// process and for what `exec` starts, user (and other) namespaces cannot be made, `adjtimex`
/// (which only reads the clock without arguments; nothing here tries to set it, so a broken
/// sandbox cannot change the test machine's clock) is denied; ordinary programs still work.
#[tokio::test]
async fn seccomp_denies_namespaces_and_the_clock_and_leaves_ordinary_calls() {
    let fx = Fixture::new(19).await;
    fx.network("app", 0).await;
    let probe = r#"
grep '^Seccomp:' /proc/self/status
grep '^Seccomp:' /proc/1/status | sed 's/^/init-/'
unshare -U true 2>/dev/null && echo userns-made || echo userns-denied
unshare -Urm true 2>/dev/null && echo userns-mount-made || echo userns-mount-denied
unshare -n true 2>/dev/null && echo netns-made || echo netns-denied
adjtimex >/dev/null 2>&1 && echo adjtimex-ok || echo adjtimex-denied
# Ordinary things: fork and exec, pipes, files, background jobs, time.
echo "files=$(ls / | wc -l)"
(sleep 0.1; exit 3) & wait $!; echo "child=$?"
echo hello > /tmp/f && cat /tmp/f && rm /tmp/f
date +%s >/dev/null && echo date-ok
"#;
    for (id, user) in [("nobody", User::NOBODY), ("root", User::ROOT)] {
        let mut spec = fx.spec(id, "app", &format!("app-{id}"), "exec sleep 60");
        spec.user = user;
        fx.rt.create(&spec).await.unwrap();
        let out = fx.sh(id, probe).await;
        let text = out.stdout_str();
        assert_eq!(out.code, 0, "{id}: {text}{}", out.stderr_str());
        for line in [
            "Seccomp:\t2",
            "init-Seccomp:\t2",
            "userns-denied",
            "userns-mount-denied",
            "netns-denied",
            "adjtimex-denied",
            "child=3",
            "hello",
            "date-ok",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{id}: expected {line:?} in:\n{text}"
            );
        }
        let files: u32 = text
            .lines()
            .find_map(|l| l.strip_prefix("files="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(files > 5, "{id}: {text}");
        fx.rt.delete(id).await.unwrap();
    }
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}
