use std::fs;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::blobs::digest_of;

fn layer_tar(file: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, file, content).unwrap();
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

fn config_json() -> Vec<u8> {
    json!({"architecture": "amd64", "os": "linux", "config": {
        "Entrypoint": ["/entry"], "Cmd": ["serve", "--port", "80"],
        "Env": ["PATH=/bin", "EMPTY=", "A=b=c"], "WorkingDir": "/srv"},
        "rootfs": {"type": "layers", "diff_ids": []}})
    .to_string()
    .into_bytes()
}

/// An OCI layout directory with a gzip'd and a plain layer; returns the two layer blobs.
fn oci_dir(dir: &Path, manifests: usize) -> (Vec<u8>, Vec<u8>) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = digest_of(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    let gz = gzip(&layer_tar("a.txt", b"first"));
    let plain = layer_tar("b.txt", b"second");
    let manifest = json!({"schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config_json()), "size": 1},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(&gz), "size": 1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(&plain), "size": 1}]});
    let m = put(manifest.to_string().as_bytes());
    let entry =
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": 1});
    let index = json!({"schemaVersion": 2, "manifests": vec![entry; manifests]});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (gz, plain)
}

fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn an_oci_layout_imports_as_directory_and_tar_alike() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let (gz, _plain) = oci_dir(&layout, 2);
    let blobs = BlobDir::new(t.path().join("store"));
    let a = import_archive(&layout, &blobs).unwrap();
    tar_dir(&layout, &t.path().join("x.tar"));
    let b = import_archive(&t.path().join("x.tar"), &blobs).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.base, None);
    assert_eq!(a.layers.len(), 2);
    // The gzip'd layer is kept as it is; the plain one is compressed.
    assert_eq!(a.layers[0], digest_of(&gz));
    let second = blobs.read(&a.layers[1]).unwrap();
    assert_eq!(&second[..2], &[0x1f, 0x8b]);
    assert_eq!(a.config.entrypoint, ["/entry"]);
    assert_eq!(a.config.cmd, ["serve", "--port", "80"]);
    assert_eq!(a.config.env["A"], "b=c");
    assert_eq!(a.config.env["EMPTY"], "");
    assert_eq!(a.config.workdir.as_deref(), Some("/srv"));
}

#[test]
fn damaged_archives_say_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let blobs = BlobDir::new(t.path().join("store"));

    let junk = t.path().join("junk.tar");
    fs::write(&junk, vec![7u8; 2048]).unwrap();
    let err = import_archive(&junk, &blobs).unwrap_err();
    assert!(matches!(err, OciError::NotAnImage { .. }), "{err}");

    let other = t.path().join("other.tar");
    let mut b = tar::Builder::new(fs::File::create(&other).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &b"hi"[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    let err = import_archive(&other, &blobs).unwrap_err().to_string();
    assert!(
        err.contains("neither index.json nor manifest.json"),
        "{err}"
    );

    let layout = t.path().join("missing");
    let (gz, _) = oci_dir(&layout, 1);
    fs::remove_file(layout.join("blobs/sha256").join(&digest_of(&gz)[7..])).unwrap();
    let err = import_archive(&layout, &blobs).unwrap_err();
    assert!(
        matches!(err, OciError::Missing(ref m) if m.contains("layer blob")),
        "{err}"
    );

    let layout = t.path().join("tampered");
    let (gz, _) = oci_dir(&layout, 1);
    let mut evil = gz.clone();
    evil.extend_from_slice(b"tampered");
    fs::write(layout.join("blobs/sha256").join(&digest_of(&gz)[7..]), evil).unwrap();
    let err = import_archive(&layout, &blobs).unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
}

#[test]
fn a_docker_archive_checks_its_diff_ids() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("docker");
    fs::create_dir_all(dir.join("abc")).unwrap();
    let layer = layer_tar("c.txt", b"third");
    let mut config: serde_json::Value = serde_json::from_slice(&config_json()).unwrap();
    config["rootfs"]["diff_ids"] = json!([digest_of(&layer)]);
    let config = config.to_string();
    let config_name = format!("{}.json", &digest_of(config.as_bytes())[7..]);
    fs::write(dir.join(&config_name), &config).unwrap();
    fs::write(dir.join("layer.tar"), &layer).unwrap();
    std::os::unix::fs::symlink("../layer.tar", dir.join("abc/layer.tar")).unwrap();
    let manifest =
        json!([{"Config": config_name, "RepoTags": ["x:1"], "Layers": ["abc/layer.tar"]}]);
    fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = t.path().join("d.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
        b.follow_symlinks(false);
        b.append_dir_all(".", &dir).unwrap();
        b.finish().unwrap();
    }
    let blobs = BlobDir::new(t.path().join("store"));
    let image = import_archive(&archive, &blobs).unwrap();
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.config.cmd, ["serve", "--port", "80"]);

    fs::write(dir.join("layer.tar"), layer_tar("c.txt", b"other")).unwrap();
    let err = import_archive(&dir, &blobs).unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
}

#[test]
fn an_image_archive_with_an_entry_leaving_it_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("evil.tar");
    let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
    for name in ["index.json", "../escape"] {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"{}"[..]).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let blobs = BlobDir::new(t.path().join("store"));
    let err = import_archive(&archive, &blobs).unwrap_err();
    assert!(matches!(err, OciError::Refused(_)), "{err}");
    assert!(
        err.to_string()
            .contains("image archive entry \"../escape\" refused: path contains \"..\""),
        "{err}"
    );
}
