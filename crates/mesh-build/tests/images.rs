//! Privileged tests of the Dockerfile formula and image import with real buildah (root,
//! buildah, busybox-static; they skip with a note otherwise). Images are built `FROM scratch`:
//! no registry is reachable here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mesh_build::blobs::BlobDir;
use mesh_build::dockerfile::{DockerfileBuild, DockerfileError, build_dockerfile};
use mesh_build::layer::unpack_layer;
use mesh_build::oci::import_archive;
use mesh_runtime::build::{BuildLimits, EgressConfig};
use mesh_types::desired::BuiltImage;
use tokio::sync::mpsc::unbounded_channel;

fn find(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn usable() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let ok = root && find("buildah").is_some() && find("busybox").is_some();
    if !ok {
        eprintln!("skipping: needs root, buildah and busybox-static");
    }
    ok
}

const DOCKERFILE: &str = "FROM scratch\n\
ARG GREETING=default\n\
COPY busybox /busybox\n\
ENV MSG=$GREETING \\\n    LEAK=${UNDECLARED}\n\
WORKDIR /srv\n\
CMD [\"/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\"]\n";

struct Fixture {
    dir: tempfile::TempDir,
    context: PathBuf,
    blobs: BlobDir,
}

fn fixture(dockerfile: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::copy(find("busybox").unwrap(), context.join("busybox")).unwrap();
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    Fixture {
        blobs: BlobDir::new(dir.path().join("blobs")),
        context,
        dir,
    }
}

impl Fixture {
    fn build(&self, name: &str, config: &[(&str, &str)]) -> DockerfileBuild {
        DockerfileBuild {
            context: self.context.clone(),
            dockerfile: self.context.join("Dockerfile"),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            id: format!("mbt-{}-{name}", std::process::id()),
            storage: self.dir.path().join("storage"),
            limits: BuildLimits::default(),
            network: None,
        }
    }

    fn storage(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.dir.path().join("storage/root").display().to_string(),
            "--runroot".into(),
            self.dir
                .path()
                .join("storage/runroot")
                .display()
                .to_string(),
            "--storage-driver".into(),
            "overlay".into(),
        ]
    }
}

/// buildah's storage keeps containers and mounts (its overlay root is a mount of its own): a
/// test's storage is emptied and unmounted, by its own path, whatever the test did.
impl Drop for Fixture {
    fn drop(&mut self) {
        for args in [&["rm", "--all"][..], &["rmi", "--all", "--force"][..]] {
            let _ = std::process::Command::new("buildah")
                .args(self.storage())
                .args(args)
                .output();
        }
        let root = self.dir.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        // Deepest first.
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = std::process::Command::new("umount").arg(m).output();
        }
    }
}

/// The busybox binary is in the image's only layer, executable.
fn assert_has_busybox(image: &BuiltImage, blobs: &BlobDir, scratch: &Path) {
    assert_eq!(image.layers.len(), 1, "{image:?}");
    let out = scratch.join(format!("unpacked-{}", &image.digest[7..19]));
    unpack_layer(&blobs.path(&image.layers[0]).unwrap(), &out).unwrap();
    let meta = std::fs::metadata(out.join("busybox")).unwrap();
    assert_eq!(
        meta.len(),
        std::fs::metadata(find("busybox").unwrap()).unwrap().len()
    );
    assert!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0);
}

fn assert_no_cgroup(id: &str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts = mesh_runtime::cgroup::CgroupMounts::parse(&mountinfo);
    for d in mounts.all_dirs(&format!("/widemesh_build/{id}")) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[tokio::test]
async fn a_dockerfile_from_scratch_builds_with_declared_args_only() {
    if !usable() {
        return;
    }
    let f = fixture(DOCKERFILE);
    let b = f.build("ok", &[("GREETING", "hello"), ("UNDECLARED", "secret")]);
    let (tx, mut rx) = unbounded_channel();
    let start = Instant::now();
    let image = build_dockerfile(&b, &f.blobs, tx).await.unwrap();
    eprintln!(
        "build_dockerfile FROM scratch (bud + push + import): {:?}",
        start.elapsed()
    );
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    let text = lines.join("\n");
    assert!(
        text.contains("STEP"),
        "buildah's output is streamed: {text}"
    );
    // Only declared ARGs are passed: buildah would warn about an unconsumed one.
    assert!(!text.contains("not consumed"), "{text}");
    assert_eq!(image.base, None);
    assert_eq!(image.config.cmd, ["/busybox", "httpd", "-f", "-p", "8080"]);
    assert_eq!(image.config.env["MSG"], "hello");
    assert_eq!(image.config.env["LEAK"], "");
    assert_eq!(image.config.workdir.as_deref(), Some("/srv"));
    assert_has_busybox(&image, &f.blobs, f.dir.path());
    assert_no_cgroup(&b.id);
    // The temporary tag is gone; the storage's tmp directory is empty again.
    let out = std::process::Command::new("buildah")
        .args(f.storage())
        .args(["images", "--format", "{{.Name}}"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&b.id));
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("storage/tmp"))
            .unwrap()
            .count(),
        0
    );

    // Warm cache: the same build again.
    let (tx, _rx) = unbounded_channel();
    let start = Instant::now();
    let again = build_dockerfile(&b, &f.blobs, tx).await.unwrap();
    eprintln!("build_dockerfile FROM scratch, warm: {:?}", start.elapsed());
    assert_eq!(again.config, image.config);
}

#[tokio::test]
async fn a_broken_dockerfile_fails_with_the_step_and_its_last_lines() {
    if !usable() {
        return;
    }
    let f = fixture("FROM scratch\nCOPY busybox /busybox\nFROBNICATE now\n");
    let b = f.build("bad", &[]);
    let (tx, _rx) = unbounded_channel();
    let err = build_dockerfile(&b, &f.blobs, tx).await.unwrap_err();
    assert!(
        matches!(
            err,
            DockerfileError::Failed {
                step: "buildah bud",
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("buildah bud exited with code"), "{msg}");
    assert!(msg.contains("FROBNICATE"), "{msg}");
    assert_no_cgroup(&b.id);
}

#[tokio::test]
async fn archives_pushed_by_buildah_import() {
    if !usable() {
        return;
    }
    let f = fixture(DOCKERFILE);
    let tag = format!("localhost/mbt-fixture-{}:1", std::process::id());
    let buildah = |args: &[&str]| {
        let out = std::process::Command::new("buildah")
            .args(f.storage())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ctx = f.context.display().to_string();
    buildah(&[
        "bud",
        "--isolation",
        "chroot",
        "--build-arg",
        "GREETING=archived",
        "-t",
        &tag,
        &ctx,
    ]);
    let oci = f.dir.path().join("image.oci.tar");
    let docker = f.dir.path().join("image.docker.tar");
    buildah(&["push", &tag, &format!("oci-archive:{}", oci.display())]);
    buildah(&[
        "push",
        &tag,
        &format!("docker-archive:{}", docker.display()),
    ]);
    buildah(&["rmi", &tag]);
    for archive in [&oci, &docker] {
        let image = import_archive(archive, &f.blobs).unwrap();
        assert_eq!(image.config.env["MSG"], "archived", "{}", archive.display());
        assert_eq!(image.config.cmd, ["/busybox", "httpd", "-f", "-p", "8080"]);
        assert_has_busybox(&image, &f.blobs, f.dir.path());
    }
}

/// A hostile Dockerfile, tried: its `RUN` step lists `/proc` (only the build's own few
/// processes), tries a service on every host address (directly, through the host side of its
/// veth and through the proxy), and reads its build argument from its environment while the
/// secret is on no command line. A reserved name is not passed; `RUN --mount` is refused
/// before buildah runs.
#[tokio::test]
async fn a_dockerfile_run_step_sees_only_its_build_and_reaches_only_the_proxy() {
    if !usable() || find("nft").is_none() {
        return;
    }
    let service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    service.set_nonblocking(true).unwrap();
    let port = service.local_addr().unwrap().port();
    let probe = format!(
        "export PATH=/bin; /busybox mkdir -p /bin && /busybox --install -s /bin\n\
         echo procs $(ls /proc | grep -c '^[0-9]')\n\
         for f in /proc/[0-9]*/cmdline; do c=$(tr '\\0' ' ' < $f); case \"$c\" in *s3cr3t*) echo cmdline-has-secret $f: $c;; esac; done\n\
         gw=${{HTTP_PROXY#http://}}; gw=${{gw%:*}}; echo proxy $gw\n\
         for a in 127.0.0.1 $gw; do\n\
           if echo x | nc -w 2 $a {port} >/dev/null 2>&1; then echo reached $a; else echo refused $a; fi\n\
         done\n\
         echo get $(printf 'GET http://127.0.0.1:{port}/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -w 3 $gw 3128 | head -1)\n\
         echo secret-len ${{#SECRET}}\n"
    );
    let f = fixture(
        "FROM scratch\nARG SECRET\nARG LD_PRELOAD\nCOPY busybox probe.sh /\n\
         RUN [\"/busybox\", \"sh\", \"/probe.sh\"]\n",
    );
    std::fs::write(f.context.join("probe.sh"), probe).unwrap();
    let mut b = f.build(
        "hostile",
        &[("SECRET", "s3cr3t-value"), ("LD_PRELOAD", "/tmp/evil.so")],
    );
    b.network = Some(std::sync::Arc::new(EgressConfig {
        subnet: "10.228.0.0/16".parse().unwrap(),
        ..EgressConfig::default()
    }));
    let (tx, mut rx) = unbounded_channel();
    let result = build_dockerfile(&b, &f.blobs, tx).await;
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    let text = lines.join("\n");
    result.unwrap_or_else(|e| panic!("{e}\n{text}"));
    let procs: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("procs "))
        .unwrap_or_else(|| panic!("{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(procs <= 8, "the RUN step sees {procs} processes:\n{text}");
    assert!(!text.contains("cmdline-has-secret"), "{text}");
    assert!(text.contains("secret-len 12"), "{text}");
    let gw = lines
        .iter()
        .find_map(|l| l.strip_prefix("proxy "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(gw.starts_with("10.228."), "{text}");
    assert!(text.contains("refused 127.0.0.1"), "{text}");
    assert!(text.contains(&format!("refused {gw}")), "{text}");
    assert!(!text.contains("reached"), "{text}");
    assert!(text.contains("get HTTP/1.1 403"), "{text}");
    assert!(text.contains("Not passing LD_PRELOAD"), "{text}");
    assert!(service.accept().is_err(), "the host's service was reached");
    assert_no_cgroup(&b.id);

    let f = fixture("FROM scratch\nRUN --mount=type=bind,from=x,source=/,target=/h true\n");
    let (tx, _rx) = unbounded_channel();
    let err = build_dockerfile(&f.build("mount", &[]), &f.blobs, tx)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerfileError::Refused(_)), "{err}");
    assert!(err.to_string().contains("RUN --mount"), "{err}");
}
