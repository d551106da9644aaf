//! Attempts to break out of the destination or past the limits, under each kind's rules.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::*;

/// One entry written byte for byte, so names `tar::Builder` would refuse can be made (also
/// used by the layer tests).
pub(crate) fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: EntryType,
    data: &[u8],
    link: &str,
) {
    let mut h = Header::new_gnu();
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

type Spec<'a> = (&'a str, EntryType, &'a [u8], &'a str);

fn tar_of(entries: &[Spec<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        raw(&mut b, name, *kind, data, link);
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

const SMALL: Limits = Limits {
    max_bytes: 1 << 20,
    max_entries: 50,
};

const ALL: [Rules; 3] = [Rules::SOURCE, Rules::LAYER, Rules::BUILDPACK];

/// A scratch directory holding the archive as `blob` and an empty `outside` directory the
/// archive must never reach; the archive is unpacked to `out`.
fn run(
    bytes: &[u8],
    rules: &Rules,
    limits: &Limits,
) -> (tempfile::TempDir, Result<Stats, UntarError>) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("blob"), bytes).unwrap();
    fs::create_dir(dir.path().join("outside")).unwrap();
    let r = unpack(
        &Input::File(&dir.path().join("blob")),
        &dir.path().join("out"),
        rules,
        limits,
    );
    (dir, r)
}

/// Unpacks expecting a refusal that says `want`; checks nothing was left and nothing reached
/// `outside`.
fn refused(bytes: &[u8], rules: &Rules, limits: &Limits, want: &str) -> UntarError {
    let (dir, r) = run(bytes, rules, limits);
    let err = r.expect_err("must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(want),
        "{msg:?} should say {want:?} ({})",
        rules.what
    );
    let mut left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["blob", "outside"], "leftovers after: {msg}");
    assert_eq!(
        fs::read_dir(dir.path().join("outside")).unwrap().count(),
        0,
        "something got outside: {msg}"
    );
    err
}

#[test]
fn parent_components_are_refused_everywhere() {
    for rules in &ALL {
        for name in ["../outside/x", "a/../../outside/x", "a/.."] {
            let bytes = tar_of(&[(name, EntryType::Regular, b"x", "")]);
            let err = refused(&bytes, rules, &SMALL, "path contains \"..\"");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}

#[test]
fn absolute_paths_are_refused_everywhere() {
    for rules in &ALL {
        let bytes = tar_of(&[("/tmp/evil", EntryType::Regular, b"x", "")]);
        let err = refused(&bytes, rules, &SMALL, "path is absolute");
        assert!(
            err.to_string()
                .contains(&format!("{} entry \"/tmp/evil\"", rules.what))
        );
    }
}

#[test]
fn nothing_is_written_through_a_symlink() {
    // A layer may link anywhere, but nothing may then be written below the link.
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    let target = outside.to_string_lossy().into_owned();
    let bytes = tar_of(&[
        ("l", EntryType::Symlink, b"", &target),
        ("l/pwned", EntryType::Regular, b"x", ""),
    ]);
    refused(
        &bytes,
        &Rules::LAYER,
        &SMALL,
        "its parent \"l\" is a symlink",
    );
    // A link inside the tree is no way through either, under any rules.
    for rules in &ALL {
        let bytes = tar_of(&[
            ("d/", EntryType::Directory, b"", ""),
            ("l", EntryType::Symlink, b"", "d"),
            ("l/x", EntryType::Regular, b"x", ""),
        ]);
        refused(&bytes, rules, &SMALL, "its parent \"l\" is a symlink");
        // Nor is a file of the link's own name: it would be opened through the link.
        let bytes = tar_of(&[
            ("f", EntryType::Regular, b"original", ""),
            ("l", EntryType::Symlink, b"", "f"),
            ("l", EntryType::Regular, b"overwrite", ""),
        ]);
        refused(&bytes, rules, &SMALL, "appears twice");
    }
}

#[test]
fn hard_links_stay_inside() {
    for rules in [Rules::LAYER, Rules::BUILDPACK] {
        let bytes = tar_of(&[("h", EntryType::Link, b"", "../outside/x")]);
        refused(
            &bytes,
            &rules,
            &SMALL,
            "hard link to \"../outside/x\": path contains",
        );
        let bytes = tar_of(&[("h", EntryType::Link, b"", "/etc/passwd")]);
        refused(&bytes, &rules, &SMALL, "path is absolute");
        // Through a symlink of the archive (allowed to point anywhere in a layer).
        let bytes = tar_of(&[
            ("d/", EntryType::Directory, b"", ""),
            ("l", EntryType::Symlink, b"", "d"),
            ("h", EntryType::Link, b"", "l/f"),
        ]);
        refused(&bytes, &rules, &SMALL, "is a symlink");
        // To something this archive did not write as a file.
        let bytes = tar_of(&[
            ("d/", EntryType::Directory, b"", ""),
            ("h", EntryType::Link, b"", "d"),
        ]);
        refused(
            &bytes,
            &rules,
            &SMALL,
            &format!("not a file of this {}", rules.what),
        );
        // Inside, to a file of its own: kept.
        let bytes = tar_of(&[
            ("f", EntryType::Regular, b"x", ""),
            ("h", EntryType::Link, b"", "./f"),
        ]);
        let (dir, r) = run(&bytes, &rules, &SMALL);
        assert_eq!(r.unwrap().hardlinks, 1);
        let out = dir.path().join("out");
        assert_eq!(
            fs::metadata(out.join("f")).unwrap().ino(),
            fs::metadata(out.join("h")).unwrap().ino()
        );
    }
    let bytes = tar_of(&[
        ("f", EntryType::Regular, b"x", ""),
        ("h", EntryType::Link, b"", "f"),
    ]);
    refused(
        &bytes,
        &Rules::SOURCE,
        &SMALL,
        "hard links are not accepted",
    );
}

#[test]
fn a_layer_keeps_absolute_symlinks() {
    let bytes = tar_of(&[("bin/sh", EntryType::Symlink, b"", "/usr/bin/dash")]);
    let (dir, r) = run(&bytes, &Rules::LAYER, &SMALL);
    assert_eq!(r.unwrap().symlinks, 1);
    assert_eq!(
        fs::read_link(dir.path().join("out/bin/sh")).unwrap(),
        Path::new("/usr/bin/dash")
    );
}

#[test]
fn sources_and_buildpacks_refuse_symlinks_leaving_the_tree() {
    for rules in [Rules::SOURCE, Rules::BUILDPACK] {
        let bytes = tar_of(&[("bin/sh", EntryType::Symlink, b"", "/usr/bin/dash")]);
        refused(
            &bytes,
            &rules,
            &SMALL,
            "an absolute target points outside the tree",
        );
        let bytes = tar_of(&[("bin/x", EntryType::Symlink, b"", "../../outside")]);
        refused(&bytes, &rules, &SMALL, "it climbs outside the tree");
        let bytes = tar_of(&[("bin/x", EntryType::Symlink, b"", "../lib/x")]);
        let (dir, r) = run(&bytes, &rules, &SMALL);
        assert_eq!(r.unwrap().symlinks, 1);
        assert_eq!(
            fs::read_link(dir.path().join("out/bin/x")).unwrap(),
            Path::new("../lib/x")
        );
    }
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    let zeros = vec![0u8; 16 << 20];
    for rules in &ALL {
        let bomb = gzip(&tar_of(&[("bomb", EntryType::Regular, &zeros, "")]));
        assert!(bomb.len() < 64 * 1024);
        let err = refused(&bomb, rules, &SMALL, "unpacks to more than 1048576 bytes");
        assert!(matches!(err, UntarError::TooLarge { max: 1_048_576, .. }));
        // Hidden in an entry that is only skipped, it counts all the same.
        let bomb = gzip(&tar_of(&[("d/", EntryType::Directory, &zeros, "")]));
        refused(&bomb, rules, &SMALL, "unpacks to more than 1048576 bytes");
        // Many files under the limit each add up.
        let chunk = vec![7u8; 400 * 1024];
        let bytes = tar_of(&[
            ("a", EntryType::Regular, &chunk, ""),
            ("b", EntryType::Regular, &chunk, ""),
            ("c", EntryType::Regular, &chunk, ""),
        ]);
        refused(&bytes, rules, &SMALL, "unpacks to more than 1048576 bytes");
    }
}

#[test]
fn too_many_entries_are_refused() {
    let names: Vec<String> = (0..51).map(|i| format!("f{i}")).collect();
    let entries: Vec<Spec<'_>> = names
        .iter()
        .map(|n| (n.as_str(), EntryType::Regular, &b""[..], ""))
        .collect();
    for rules in &ALL {
        let err = refused(&tar_of(&entries), rules, &SMALL, "has more than 50 entries");
        assert!(matches!(err, UntarError::TooManyEntries { max: 50, .. }));
        let (_dir, r) = run(&tar_of(&entries[..50]), rules, &SMALL);
        assert_eq!(r.unwrap().files, 50);
    }
}

#[test]
fn an_oversized_long_name_is_refused_by_name_and_size() {
    // With a GNU header the parser reads the long name into memory: the header window stops
    // it, and a second look names it.
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        "././@LongLink",
        EntryType::GNULongName,
        &vec![b'a'; 1 << 20],
        "",
    );
    raw(&mut b, "x", EntryType::Regular, b"x", "");
    let limits = Limits {
        max_bytes: 4 << 20,
        max_entries: 10,
    };
    for rules in &ALL {
        let err = refused(&b.get_ref().clone(), rules, &limits, "\"././@LongLink\"");
        assert!(
            matches!(
                err,
                UntarError::HeaderTooLarge {
                    size: 1_048_576,
                    max: MAX_METADATA_BYTES,
                    ..
                }
            ),
            "{err}"
        );
    }
    // Several headers for one entry count together.
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        "././@LongLink",
        EntryType::GNULongName,
        &vec![b'a'; 40_000],
        "",
    );
    raw(
        &mut b,
        "././@LongLink",
        EntryType::GNULongLink,
        &vec![b'b'; 40_000],
        "",
    );
    raw(&mut b, "x", EntryType::Symlink, b"", "y");
    let err = refused(b.get_ref(), &Rules::LAYER, &limits, "40000 bytes");
    assert!(matches!(err, UntarError::HeaderTooLarge { .. }), "{err}");
}

#[test]
fn paths_too_long_or_too_deep_are_refused() {
    let deep = format!("{}f", "d/".repeat(MAX_PATH_DEPTH));
    let long = "a".repeat(MAX_PATH_BYTES + 1);
    for (name, want) in [
        (deep.as_str(), "256 directories deep"),
        (long.as_str(), "4097 bytes long"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &b"x"[..]).unwrap();
        refused(&b.into_inner().unwrap(), &Rules::LAYER, &SMALL, want);
    }
}

#[test]
fn devices_are_refused_or_left_out_by_the_rules() {
    for kind in [EntryType::Char, EntryType::Block, EntryType::Fifo] {
        let bytes = tar_of(&[("dev", kind, b"", "")]);
        refused(&bytes, &Rules::SOURCE, &SMALL, "is not accepted");
        refused(&bytes, &Rules::BUILDPACK, &SMALL, "is not accepted");
        let (dir, r) = run(&bytes, &Rules::LAYER, &SMALL);
        assert_eq!(r.unwrap().skipped, 1);
        assert!(!dir.path().join("out/dev").exists());
    }
}

#[test]
fn modes_follow_the_rules() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o4750);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, "tool", &b"x"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let mode = |rules: &Rules| {
        let (dir, r) = run(&bytes, rules, &SMALL);
        r.unwrap();
        fs::metadata(dir.path().join("out/tool")).unwrap().mode() & 0o7777
    };
    assert_eq!(mode(&Rules::SOURCE), 0o755);
    assert_eq!(mode(&Rules::BUILDPACK), 0o750, "setuid dropped");
    assert_eq!(mode(&Rules::LAYER), 0o4750, "setuid kept");
}

#[test]
fn whiteouts_are_only_a_layers_and_must_name_a_file() {
    let bytes = tar_of(&[(".wh...", EntryType::Regular, b"", "")]);
    refused(&bytes, &Rules::LAYER, &SMALL, "a whiteout must name a file");
    // Elsewhere it is an ordinary file.
    let bytes = tar_of(&[(".wh.gone", EntryType::Regular, b"", "")]);
    let (dir, r) = run(&bytes, &Rules::SOURCE, &SMALL);
    assert_eq!(r.unwrap().files, 1);
    assert!(
        fs::metadata(dir.path().join("out/.wh.gone"))
            .unwrap()
            .is_file()
    );
}

#[test]
fn the_root_and_pax_global_headers_are_skipped_and_directories_may_repeat() {
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        "pax_global_header",
        EntryType::XGlobalHeader,
        b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
        "",
    );
    raw(&mut b, "./", EntryType::Directory, b"", "");
    raw(&mut b, "d/", EntryType::Directory, b"", "");
    raw(&mut b, "d/", EntryType::Directory, b"", "");
    raw(&mut b, "d/f", EntryType::Regular, b"x", "");
    let bytes = b.into_inner().unwrap();
    for rules in &ALL {
        // Plain and gzip'd alike.
        for bytes in [bytes.clone(), gzip(&bytes)] {
            let (dir, r) = run(&bytes, rules, &SMALL);
            let stats = r.unwrap();
            assert_eq!((stats.dirs, stats.files, stats.bytes), (2, 1, 1));
            let out = dir.path().join("out");
            assert!(!out.join("pax_global_header").exists());
            assert_eq!(fs::read_to_string(out.join("d/f")).unwrap(), "x");
            assert_eq!(
                fs::metadata(&out).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
    }
    let bytes = tar_of(&[
        ("d", EntryType::Regular, b"x", ""),
        ("d/", EntryType::Directory, b"", ""),
    ]);
    refused(&bytes, &Rules::LAYER, &SMALL, "appears twice");
}

#[test]
fn the_destination_must_not_exist_and_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gzip(&tar_of(&[("f", EntryType::Regular, b"x", "")]));
    let err = unpack(&Input::Gzip(&bytes), dir.path(), &Rules::SOURCE, &SMALL).unwrap_err();
    assert!(matches!(err, UntarError::DestinationExists(_)), "{err}");
    let err = refused(
        b"\x1f\x8bnot really gzip",
        &Rules::LAYER,
        &SMALL,
        "layer is damaged",
    );
    assert!(matches!(err, UntarError::Corrupt { .. }));
}
