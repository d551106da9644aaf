use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use tar::{EntryType, Header};

use super::*;
use crate::blobs::BlobDir;
use crate::untar::UntarError;
use crate::untar::tests::raw;

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

fn tar_of(entries: &[(&str, EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        raw(&mut b, name, *kind, data, link);
    }
    b.into_inner().unwrap()
}

fn unpack_bytes(
    bytes: &[u8],
    limits: &UnpackLimits,
) -> (tempfile::TempDir, Result<LayerStats, LayerError>) {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob");
    fs::write(&blob, bytes).unwrap();
    let r = unpack_layer_with(&blob, &dir.path().join("out"), limits);
    (dir, r)
}

fn refused(bytes: &[u8], want: &str) {
    let (dir, r) = unpack_bytes(bytes, &UnpackLimits::default());
    let err = r.expect_err("must be refused").to_string();
    assert!(err.contains(want), "{err:?} should say {want:?}");
    // Neither the destination nor a staging directory is left.
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["blob"], "leftovers after a refusal");
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("bin")).unwrap();
    fs::write(d.path().join("bin/tool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        d.path().join("bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::write(d.path().join("readme"), "hi").unwrap();
    fs::hard_link(d.path().join("readme"), d.path().join("readme2")).unwrap();
    symlink("/bin/tool", d.path().join("abs-link")).unwrap();
    fs::create_dir_all(d.path().join("cache/deep")).unwrap();
    fs::write(d.path().join("cache/deep/x"), "x").unwrap();
    d
}

#[test]
fn packing_is_deterministic_and_follows_the_content() {
    let t = tree();
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = BlobDir::new(blobs_dir.path());
    let opts = PackOptions::default();
    let a = pack_layer(t.path(), &opts, &blobs).unwrap();
    // Modification times do not count.
    fs::write(t.path().join("readme"), "hi").unwrap();
    assert_eq!(pack_layer(t.path(), &opts, &blobs).unwrap(), a);
    fs::write(t.path().join("readme"), "changed").unwrap();
    assert_ne!(pack_layer(t.path(), &opts, &blobs).unwrap(), a);
    assert!(blobs.contains(&a));
}

#[test]
fn pack_options_place_own_and_exclude() {
    let t = tree();
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = BlobDir::new(blobs_dir.path());
    let opts = PackOptions {
        prefix: Some("srv/app".into()),
        owner: Some((65534, 65534)),
        exclude: vec!["cache".into()],
        keep_whiteouts: false,
    };
    let d = pack_layer(t.path(), &opts, &blobs).unwrap();
    let bytes = blobs.read(&d).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut names = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().uid().unwrap(), 65534);
        assert_eq!(e.header().mtime().unwrap(), PACK_MTIME);
        names.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(
        names,
        [
            "srv/",
            "srv/app/",
            "srv/app/abs-link",
            "srv/app/bin/",
            "srv/app/bin/tool",
            "srv/app/readme",
            "srv/app/readme2"
        ]
    );
    assert!(
        pack_layer(
            t.path(),
            &PackOptions {
                prefix: Some("../x".into()),
                ..Default::default()
            },
            &blobs
        )
        .is_err()
    );
}

#[test]
fn a_packed_tree_unpacks_to_the_same_tree() {
    let t = tree();
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = BlobDir::new(blobs_dir.path());
    let d = pack_layer(t.path(), &PackOptions::default(), &blobs).unwrap();
    let out = blobs_dir.path().join("out");
    let stats = unpack_layer(&blobs.path(&d).unwrap(), &out).unwrap();
    assert_eq!(
        (stats.files, stats.hardlinks, stats.symlinks, stats.dirs),
        (3, 1, 1, 3)
    );
    assert_eq!(fs::read_to_string(out.join("cache/deep/x")).unwrap(), "x");
    assert_eq!(
        fs::read_link(out.join("abs-link")).unwrap(),
        Path::new("/bin/tool")
    );
    let tool = fs::metadata(out.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    let (r1, r2) = (
        fs::metadata(out.join("readme")).unwrap(),
        fs::metadata(out.join("readme2")).unwrap(),
    );
    assert_eq!(r1.ino(), r2.ino());
    // A destination that exists is never overwritten.
    assert!(matches!(
        unpack_layer(&blobs.path(&d).unwrap(), &out),
        Err(LayerError::Unpack(UntarError::DestinationExists(_)))
    ));
}

#[test]
fn owners_are_kept_when_root() {
    if !is_root() {
        return;
    }
    let t = tree();
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = BlobDir::new(blobs_dir.path());
    let opts = PackOptions {
        owner: Some((65534, 65533)),
        ..Default::default()
    };
    let d = pack_layer(t.path(), &opts, &blobs).unwrap();
    let out = blobs_dir.path().join("out");
    unpack_layer(&blobs.path(&d).unwrap(), &out).unwrap();
    let m = fs::symlink_metadata(out.join("abs-link")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65533));
    // chown before chmod: the setuid bit survives.
    assert_eq!(
        fs::metadata(out.join("bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn escaping_entries_are_refused() {
    refused(
        &tar_of(&[("/etc/passwd", EntryType::Regular, b"x", "")]),
        "path is absolute",
    );
    refused(
        &tar_of(&[("a/../../x", EntryType::Regular, b"x", "")]),
        "\"..\"",
    );
    refused(
        &tar_of(&[
            ("l", EntryType::Symlink, b"", "/etc"),
            ("l/passwd", EntryType::Regular, b"x", ""),
        ]),
        "is a symlink",
    );
    refused(
        &tar_of(&[
            ("l", EntryType::Symlink, b"", "/etc"),
            ("h", EntryType::Link, b"", "l/passwd"),
        ]),
        "is a symlink",
    );
    refused(
        &tar_of(&[("h", EntryType::Link, b"", "../outside")]),
        "\"..\"",
    );
    refused(
        &tar_of(&[("h", EntryType::Link, b"", "missing")]),
        "not a file of this layer",
    );
    refused(
        &tar_of(&[
            ("f", EntryType::Regular, b"1", ""),
            ("f", EntryType::Regular, b"2", ""),
        ]),
        "appears twice",
    );
}

#[test]
fn devices_and_fifos_are_left_out() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    h.set_mode(0o666);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_path("dev/null").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let (dir, r) = unpack_bytes(&b.into_inner().unwrap(), &UnpackLimits::default());
    assert_eq!(r.unwrap().skipped, 1);
    assert!(
        !dir.path().join("out/dev/null").exists(),
        "no device node is made"
    );
    for (name, kind) in [("p", EntryType::Fifo), ("b", EntryType::Block)] {
        let (dir, r) = unpack_bytes(&tar_of(&[(name, kind, b"", "")]), &UnpackLimits::default());
        assert_eq!(r.unwrap().skipped, 1);
        assert!(!dir.path().join("out").join(name).exists());
    }
}

#[test]
fn size_bombs_stop_at_the_limit() {
    let limits = UnpackLimits {
        max_bytes: 1000,
        max_entries: 10,
    };
    let big = vec![0u8; 4096];
    let (_d, r) = unpack_bytes(&tar_of(&[("f", EntryType::Regular, &big, "")]), &limits);
    assert!(
        matches!(
            r,
            Err(LayerError::Unpack(UntarError::TooLarge { max: 1000, .. }))
        ),
        "{r:?}"
    );
    // Compressed well, it is still inflated only up to the cap.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(
        &mut gz,
        &tar_of(&[("f", EntryType::Regular, &vec![0u8; 1 << 20], "")]),
    )
    .unwrap();
    let (_d, r) = unpack_bytes(&gz.finish().unwrap(), &limits);
    assert!(
        matches!(r, Err(LayerError::Unpack(UntarError::TooLarge { .. }))),
        "{r:?}"
    );
    let many: Vec<(String, EntryType, &[u8], &str)> = (0..20)
        .map(|i| (format!("f{i}"), EntryType::Regular, &b""[..], ""))
        .collect();
    let many: Vec<(&str, EntryType, &[u8], &str)> = many
        .iter()
        .map(|(n, k, d, l)| (n.as_str(), *k, *d, *l))
        .collect();
    let (_d, r) = unpack_bytes(&tar_of(&many), &limits);
    assert!(
        matches!(
            r,
            Err(LayerError::Unpack(UntarError::TooManyEntries {
                max: 10,
                ..
            }))
        ),
        "{r:?}"
    );
    let (_d, r) = unpack_bytes(b"\x1f\x8bnot really gzip", &limits);
    assert!(
        matches!(r, Err(LayerError::Unpack(UntarError::Corrupt { .. }))),
        "{r:?}"
    );
}

#[test]
fn whiteouts_hide_lower_files_in_an_overlay() {
    if !is_root() {
        eprintln!("skipping: whiteouts and overlay mounts need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lower_tar = tar_of(&[
        ("keep", EntryType::Regular, b"k", ""),
        ("gone", EntryType::Regular, b"g", ""),
        ("d/", EntryType::Directory, b"", ""),
        ("d/old", EntryType::Regular, b"o", ""),
    ]);
    let upper_tar = tar_of(&[
        (".wh.gone", EntryType::Regular, b"", ""),
        ("d/", EntryType::Directory, b"", ""),
        ("d/.wh..wh..opq", EntryType::Regular, b"", ""),
        ("d/new", EntryType::Regular, b"n", ""),
    ]);
    fs::write(dir.path().join("l1"), &lower_tar).unwrap();
    fs::write(dir.path().join("l2"), &upper_tar).unwrap();
    let (l1, l2) = (dir.path().join("u1"), dir.path().join("u2"));
    unpack_layer(&dir.path().join("l1"), &l1).unwrap();
    let stats = unpack_layer(&dir.path().join("l2"), &l2).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let wh = fs::symlink_metadata(l2.join("gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        xattr::get(l2.join("d"), OPAQUE_XATTR).unwrap().as_deref(),
        Some(&b"y"[..])
    );

    let merged = dir.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let opts = format!("lowerdir={}:{}", l2.display(), l1.display());
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .unwrap();
    let seen = (
        merged.join("keep").exists(),
        merged.join("gone").exists(),
        merged.join("d/old").exists(),
        merged.join("d/new").exists(),
    );
    nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(seen, (true, false, false, true));

    // Packing the upper layer again keeps them only when asked.
    let blobs = BlobDir::new(dir.path().join("blobs"));
    let names = |keep: bool| {
        let d = pack_layer(
            &l2,
            &PackOptions {
                keep_whiteouts: keep,
                ..Default::default()
            },
            &blobs,
        )
        .unwrap();
        let bytes = blobs.read(&d).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(false), ["d/", "d/new"]);
    assert_eq!(names(true), ["d/", "d/.wh..wh..opq", "d/new", ".wh.gone"]);
}
