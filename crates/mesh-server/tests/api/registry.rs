//! The registry API (`/v2/`, pull side) with a real client: a containerd of the test's own pulls
//! an imported image with `ctr`, verifying every digest and unpacking it; another rack's token,
//! no token, other environments' images, other blobs of the store and path tricks are refused.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesh_build::digest_of;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// An OCI image layout tar with one gzip'd layer holding `files`, and a config with `cmd`.
pub(super) fn image_archive(dir: &Path, files: &[(&str, &str)], cmd: &[&str]) -> Vec<u8> {
    let root = dir.join("root");
    for (name, text) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let tar = dir.join("layer.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("."));
    let plain = std::fs::read(&tar).unwrap();
    run(Command::new("gzip").arg("-n").arg(&tar));
    let gz = std::fs::read(dir.join("layer.tar.gz")).unwrap();
    let put = |bytes: &[u8]| -> String {
        let d = digest_of(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let layer = put(&gz);
    let config = serde_json::to_vec(&json!({
        "architecture": mesh_build::distribution::oci_arch(), "os": "linux",
        "config": {"Cmd": cmd, "Env": ["GREETING=hi"], "WorkingDir": "/srv"},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&plain)]}
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": gz.len()}]
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(
        layout.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len()}]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let out = dir.join("image.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(&layout)
        .arg("."));
    std::fs::read(out).unwrap()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deploys `archive` to `env`/`app` (created, on `racks`) and returns the deployment's image.
async fn deploy_image(s: &TestServer, env: &str, racks: &[&str], archive: Vec<u8>) -> Value {
    ok::<Value>(
        s.post("/v1/environments", json!({"name": env, "racks": racks}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post(
            &format!("/v1/environments/{env}/stacks"),
            json!({"name": "app"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let digest = digest_of(&archive);
    let put = s
        .req(Method::PUT, &format!("/v1/sources/{digest}?kind=image"))
        .body(archive)
        .send()
        .await
        .unwrap();
    ok::<Value>(put, StatusCode::OK).await;
    let stack = format!("/v1/environments/{env}/stacks/app");
    let created: Value = ok(
        s.post(
            &format!("{stack}/deployments"),
            json!({"image_archive": digest}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let version = created["version"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d: Value = s.get_ok(&format!("{stack}/deployments/{version}")).await;
        if d["image"].is_object() {
            return d;
        }
        assert!(
            d["status"] != "failed" && Instant::now() < deadline,
            "no image imported: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A containerd of the test's own (its own root, state and socket under a tempdir), killed and
/// removed when dropped.
struct Containerd {
    child: Child,
    dir: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
                 \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
                 \"io.containerd.snapshotter.v1.devmapper\"]\n[grpc]\n  address = \"{0}/c.sock\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd runs (scripts/install-kube-deps installs it)");
        let c = Containerd {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s: {}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("c.sock"))
            .args(["-n", "test"])
            .args(args)
            .output()
            .expect("ctr runs")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Unpacked snapshots are plain directories, but a mount left by a failed step is not.
        let root = self.dir.join("root");
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            for m in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
                if Path::new(m).starts_with(&self.dir) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(root);
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A request sent as written (no client normalizes its path): the status code.
async fn raw_status(url: &str, path: &str, token: &str) -> u16 {
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn oci_error(resp: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], code, "{v}");
    v["errors"][0]["message"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_a_racks_images_and_nothing_else() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let local = std::fs::read_to_string(s.dir.join("local-join-token"))
        .unwrap()
        .trim()
        .to_string();
    let created: Value = ok(
        s.post(
            "/v1/racks",
            json!({"name": "east", "provider": "local", "region": "east", "domain": "east.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let east = created["join_token"].as_str().unwrap().to_string();

    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    let archive = image_archive(
        &tmp.path().join("a"),
        &[("srv/hello.txt", "hello from the registry\n")],
        &["/bin/serve", "--port", "8080"],
    );
    let archive_digest = digest_of(&archive);
    let shop = deploy_image(&s, "shop", &["local"], archive).await;
    let image = &shop["image"];
    let version = shop["version"].as_str().unwrap();
    let hex = image["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let layer = image["layers"][0].as_str().unwrap().to_string();
    std::fs::create_dir_all(tmp.path().join("b")).unwrap();
    let other = image_archive(&tmp.path().join("b"), &[("bank.txt", "vault\n")], &["/x"]);
    let bank = deploy_image(&s, "bank", &["east"], other).await;
    let bank_layer = bank["image"]["layers"][0].as_str().unwrap().to_string();

    let get = |path: &str, token: Option<&str>| {
        let mut r = s.http.get(format!("{}{path}", s.url));
        if let Some(t) = token {
            r = r.basic_auth("anyone", Some(t));
        }
        r.send()
    };

    // The version check: a challenge without credentials, 200 with a join token.
    let resp = get("/v2/", None).await.unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"widemesh\""
    );
    oci_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let resp = get("/v2/", Some(&local)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let resp = get("/v2/", Some("mesh_not_a_token")).await.unwrap();
    oci_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    // An admin token is not a pull token.
    let resp = s.req(Method::GET, "/v2/").send().await.unwrap();
    oci_error(resp, StatusCode::FORBIDDEN, "DENIED").await;

    // The manifest by version, by image digest and by its own digest: the same bytes.
    let by_version = get(&format!("/v2/shop/app/manifests/{version}"), Some(&local))
        .await
        .unwrap();
    assert_eq!(by_version.status(), StatusCode::OK);
    assert_eq!(
        by_version.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest_digest = by_version.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = by_version.bytes().await.unwrap();
    assert_eq!(digest_of(&bytes), manifest_digest);
    for reference in [format!("sha256-{hex}"), manifest_digest.clone()] {
        let again = get(&format!("/v2/shop/app/manifests/{reference}"), Some(&local))
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::OK, "{reference}");
        assert_eq!(again.bytes().await.unwrap(), bytes, "{reference}");
    }
    let head = s
        .http
        .head(format!("{}/v2/shop/app/blobs/{layer}", s.url))
        .bearer_auth(&local)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["docker-content-digest"], layer.as_str());
    let len: usize = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(len > 0);

    // Refusals, as a hostile tenant would try them.
    let m = oci_error(
        get("/v2/bank/app/manifests/v0", Some(&local))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    assert!(m.contains("not placed on rack \"local\""), "{m}");
    oci_error(
        get(&format!("/v2/shop/app/manifests/{version}"), Some(&east))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    oci_error(
        get("/v2/nowhere/app/manifests/v0", Some(&local))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    oci_error(
        get("/v2/shop/nothing/manifests/v0", Some(&local))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
    )
    .await;
    oci_error(
        get("/v2/shop/app/manifests/latest", Some(&local))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    oci_error(
        get("/v2/shop/app/manifests/v7", Some(&local))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    // Another environment's layer through this one's repository; the uploaded archive (a blob
    // of the same store); a digest naming nothing; not a digest at all.
    for blob in [
        bank_layer.clone(),
        archive_digest,
        format!("sha256:{}", "0".repeat(64)),
    ] {
        oci_error(
            get(&format!("/v2/shop/app/blobs/{blob}"), Some(&local))
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        )
        .await;
    }
    oci_error(
        get("/v2/shop/app/blobs/sha256:..%2F..%2Fetc", Some(&local))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
    // East's token pulls its own environment's layer, not shop's through bank's name.
    let resp = get(&format!("/v2/bank/app/blobs/{bank_layer}"), Some(&east))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    oci_error(
        get(&format!("/v2/bank/app/blobs/{layer}"), Some(&east))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
    // Paths that walk or smuggle a slash never reach another repository.
    for path in [
        "/v2/shop/../bank/app/manifests/v0".to_string(),
        "/v2/shop/app/../../bank/app/manifests/v0".to_string(),
        "/v2/bank%2Fapp/app/manifests/v0".to_string(),
        "/v2/shop%2F..%2Fbank/app/manifests/v0".to_string(),
        format!("/v2/shop/app/blobs/..%2F..%2F{}", bank_layer),
    ] {
        let status = raw_status(&s.url, &path, &local).await;
        assert!(
            [400, 403, 404].contains(&status),
            "{path} answered {status}"
        );
    }
    // Nothing is pushed.
    let push = s
        .http
        .post(format!("{}/v2/shop/app/blobs/uploads/", s.url))
        .bearer_auth(&local)
        .send()
        .await
        .unwrap();
    oci_error(push, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    let put = s
        .http
        .put(format!("{}/v2/shop/app/manifests/v9", s.url))
        .bearer_auth(&local)
        .body("{}")
        .send()
        .await
        .unwrap();
    oci_error(put, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;

    // A real client: containerd pulls, verifies every digest and unpacks.
    let c = Containerd::start(&tmp.path().join("containerd"));
    let host = s.url.trim_start_matches("http://").to_string();
    let name = format!("{host}/shop/app:{version}");
    let user = format!("x:{local}");
    let started = Instant::now();
    let out = c.ctr(&["images", "pull", "--plain-http", "--user", &user, &name]);
    eprintln!("ctr pull took {:.2}s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "ctr pull: {}", text(&out));
    let out = c.ctr(&["images", "check"]);
    let listing = text(&out);
    assert!(
        out.status.success() && listing.contains(&name) && listing.contains("complete"),
        "{listing}"
    );
    let out = c.ctr(&["images", "ls"]);
    assert!(text(&out).contains(&manifest_digest), "{}", text(&out));
    // The unpacked file system holds the layer's file.
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = c.ctr(&["images", "mount", &name, mnt.to_str().unwrap()]);
    assert!(out.status.success(), "ctr images mount: {}", text(&out));
    let hello = std::fs::read_to_string(mnt.join("srv/hello.txt"));
    let out = c.ctr(&["images", "unmount", "--rm", mnt.to_str().unwrap()]);
    assert!(out.status.success(), "ctr images unmount: {}", text(&out));
    assert_eq!(hello.unwrap(), "hello from the registry\n");
    // By the image digest the desired state names, too.
    let by_image = format!("{host}/shop/app:sha256-{hex}");
    let out = c.ctr(&["images", "pull", "--plain-http", "--user", &user, &by_image]);
    assert!(out.status.success(), "ctr pull: {}", text(&out));

    // Another rack's token, a wrong one, none: refused.
    let east_user = format!("x:{east}");
    for args in [
        vec![
            "images",
            "pull",
            "--plain-http",
            "--user",
            &east_user,
            &name,
        ],
        vec![
            "images",
            "pull",
            "--plain-http",
            "--user",
            "x:mesh_wrong",
            &name,
        ],
        vec!["images", "pull", "--plain-http", &name],
    ] {
        let out = c.ctr(&args);
        assert!(!out.status.success(), "{args:?} pulled: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains("403")
                || t.contains("401")
                || t.contains("unauthorized")
                || t.contains("denied"),
            "{args:?}: {t}"
        );
    }
    drop(c);
}
