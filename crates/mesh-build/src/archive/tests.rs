use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use super::*;

fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn sample_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".gitignore", "*.log\nnode_modules/\n");
    write(root, ".meshignore", "secrets.txt\n");
    write(root, "app.log", "ignored by .gitignore");
    write(root, "node_modules/x/index.js", "ignored dir");
    write(root, "secrets.txt", "ignored by .meshignore");
    write(root, ".git/HEAD", "never packed");
    write(root, ".mesh/link.json", "never packed");
    write(root, "README.md", "hello");
    write(root, "src/lib/deep.txt", "nested");
    write(root, "run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("README.md"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("src/lib/deep.txt", root.join("shortcut")).unwrap();
    dir
}

fn names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn limits() -> Limits {
    Limits {
        max_archive_bytes: 1024 * 1024,
        max_unpacked_bytes: 1024 * 1024,
        max_files: 100,
    }
}

#[test]
fn round_trip_keeps_content_modes_and_links_and_skips_ignored() {
    let src = sample_tree();
    let packed = pack(src.path()).unwrap();
    assert_eq!(
        names(&packed.bytes),
        [
            ".gitignore",
            ".meshignore",
            "README.md",
            "run.sh",
            "shortcut",
            "src/",
            "src/lib/",
            "src/lib/deep.txt",
        ]
    );
    assert_eq!(packed.files, 5);
    assert_eq!(packed.digest.len(), 64);

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    let stats = unpack(&packed.bytes, &dest, &limits()).unwrap();
    assert_eq!((stats.files, stats.dirs, stats.symlinks), (5, 2, 1));
    assert_eq!(stats.bytes, packed.size);
    assert_eq!(
        fs::read_to_string(dest.join("src/lib/deep.txt")).unwrap(),
        "nested"
    );
    assert_eq!(fs::read_to_string(dest.join("shortcut")).unwrap(), "nested");
    assert_eq!(
        fs::read_link(dest.join("shortcut")).unwrap(),
        Path::new("src/lib/deep.txt")
    );
    let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(""), 0o755);
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(mode("README.md"), 0o644);
    assert!(!dest.join("secrets.txt").exists());
    assert!(!dest.join(".git").exists());
}

#[test]
fn packing_is_deterministic() {
    let src = sample_tree();
    let a = pack(src.path()).unwrap();
    // A changed mtime must not change the digest.
    fs::write(src.path().join("README.md"), "hello").unwrap();
    let b = pack(src.path()).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.bytes, b.bytes);
}

#[test]
fn pack_refuses_a_link_leaving_the_tree() {
    let src = tempfile::tempdir().unwrap();
    symlink("../../etc/passwd", src.path().join("escape")).unwrap();
    let err = pack(src.path()).unwrap_err().to_string();
    assert!(err.contains("\"escape\""), "{err}");
    assert!(err.contains("outside"), "{err}");

    let src = tempfile::tempdir().unwrap();
    symlink("/etc/passwd", src.path().join("abs")).unwrap();
    assert!(matches!(
        pack(src.path()),
        Err(ArchiveError::LinkRefused { .. })
    ));
}

/// Builds an archive from raw entries, writing names and link targets into the header bytes so
/// that the tar crate's own path checks cannot stop a malicious name.
fn raw_archive(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, kind, data, link) in entries {
        let mut header = Header::new_old();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Unpacks, expecting a refusal, and checks nothing was left beside the destination.
fn refused(bytes: &[u8], limits: &Limits) -> String {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    let err = unpack(bytes, &dest, limits).unwrap_err().to_string();
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "leftovers after: {err}"
    );
    err
}

#[test]
fn unpack_refuses_absolute_paths() {
    let err = refused(
        &raw_archive(&[
            ("ok.txt", EntryType::Regular, b"fine", None),
            ("/etc/evil", EntryType::Regular, b"x", None),
        ]),
        &limits(),
    );
    assert!(
        err.contains("\"/etc/evil\"") && err.contains("absolute"),
        "{err}"
    );
}

#[test]
fn unpack_refuses_parent_components() {
    let err = refused(
        &raw_archive(&[("a/../../evil", EntryType::Regular, b"x", None)]),
        &limits(),
    );
    assert!(err.contains("a/../../evil") && err.contains(".."), "{err}");
}

#[test]
fn unpack_refuses_absolute_links() {
    let err = refused(
        &raw_archive(&[("l", EntryType::Symlink, b"", Some("/etc/passwd"))]),
        &limits(),
    );
    assert!(err.contains("\"l\"") && err.contains("outside"), "{err}");
}

#[test]
fn unpack_refuses_links_escaping_with_parent_components() {
    let err = refused(
        &raw_archive(&[("d/l", EntryType::Symlink, b"", Some("../../x"))]),
        &limits(),
    );
    assert!(err.contains("\"d/l\"") && err.contains("outside"), "{err}");
}

#[test]
fn unpack_refuses_entries_below_a_link() {
    // `up` points at the root, so `up/l -> ../x` would really resolve above it.
    let err = refused(
        &raw_archive(&[
            ("up", EntryType::Symlink, b"", Some(".")),
            ("up/l", EntryType::Symlink, b"", Some("../x")),
        ]),
        &limits(),
    );
    assert!(err.contains("\"up/l\"") && err.contains("symlink"), "{err}");
}

#[test]
fn unpack_refuses_a_file_written_through_an_earlier_link() {
    let err = refused(
        &raw_archive(&[
            ("target", EntryType::Regular, b"original", None),
            ("l", EntryType::Symlink, b"", Some("target")),
            ("l", EntryType::Regular, b"overwrite", None),
        ]),
        &limits(),
    );
    assert!(err.contains("twice"), "{err}");
}

#[test]
fn unpack_refuses_links_climbing_through_another_link() {
    // `l -> up/..` is inside by a lexical count, but `up -> .` makes it the root's parent.
    let err = refused(
        &raw_archive(&[
            ("l", EntryType::Symlink, b"", Some("up/..")),
            ("up", EntryType::Symlink, b"", Some(".")),
        ]),
        &limits(),
    );
    assert!(
        err.contains("\"l\"") && err.contains("after a name"),
        "{err}"
    );
}

#[test]
fn unpack_accepts_links_climbing_to_a_sibling() {
    let bytes = raw_archive(&[
        ("lib/real.txt", EntryType::Regular, b"x", None),
        ("bin/l", EntryType::Symlink, b"", Some("../lib/real.txt")),
    ]);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    unpack(&bytes, &dest, &limits()).unwrap();
    assert_eq!(fs::read_to_string(dest.join("bin/l")).unwrap(), "x");
}

#[test]
fn unpack_refuses_other_entry_types() {
    let err = refused(
        &raw_archive(&[("s", EntryType::new(b'Z'), b"", None)]),
        &limits(),
    );
    assert!(
        err.contains("\"s\"") && err.contains("not accepted"),
        "{err}"
    );
}

#[test]
fn unpack_refuses_hard_links() {
    let err = refused(
        &raw_archive(&[
            ("a", EntryType::Regular, b"x", None),
            ("b", EntryType::Link, b"", Some("a")),
        ]),
        &limits(),
    );
    assert!(err.contains("\"b\"") && err.contains("hard link"), "{err}");
}

#[test]
fn unpack_refuses_devices_and_fifos() {
    for (kind, word) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "fifo"),
    ] {
        let err = refused(&raw_archive(&[("dev", kind, b"", None)]), &limits());
        assert!(err.contains("\"dev\"") && err.contains(word), "{err}");
    }
}

#[test]
fn unpack_refuses_oversized_archives_before_reading() {
    // Not even gzip: the size check must come first.
    let err = refused(
        &[0u8; 2048],
        &Limits {
            max_archive_bytes: 1024,
            ..limits()
        },
    );
    assert!(err.contains("2048 bytes, at most 1024"), "{err}");
}

#[test]
fn unpack_stops_a_zip_bomb_early() {
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let bomb = raw_archive(&[("bomb", EntryType::Regular, &zeros, None)]);
    assert!(bomb.len() < 64 * 1024);
    let err = refused(&bomb, &limits());
    assert!(err.contains("more than 1048576 bytes"), "{err}");
}

#[test]
fn unpack_stops_when_many_small_files_add_up() {
    let chunk = vec![7u8; 400 * 1024];
    let err = refused(
        &raw_archive(&[
            ("a", EntryType::Regular, &chunk, None),
            ("b", EntryType::Regular, &chunk, None),
            ("c", EntryType::Regular, &chunk, None),
        ]),
        &limits(),
    );
    assert!(err.contains("more than 1048576 bytes"), "{err}");
}

#[test]
fn unpack_refuses_huge_extension_headers() {
    // tar reads a GNU long name into memory whole; it is not file content, so the per-file size
    // check cannot see it.
    let long_name = vec![b'a'; 8 * 1024 * 1024];
    let bomb = raw_archive(&[
        ("././@LongLink", EntryType::GNULongName, &long_name, None),
        ("x", EntryType::Regular, b"x", None),
    ]);
    let err = refused(&bomb, &limits());
    assert!(
        err.contains("@LongLink") && err.contains("8388608 bytes"),
        "{err}"
    );
}

#[test]
fn long_names_within_limits_round_trip() {
    let src = tempfile::tempdir().unwrap();
    let long = format!("{}/file.txt", "d".repeat(200));
    write(src.path(), &long, "deep");
    let packed = pack(src.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    unpack(&packed.bytes, &dest, &limits()).unwrap();
    assert_eq!(fs::read_to_string(dest.join(long)).unwrap(), "deep");
}

#[test]
fn unpack_refuses_too_many_files() {
    let err = refused(
        &raw_archive(&[
            ("a", EntryType::Regular, b"1", None),
            ("b", EntryType::Regular, b"2", None),
            ("c", EntryType::Regular, b"3", None),
        ]),
        &Limits {
            max_files: 2,
            ..limits()
        },
    );
    assert!(err.contains("more than 2 entries"), "{err}");
}

#[test]
fn unpack_refuses_an_existing_destination() {
    let packed = pack(sample_tree().path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = unpack(&packed.bytes, out.path(), &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Unpack(crate::untar::UntarError::DestinationExists(_))
        ),
        "{err}"
    );
}

#[test]
fn unpack_reports_damaged_archives() {
    let err = refused(b"definitely not gzip", &limits());
    assert!(err.contains("damaged"), "{err}");
}
