use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::*;

/// A buildpack source tree; `with_compile` false leaves bin/compile out.
fn buildpack(dir: &Path, with_compile: bool) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("bin/detect"), "#!/bin/sh\necho demo\n").unwrap();
    if with_compile {
        fs::write(dir.join("bin/compile"), "#!/bin/sh\n").unwrap();
    }
    fs::write(dir.join("bin/release"), "#!/bin/sh\necho ---\n").unwrap();
}

fn assert_fetched(dest: &Path) {
    for script in ["detect", "compile", "release"] {
        let mode = fs::metadata(dest.join("bin").join(script))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o755, 0o755, "bin/{script}");
    }
    assert_eq!(
        fs::read_to_string(dest.join("bin/detect")).unwrap(),
        "#!/bin/sh\necho demo\n"
    );
}

/// A gzipped tarball of `src` under one top directory, like a repository tarball.
fn tarball(src: &Path, out: &Path) {
    let file = fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("demo-buildpack-1.0", src).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn fetches_a_directory() {
    let src = tempfile::tempdir().unwrap();
    buildpack(src.path(), true);
    let dest = tempfile::tempdir().unwrap();
    let spec = src.path().to_str().unwrap();
    fetch_external(spec, dest.path(), None).unwrap();
    assert_fetched(dest.path());
}

#[test]
fn refuses_a_buildpack_without_compile() {
    let src = tempfile::tempdir().unwrap();
    buildpack(src.path(), false);
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_external(src.path().to_str().unwrap(), dest.path(), None).unwrap_err();
    assert!(err.to_string().contains("no bin/compile"), "{err}");
}

#[test]
fn refuses_a_missing_directory_and_a_full_destination() {
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_external("/nonexistent/buildpack", dest.path(), None).unwrap_err();
    assert!(err.to_string().contains("no such directory"), "{err}");
    fs::write(dest.path().join("x"), "").unwrap();
    let src = tempfile::tempdir().unwrap();
    buildpack(src.path(), true);
    let err = fetch_external(src.path().to_str().unwrap(), dest.path(), None).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn fetches_a_tarball_by_file_url_and_hoists_its_top_directory() {
    let src = tempfile::tempdir().unwrap();
    buildpack(src.path(), true);
    // Modes lost on the way, as tarballs made elsewhere often have them.
    fs::set_permissions(
        src.path().join("bin/compile"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let tgz = work.path().join("demo.tgz");
    tarball(src.path(), &tgz);
    let dest = work.path().join("dest");
    fetch_external(&format!("file://{}", tgz.display()), &dest, None).unwrap();
    assert_fetched(&dest);
    assert!(!dest.join("demo-buildpack-1.0").exists());
}

#[test]
fn fetches_a_tarball_over_http() {
    let src = tempfile::tempdir().unwrap();
    buildpack(src.path(), true);
    let work = tempfile::tempdir().unwrap();
    let tgz = work.path().join("demo.tgz");
    tarball(src.path(), &tgz);
    let body = fs::read(&tgz).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // One request, one answer: the loopback stands in for a buildpack's release URL.
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body).unwrap();
    });
    let dest = work.path().join("dest");
    fetch_external(&format!("http://{addr}/demo.tgz"), &dest, None).unwrap();
    server.join().unwrap();
    assert_fetched(&dest);
}

#[test]
fn a_tarball_cannot_write_outside_its_destination() {
    let work = tempfile::tempdir().unwrap();
    let tgz = work.path().join("evil.tgz");
    {
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        let name = b"bp/../../escaped";
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let dest = work.path().join("dest");
    let err = fetch_external(&format!("file://{}", tgz.display()), &dest, None).unwrap_err();
    assert!(matches!(err, ExternalError::Unpack { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("unpacking the tarball: tarball entry \"bp/../../escaped\" refused")
            && msg.contains("\"..\""),
        "{msg}"
    );
    assert!(!work.path().join("escaped").exists());
    assert!(!dest.exists(), "nothing is left at the destination");
}

#[test]
fn a_failed_download_says_so() {
    let work = tempfile::tempdir().unwrap();
    let url = format!("file://{}/missing.tgz", work.path().display());
    let err = fetch_external(&url, &work.path().join("dest"), None).unwrap_err();
    assert!(err.to_string().contains("download failed"), "{err}");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn clones_a_git_repository_at_a_tag() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    buildpack(&repo, true);
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "v1"]);
    git(&repo, &["tag", "v1"]);
    // After the tag, a commit that breaks the buildpack: the tag must be what is fetched.
    fs::remove_file(repo.join("bin/compile")).unwrap();
    git(&repo, &["commit", "-qam", "broken"]);
    let bare = work.path().join("bp.git");
    git(work.path(), &["clone", "-q", "--bare", "repo", "bp.git"]);
    let url = format!("file://{}", bare.display());

    let dest = work.path().join("at-tag");
    fetch_external(&format!("{url}#v1"), &dest, None).unwrap();
    assert_fetched(&dest);
    assert!(!dest.join(".git").exists());

    let err = fetch_external(&url, &work.path().join("head"), None).unwrap_err();
    assert!(err.to_string().contains("no bin/compile"), "{err}");
    let err = fetch_external(&format!("{url}#v9"), &work.path().join("v9"), None).unwrap_err();
    assert!(err.to_string().contains("git clone failed"), "{err}");
}

#[test]
fn specs_are_classified() {
    use BuildpackSpec::*;
    let git = |url: &str, reference: Option<&str>| Git {
        url: url.to_string(),
        reference: reference.map(str::to_string),
    };
    let cases = [
        ("/opt/buildpacks/go", Dir("/opt/buildpacks/go".into())),
        (
            "https://example.com/bp/v1.tgz",
            Tarball("https://example.com/bp/v1.tgz".into()),
        ),
        (
            "http://example.com/bp.tar.gz?token=x",
            Tarball("http://example.com/bp.tar.gz?token=x".into()),
        ),
        ("file:///srv/bp.tgz", Tarball("file:///srv/bp.tgz".into())),
        (
            "https://github.com/heroku/heroku-buildpack-nodejs#v250",
            git(
                "https://github.com/heroku/heroku-buildpack-nodejs",
                Some("v250"),
            ),
        ),
        (
            "git@github.com:org/bp.git#release/2.x",
            git("git@github.com:org/bp.git", Some("release/2.x")),
        ),
        ("file:///srv/bp.git", git("file:///srv/bp.git", None)),
        ("ssh://git@host/bp.git", git("ssh://git@host/bp.git", None)),
    ];
    for (spec, want) in cases {
        assert_eq!(BuildpackSpec::parse(spec), Ok(want), "{spec}");
        assert!(validate_buildpack_spec(spec).is_ok());
    }
}

#[test]
fn nonsense_specs_are_refused_with_a_reason() {
    for (spec, reason) in [
        ("", "empty"),
        ("heroku/nodejs", "expected an absolute directory"),
        ("relative/dir", "expected an absolute directory"),
        ("ftp://example.com/bp.tgz", "unsupported URL scheme ftp"),
        ("https://example.com/bp.tgz#v1", "takes no #ref"),
        (
            "https://example.com/bp#--upload-pack=x",
            "not a branch or tag",
        ),
        ("https://example.com/bp#a..b", "not a branch or tag"),
        ("https://example.com/bp#", "not a branch or tag"),
        ("https:///bp", "names no host"),
        ("file://host/bp.tgz", "absolute path"),
        ("-oProxyCommand=x", "starts with '-'"),
        ("https://example.com/a b", "whitespace"),
    ] {
        let err = validate_buildpack_spec(spec).unwrap_err();
        assert!(err.contains(reason), "{spec:?}: {err}");
    }
}

/// Through the builds' egress proxy, a buildpack URL on the host's loopback is refused (the
/// service there sees no request), and so are `file://` and git's non-http transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_a_buildpack_url_cannot_reach_the_host() {
    use mesh_runtime::build::egress::{EgressPolicy, ProxyLimits, serve};
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let addr = target.local_addr().unwrap();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let policy = EgressPolicy {
        host_addresses: vec!["192.0.2.2".parse().unwrap()],
        deny: Vec::new(),
        allow: Vec::new(),
    };
    let task = tokio::spawn(serve(
        proxy,
        "127.0.0.1".parse().unwrap(),
        std::sync::Arc::new(policy),
        ProxyLimits::default(),
        None,
    ));
    let work = tempfile::tempdir().unwrap();
    let tgz = work.path().join("demo.tgz");
    fs::write(&tgz, b"not really").unwrap();
    let cases = [
        format!("http://{addr}/demo.tgz"),
        format!("http://localhost:{}/demo.tgz", addr.port()),
        "http://169.254.169.254/latest.tgz".to_string(),
        format!("file://{}", tgz.display()),
        format!("http://{addr}/repo.git"),
        "git://127.0.0.1/repo.git".to_string(),
    ];
    for (i, spec) in cases.iter().enumerate() {
        let dest = work.path().join(format!("dest-{i}"));
        let (spec2, p) = (spec.clone(), proxy_url.clone());
        let err = tokio::task::spawn_blocking(move || fetch_external(&spec2, &dest, Some(&p)))
            .await
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("failed"), "{spec}: {msg}");
        if spec.starts_with("http") {
            assert!(msg.contains("403"), "refused by the proxy: {spec}: {msg}");
        }
    }
    assert!(
        target.accept().is_err(),
        "a buildpack URL reached the host's loopback"
    );
    task.abort();
}
