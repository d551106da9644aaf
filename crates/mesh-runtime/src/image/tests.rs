use super::*;
use crate::host::{CmdOutput, FakeRunner, Recorder};

/// A minimal ELF64 header with `phnum` program headers of the given types.
fn elf(types: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56 * types.len()];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
    for (i, t) in types.iter().enumerate() {
        b[64 + 56 * i..64 + 56 * i + 4].copy_from_slice(&t.to_le_bytes());
    }
    b
}

#[test]
fn static_and_dynamic_elves() {
    assert_eq!(elf_interpreter(&elf(&[1, 1, 4])), Some(false));
    assert_eq!(elf_interpreter(&elf(&[6, 3, 1])), Some(true));
    assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
    let mut truncated = elf(&[1, 3]);
    truncated.truncate(80);
    assert_eq!(elf_interpreter(&truncated), None);
}

#[tokio::test]
async fn busybox_images_are_built_once_with_links() {
    let dir = tempfile::tempdir().unwrap();
    let bb = dir.path().join("busybox");
    std::fs::write(&bb, elf(&[1])).unwrap();
    let rec = Recorder::default();
    let fake = FakeRunner::new(rec.clone());
    fake.on(
        format!("{} --help", bb.display()),
        CmdOutput::ok("BusyBox v1.35.0 (Debian 1:1.35.0-4+b1) multi-call binary.\nmore"),
    );
    fake.on(
        format!("{} --list", bb.display()),
        CmdOutput::ok("sh\nls\nbusybox\nhttpd\n"),
    );
    let dest = dir.path().join("images/busybox");
    let image = busybox_image_from(&fake, &bb, &dest).await.unwrap();
    assert_eq!(image.layers, [dest.join("rootfs")]);
    let root = dest.join("rootfs");
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(root.join("bin/httpd").is_symlink());
    assert!(root.join("bin/busybox").is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert!(
        std::fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .contains("nobody:x:65534")
    );
    let record: ImageRecord = read_json(&record_path(&dest)).unwrap().unwrap();
    assert_eq!(record.kind, "busybox");
    assert!(record.version.starts_with("BusyBox v1.35.0"));
    // No temporary directory is left beside it.
    assert_eq!(
        std::fs::read_dir(dir.path().join("images"))
            .unwrap()
            .count(),
        1
    );

    // A second call reuses it without listing applets again.
    rec.clear();
    busybox_image_from(&fake, &bb, &dest).await.unwrap();
    assert_eq!(rec.count(&format!("run: {} --list", bb.display())), 0);
}

#[tokio::test]
async fn a_dynamic_busybox_or_a_foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bb = dir.path().join("busybox");
    std::fs::write(&bb, elf(&[3])).unwrap();
    let fake = FakeRunner::new(Recorder::default());
    let e = busybox_image_from(&fake, &bb, &dir.path().join("img"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("busybox-static"), "{e}");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(foreign.join("stuff")).unwrap();
    std::fs::write(&bb, elf(&[1])).unwrap();
    let e = busybox_image_from(&fake, &bb, &foreign).await.unwrap_err();
    assert!(
        e.to_string().contains("not an image made by widemesh"),
        "{e}"
    );
    assert!(foreign.join("stuff").exists());
}

const DEB822: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
";

#[test]
fn mirrors_come_from_either_apt_format() {
    let files = vec![
        (
            "/etc/apt/sources.list".to_string(),
            "# nothing\n".to_string(),
        ),
        (
            "/etc/apt/sources.list.d/cloud.list".to_string(),
            "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n".to_string(),
        ),
        (
            "/etc/apt/sources.list.d/debian.sources".to_string(),
            DEB822.to_string(),
        ),
    ];
    assert_eq!(
        apt_mirror("bookworm", &files).as_deref(),
        Some("http://deb.debian.org/debian")
    );
    assert_eq!(
        apt_mirror("bookworm-security", &files).as_deref(),
        Some("http://deb.debian.org/debian-security")
    );
    assert_eq!(apt_mirror("trixie", &files), None);
    let list = vec![(
        "/etc/apt/sources.list".to_string(),
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
            .to_string(),
    )];
    assert_eq!(
        apt_mirror("bookworm", &list).as_deref(),
        Some("http://mirror.example/debian")
    );
}

#[tokio::test]
async fn the_base_image_runs_debootstrap_once_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("base-bookworm");
    let rec = Recorder::default();
    let fake = FakeRunner::new(rec.clone());
    let sources = vec![(
        "/etc/apt/sources.list.d/debian.sources".to_string(),
        DEB822.to_string(),
    )];
    let opts = BaseImageOptions::default();

    fake.on(
        "debootstrap",
        CmdOutput::failed(1, "E: Failed getting release file"),
    );
    let e = base_image_with(&fake, &dest, &opts, &sources)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Failed getting release file"), "{e}");
    assert!(
        e.to_string().contains("http://deb.debian.org/debian"),
        "{e}"
    );
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temp dirs are removed"
    );

    fake.on(
        "debootstrap",
        CmdOutput::ok("I: Base system installed successfully."),
    );
    let image = base_image_with(&fake, &dest, &opts, &sources)
        .await
        .unwrap();
    assert_eq!(image.layers, [dest.join("rootfs")]);
    let line = rec
        .events()
        .into_iter()
        .rfind(|e| e.contains("debootstrap"))
        .unwrap();
    assert!(
        line.starts_with("run: debootstrap --variant=minbase bookworm "),
        "{line}"
    );
    assert!(
        line.ends_with("/rootfs http://deb.debian.org/debian"),
        "{line}"
    );
    let record: ImageRecord = read_json(&record_path(&dest)).unwrap().unwrap();
    assert_eq!(
        record.source,
        "http://deb.debian.org/debian bookworm minbase"
    );

    rec.clear();
    base_image_with(&fake, &dest, &opts, &sources)
        .await
        .unwrap();
    assert_eq!(rec.count("run: debootstrap"), 0, "cached");
    let other = BaseImageOptions {
        suite: "trixie".into(),
        ..BaseImageOptions::default()
    };
    assert!(
        base_image_with(&fake, &dest, &other, &sources)
            .await
            .is_err()
    );
}
