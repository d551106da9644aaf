//! Every example in `examples/` deployed from a fresh `mesh up` with one `mesh deploy`, as a new
//! user would, with the real builder: buildpacks detect the language, install its runtime from
//! Debian into a cached layer, compile in isolated build containers; the Dockerfile example builds
//! with buildah; a prebuilt OCI image archive deploys with `mesh deploy --image`. Each then
//! answers through the edge router on its platform alias. Privileged and slow (it installs each
//! language's runtime once): CI runs it as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::web::{Purge, assert_root, free_port, get, wait_for_body};

const PREFIX: &str = "e4x";
const POOL: &str = "10.239.0.0/16";
/// A first build downloads and installs a language runtime.
const BUILD: Duration = Duration::from_secs(900);

pub(crate) fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

fn deploy(p: &Platform, dir: &Path, extra: &[&str]) -> Out {
    let started = Instant::now();
    let mut args = vec!["deploy", "--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = p.mesh_for(&args, BUILD);
    eprintln!(
        "deployed {} in {:.1}s (exit {})",
        dir.display(),
        started.elapsed().as_secs_f64(),
        out.code
    );
    assert_eq!(
        out.code,
        0,
        "mesh deploy {}:\n{}\n{}\n{}",
        dir.display(),
        out.stdout,
        out.stderr,
        p.log()
    );
    out
}

/// buildah's arguments for the storage the platform's builder uses.
fn buildah(storage: &Path, args: &[&str]) -> String {
    let out = Command::new("buildah")
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("runroot"))
        .args(["--storage-driver", "overlay"])
        .args(args)
        .output()
        .expect("buildah runs");
    assert!(
        out.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An image made from a directory, committed as `name` in the buildah storage at `storage`.
pub(crate) fn image_from_dir(storage: &Path, dir: &Path, name: &str, cmd: Option<&str>) {
    let c = buildah(storage, &["from", "scratch"]);
    buildah(storage, &["copy", &c, dir.to_str().unwrap(), "/"]);
    if let Some(cmd) = cmd {
        buildah(storage, &["config", "--cmd", cmd, &c]);
    }
    buildah(storage, &["commit", "--rm", &c, name]);
}

#[test]
fn every_example_deploys_with_one_command_and_answers() {
    assert_root();
    let home = Home::new();
    let data = home.data_dir();
    let _purge = Purge::with_home(home.path().to_path_buf(), data.clone(), PREFIX);
    let http = free_port();
    let (http_s, https_s) = (
        format!("127.0.0.1:{http}"),
        format!("127.0.0.1:{}", free_port()),
    );
    let p = Platform::start_with(
        home,
        &[
            "--net-prefix",
            PREFIX,
            "--subnet-pool",
            POOL,
            "--http-listen",
            &http_s,
            "--https-listen",
            &https_s,
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let mut envs = Vec::new();

    // The buildpack examples: one deploy each, answering on <dir>.localhost.
    for (example, answer) in [
        ("static", "<!doctype html>"),
        ("python", "hello from python (six 1.16.0)"),
        ("nodejs", "hello from nodejs"),
        ("node-deps", "hello from nodejs with dependencies"),
        ("ruby", "hello from ruby"),
        ("php", "hello from php"),
        ("go", "hello from go"),
        ("java", "hello from java"),
        ("rust", "hello from rust"),
    ] {
        let dir = work.path().join(example);
        copy_dir(&examples().join(example), &dir);
        let out = deploy(&p, &dir, &[]);
        let host = format!("{example}.localhost");
        assert!(
            out.stdout
                .contains(&format!("web answers at http://{host}/")),
            "{}",
            out.stdout
        );
        wait_for_body(http, &host, answer, Duration::from_secs(30));
        envs.push(example.to_string());
    }

    // web + worker + release from a Procfile; a config change is a release of the same build.
    let dir = work.path().join("procfile");
    copy_dir(&examples().join("procfile"), &dir);
    let out = deploy(&p, &dir, &[]);
    assert!(out.stdout.contains("release: done"), "{}", out.stdout);
    wait_for_body(
        http,
        "procfile.localhost",
        "hello from procfile (web)",
        Duration::from_secs(30),
    );
    let services = p
        .mesh(&["services", "list", "--env", "procfile", "--json"])
        .ok()
        .json();
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "worker"], "{services}");
    p.mesh(&[
        "config",
        "set",
        "GREETING=hey",
        "--env",
        "procfile",
        "--stack",
        "procfile",
    ])
    .ok();
    wait_for_body(
        http,
        "procfile.localhost",
        "hey from procfile (web)",
        Duration::from_secs(60),
    );
    envs.push("procfile".into());

    // An external buildpack (Heroku interface) given as a directory: it vendors its own server.
    let bp = work.path().join("buildpack");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", bp.join("busybox")).unwrap();
    let script = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = bp.join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("detect", "[ -f \"$1/site.txt\" ] && echo site");
    script(
        "compile",
        "echo \"-----> vendoring a web server\"\nmkdir -p \"$1/bin\" \"$1/www\"\n\
         cp \"$(dirname \"$0\")/../busybox\" \"$1/bin/busybox\"\n\
         cp \"$1/site.txt\" \"$1/www/index.html\"\n\
         echo \"compiled with GREETING=$(cat \"$3/GREETING\")\"",
    );
    script(
        "release",
        "printf 'default_process_types:\\n  web: /app/bin/busybox httpd -f -p $PORT -h /app/www\\n'",
    );
    let dir = work.path().join("external");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("site.txt"), "hello from an external buildpack\n").unwrap();
    p.mesh(&["env", "create", "external"]).ok();
    p.mesh(&["create", "stack", "external", "--env", "external"])
        .ok();
    let e = ["--env", "external", "--stack", "external"];
    p.mesh(
        &[
            &["stack", "buildpacks", "add", bp.to_str().unwrap()][..],
            &e[..],
        ]
        .concat(),
    )
    .ok();
    p.mesh(&[&["config", "set", "GREETING=hi"][..], &e[..]].concat())
        .ok();
    let out = deploy(&p, &dir, &[]);
    assert!(
        out.stdout.contains("vendoring a web server"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("compiled with GREETING=hi"),
        "{}",
        out.stdout
    );
    wait_for_body(
        http,
        "external.localhost",
        "hello from an external buildpack",
        Duration::from_secs(30),
    );
    envs.push("external".into());

    // A cron job: its service has a schedule; runs print to the logs.
    let dir = work.path().join("cron");
    copy_dir(&examples().join("cron"), &dir);
    p.mesh(&["env", "create", "cron"]).ok();
    p.mesh(&["create", "stack", "cron", "--env", "cron"]).ok();
    p.mesh(&[
        "svc",
        "create",
        "-n",
        "tick",
        "--schedule",
        "@every 2s",
        "--env",
        "cron",
        "--stack",
        "cron",
        "--",
        "node tick.js",
    ])
    .ok();
    deploy(&p, &dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = p.mesh(&["logs", "--env", "cron", "--since", "5m"]);
        if logs.stdout.contains("tick at ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cron run printed: {}",
            logs.stdout
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    envs.push("cron".into());

    // The Dockerfile example, from a Debian base imported into the builder's buildah storage
    // (no registry is reachable here) and named through its declared BASE argument. buildah's
    // storage is per environment.
    let storage = data.join("builds/buildah/dockerfile");
    let base = PathBuf::from(mesh_runtime::image::MACHINE_CACHE).join("base-bookworm/rootfs");
    assert!(base.is_dir(), "the base image was made by the builds above");
    image_from_dir(
        &storage,
        &base,
        "localhost/widemesh-test/debian:bookworm",
        None,
    );
    p.mesh(&["env", "create", "dockerfile"]).ok();
    p.mesh(&["create", "stack", "dockerfile", "--env", "dockerfile"])
        .ok();
    p.mesh(&[
        "config",
        "set",
        "BASE=localhost/widemesh-test/debian:bookworm",
        "--env",
        "dockerfile",
        "--stack",
        "dockerfile",
    ])
    .ok();
    let dir = work.path().join("dockerfile");
    copy_dir(&examples().join("dockerfile"), &dir);
    let out = deploy(&p, &dir, &[]);
    assert!(out.stderr.contains("dockerfile formula"), "{}", out.stderr);
    wait_for_body(
        http,
        "dockerfile.localhost",
        "hello from dockerfile",
        Duration::from_secs(30),
    );
    envs.push("dockerfile".into());

    // A prebuilt image: an OCI archive made with buildah from a static busybox.
    let own = work.path().join("image-storage");
    let root = work.path().join("image-root");
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy("/bin/busybox", root.join("busybox")).unwrap();
    std::fs::write(root.join("www/index.html"), "hello from an image\n").unwrap();
    image_from_dir(
        &own,
        &root,
        "localhost/widemesh-test/web:1",
        Some(r#"["/busybox", "sh", "-c", "exec /busybox httpd -f -p $PORT -h /www"]"#),
    );
    let archive = work.path().join("web.tar");
    buildah(
        &own,
        &[
            "push",
            "localhost/widemesh-test/web:1",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    let out = deploy(
        &p,
        work.path(),
        &[
            "--image",
            archive.to_str().unwrap(),
            "--env",
            "image",
            "--stack",
            "image",
        ],
    );
    assert!(out.stdout.contains("Imported image"), "{}", out.stdout);
    wait_for_body(
        http,
        "image.localhost",
        "hello from an image",
        Duration::from_secs(30),
    );
    let _ = buildah(&own, &["rmi", "--all", "--force"]);
    envs.push("image".into());

    assert_eq!(get(http, "static.localhost").map(|r| r.0), Ok(200));
    for env in &envs {
        p.mesh(&["env", "delete", env, "--yes"]).ok();
    }
    let _ = buildah(&storage, &["rmi", "--all", "--force"]);
}
