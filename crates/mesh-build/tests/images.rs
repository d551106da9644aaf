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
use mesh_runtime::build::BuildLimits;
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
