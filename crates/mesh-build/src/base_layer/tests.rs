use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A small root filesystem: directories with their modes, files, a setuid binary, a symlink,
/// a hard link, and (as root) a device node and a fifo, which a layer leaves out.
fn rootfs(dir: &Path) {
    for (d, mode) in [("", 0o755), ("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)] {
        fs::create_dir_all(dir.join(d)).unwrap();
        fs::set_permissions(dir.join(d), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir_all(dir.join("dev")).unwrap();
    fs::write(dir.join("bin/busybox"), b"\x7fELF pretend".repeat(1000)).unwrap();
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("busybox", dir.join("bin/sh")).unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::hard_link(dir.join("etc/passwd"), dir.join("etc/passwd-")).unwrap();
    if is_root() {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        let m = Mode::from_bits_truncate(0o666);
        mknod(&dir.join("dev/null"), SFlag::S_IFCHR, m, makedev(1, 3)).unwrap();
        mknod(&dir.join("dev/fifo"), SFlag::S_IFIFO, m, 0).unwrap();
        nix::unistd::chown(
            &dir.join("etc/passwd"),
            Some(1234.into()),
            Some(4321.into()),
        )
        .unwrap();
    }
}

/// (name, kind, mode, uid, gid, mtime, user name) of every entry of a `.tar.gz` blob.
type Entry = (String, EntryType, u32, u64, u64, u64, Option<String>);

fn entries(blobs: &BlobDir, digest: &str) -> Vec<Entry> {
    let bytes = blobs.read(digest).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                h.username()
                    .unwrap()
                    .filter(|u| !u.is_empty())
                    .map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn a_base_packs_to_the_same_digest_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    rootfs(&root);
    let one = BlobDir::new(dir.path().join("one"));
    let a = pack_base(&root, "debian", &one).unwrap();
    // Other timestamps, another store: the same bytes.
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for p in ["bin/busybox", "etc/passwd", "etc"] {
        fs::File::open(root.join(p))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    let two = BlobDir::new(dir.path().join("two"));
    let b = pack_base(&root, "debian", &two).unwrap();
    assert_eq!(a, b, "not deterministic");
    assert_eq!(a.media_type, LAYER_GZIP_MEDIA_TYPE);
    let gz = one.read(&a.digest).unwrap();
    assert_eq!(a.size, gz.len() as u64);
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "the gzip header's mtime is 0");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(a.diff_id, digest_of(&tar));

    let list = entries(&one, &a.digest);
    let names: Vec<&str> = list.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/",
            "bin/busybox",
            "bin/sh",
            "dev/",
            "etc/",
            "etc/passwd",
            "etc/passwd-",
            "tmp/"
        ],
        "sorted, devices and fifos left out"
    );
    let by = |n: &str| list.iter().find(|e| e.0 == n).unwrap().clone();
    assert_eq!(by("tmp/").2, 0o1777);
    assert_eq!(by("bin/busybox").2, 0o4755);
    assert_eq!(by("bin/sh").1, EntryType::Symlink);
    assert_eq!(by("etc/passwd-").1, EntryType::Link);
    assert!(list.iter().all(|e| e.5 == 0 && e.6.is_none()), "{list:?}");
    if is_root() {
        // Debian's owners are kept, as numbers.
        assert_eq!((by("etc/passwd").3, by("etc/passwd").4), (1234, 4321));
        // busybox's tree is root's, whoever made it.
        let bb = pack_base(&root, "busybox", &one).unwrap();
        assert_ne!(bb.digest, a.digest);
        assert!(
            entries(&one, &bb.digest)
                .iter()
                .all(|e| e.3 == 0 && e.4 == 0)
        );
    }
    let e = pack_base(&root, "alpine", &one).unwrap_err().to_string();
    assert!(e.contains("not a built-in base"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busybox_base_is_packed_once_and_remembered_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let bases = dir.path().join("bases");
    let blobs = BlobDir::new(dir.path().join("blobs"));
    let first = base_layer(&bases, &blobs, "busybox").await.unwrap();
    assert!(blobs.contains(&first.digest));
    let names: Vec<String> = entries(&blobs, &first.digest)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(
        names.contains(&"bin/busybox".to_string()) && names.contains(&"bin/sh".to_string()),
        "{names:?}"
    );
    let file = remembered_path(&bases, "busybox");
    let saved: Remembered = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        (saved.digest.as_str(), saved.size),
        (first.digest.as_str(), first.size)
    );

    // Read from the file, not packed again: a diff id written there is what comes back.
    let marked = format!("sha256:{}", "e".repeat(64));
    let write = |r: &Remembered| fs::write(&file, serde_json::to_vec(r).unwrap()).unwrap();
    write(&Remembered {
        diff_id: marked.clone(),
        ..saved.clone()
    });
    assert_eq!(
        base_layer(&bases, &blobs, "busybox").await.unwrap().diff_id,
        marked
    );
    // Another fingerprint (the base was remade) or a blob gone from the store: packed again.
    write(&Remembered {
        fingerprint: "sha256:other".into(),
        diff_id: marked.clone(),
        ..saved.clone()
    });
    assert_eq!(base_layer(&bases, &blobs, "busybox").await.unwrap(), first);
    fs::remove_file(blobs.path(&first.digest).unwrap()).unwrap();
    assert_eq!(base_layer(&bases, &blobs, "busybox").await.unwrap(), first);
    assert!(blobs.contains(&first.digest));

    let e = base_layer(&bases, &blobs, "scratch")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"scratch\" is not a built-in base"), "{e}");
}

/// The real Debian base (from the machine's cache when it has one, else debootstrap: network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packs the ~130 MB Debian base (debootstrap first if the machine has no cached one); run with --run-ignored"]
async fn the_debian_base_packs_the_same_twice() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let bases = dir.path().join("bases");
    let started = std::time::Instant::now();
    let (rootfs, _) = base_rootfs(&bases, "debian").await.unwrap();
    eprintln!("rootfs ready in {:.2}s", started.elapsed().as_secs_f64());
    let blobs = BlobDir::new(dir.path().join("blobs"));
    let started = std::time::Instant::now();
    let layer = base_layer(&bases, &blobs, "debian").await.unwrap();
    eprintln!(
        "packed in {:.2}s: {} bytes, {}",
        started.elapsed().as_secs_f64(),
        layer.size,
        layer.digest
    );
    let again = BlobDir::new(dir.path().join("again"));
    let started = std::time::Instant::now();
    let second = tokio::task::spawn_blocking(move || pack_base(&rootfs, "debian", &again))
        .await
        .unwrap()
        .unwrap();
    eprintln!("packed again in {:.2}s", started.elapsed().as_secs_f64());
    assert_eq!(layer, second);
    let started = std::time::Instant::now();
    assert_eq!(base_layer(&bases, &blobs, "debian").await.unwrap(), layer);
    eprintln!("remembered in {:.3}s", started.elapsed().as_secs_f64());
    let list = entries(&blobs, &layer.digest);
    for want in ["usr/bin/bash", "etc/debian_version", "usr/bin/dpkg", "dev/"] {
        assert!(list.iter().any(|e| e.0 == want), "{want} missing");
    }
    let devices: Vec<&Entry> = list
        .iter()
        .filter(|e| matches!(e.1, EntryType::Char | EntryType::Block | EntryType::Fifo))
        .collect();
    assert!(devices.is_empty(), "device nodes packed: {devices:?}");
}
