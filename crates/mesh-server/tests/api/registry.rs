//! The registry API (`/v2/`, pull side) with a real client: a containerd of the test's own pulls
//! an imported image with `ctr`, verifying every digest and unpacking it; another rack's token,
//! no token, other environments' images, other blobs of the store and path tricks are refused.
//! An image built on the built-in busybox base is pulled with its base as the first layer and
//! run with `ctr run`.

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

/// Creates `env` (on `racks`) and its stack `stack`.
async fn create_stack(s: &TestServer, env: &str, racks: &[&str], stack: &str) {
    let created = s.get(&format!("/v1/environments/{env}")).await;
    if created.status() == StatusCode::NOT_FOUND {
        ok::<Value>(
            s.post("/v1/environments", json!({"name": env, "racks": racks}))
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    ok::<Value>(
        s.post(
            &format!("/v1/environments/{env}/stacks"),
            json!({"name": stack}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
}

/// Uploads `bytes` (`kind` `image` or `source`) and deploys them to `env`/`stack` with
/// `deployment` (the upload's digest filled in under `field`); returns the deployment once it
/// has its image.
async fn deploy(s: &TestServer, env: &str, stack: &str, bytes: Vec<u8>, field: &str) -> Value {
    let digest = digest_of(&bytes);
    let kind = if field == "image_archive" {
        "image"
    } else {
        "source"
    };
    let put = s
        .req(Method::PUT, &format!("/v1/sources/{digest}?kind={kind}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    ok::<Value>(put, StatusCode::OK).await;
    let stack = format!("/v1/environments/{env}/stacks/{stack}");
    let mut body = json!({ field: digest });
    if field == "source" {
        body["formula"] = json!("buildpack");
    }
    let created: Value = ok(
        s.post(&format!("{stack}/deployments"), body).await,
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
            "no image made: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deploys `archive` to `env`/`app` (created, on `racks`) and returns the deployment's image.
async fn deploy_image(s: &TestServer, env: &str, racks: &[&str], archive: Vec<u8>) -> Value {
    create_stack(s, env, racks, "app").await;
    deploy(s, env, "app", archive, "image_archive").await
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
        self.ctr_within(120, args)
    }

    /// `ctr` stopped after `secs` seconds if it has not ended.
    fn ctr_within(&self, secs: u32, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["-s", "KILL", &secs.to_string(), "ctr", "--address"])
            .arg(self.dir.join("c.sock"))
            .args(["-n", "test"])
            .args(args)
            .output()
            .expect("ctr runs")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers a failed step left: their tasks (and with them their shims) go first.
        let stdout = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
        let tasks = stdout(self.ctr_within(10, &["tasks", "ls", "-q"]));
        for id in tasks.split_whitespace().take(20) {
            let _ = self.ctr_within(10, &["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr_within(10, &["tasks", "delete", "-f", id]);
        }
        let containers = stdout(self.ctr_within(10, &["containers", "ls", "-q"]));
        for id in containers.split_whitespace().take(20) {
            let _ = self.ctr_within(10, &["containers", "delete", id]);
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_pulls_and_runs_an_image_on_the_busybox_base() {
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

    // A source build (the test server's builder makes busybox-based images: the source at /app).
    let tree = tmp.path().join("src");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("hello.txt"), "hello from the app layer\n").unwrap();
    std::fs::write(tree.join("Procfile"), "web: sh -c 'cat hello.txt'\n").unwrap();
    let packed = mesh_build::pack(&tree).unwrap();
    create_stack(&s, "shop", &["local"], "app").await;
    let built = deploy(&s, "shop", "app", packed.bytes, "source").await;
    assert_eq!(built["image"]["base"], "busybox", "{built}");
    let version = built["version"].as_str().unwrap().to_string();
    let app_layer = built["image"]["layers"][0].as_str().unwrap().to_string();
    // Another repository of the same rack without a base, and one of another rack.
    std::fs::create_dir_all(tmp.path().join("p")).unwrap();
    let plain = image_archive(&tmp.path().join("p"), &[("p.txt", "p\n")], &["/p"]);
    create_stack(&s, "shop", &["local"], "plain").await;
    deploy(&s, "shop", "plain", plain, "image_archive").await;
    std::fs::create_dir_all(tmp.path().join("b")).unwrap();
    let other = image_archive(&tmp.path().join("b"), &[("bank.txt", "vault\n")], &["/x"]);
    deploy_image(&s, "bank", &["east"], other).await;

    let get = |path: String, token: &str| {
        s.http
            .get(format!("{}{path}", s.url))
            .basic_auth("anyone", Some(token))
            .send()
    };

    // Two first pulls at once: the base is made once, both get the same manifest.
    let manifest = format!("/v2/shop/app/manifests/{version}");
    let started = Instant::now();
    let (a, b) = tokio::join!(get(manifest.clone(), &local), get(manifest.clone(), &local));
    eprintln!(
        "the first manifests (busybox base made and packed) took {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let manifest_digest = a.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = a.bytes().await.unwrap();
    assert_eq!(bytes, b.bytes().await.unwrap());
    assert_eq!(digest_of(&bytes), manifest_digest);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{m}");
    let base_layer = layers[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(layers[1]["digest"], app_layer.as_str());
    // Remembered beside the blob store for the next start.
    let remembered = std::fs::read_to_string(s.dir.join("bases/busybox.layer.json")).unwrap();
    assert!(remembered.contains(&base_layer), "{remembered}");

    // The base layer is a blob of the repository, for its rack only.
    let blob = get(format!("/v2/shop/app/blobs/{base_layer}"), &local)
        .await
        .unwrap();
    assert_eq!(blob.status(), StatusCode::OK);
    assert_eq!(blob.headers()["docker-content-digest"], base_layer.as_str());
    let base_bytes = blob.bytes().await.unwrap();
    assert_eq!(digest_of(&base_bytes), base_layer);
    assert_eq!(layers[0]["size"], base_bytes.len());
    let m = oci_error(
        get(format!("/v2/shop/app/blobs/{base_layer}"), &east)
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    assert!(m.contains("not placed on rack \"east\""), "{m}");
    for (repo, token) in [("bank/app", &east), ("shop/plain", &local)] {
        oci_error(
            get(format!("/v2/{repo}/blobs/{base_layer}"), token)
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        )
        .await;
    }
    oci_error(
        get(manifest.clone(), &east).await.unwrap(),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;

    // containerd pulls it (checking every digest and diff id) and runs it: a file of the app
    // layer, read by the base's shell, and the base's busybox.
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
    assert!(
        text(&c.ctr(&["images", "ls"])).contains(&manifest_digest),
        "pulled another manifest"
    );
    let started = Instant::now();
    let out = c.ctr_within(
        120,
        &[
            "run",
            "--rm",
            &name,
            "wm-registry-base",
            "sh",
            "-c",
            "cat /app/hello.txt && busybox echo \"shell of $(busybox | head -n 1 | cut -d ' ' -f 1)\"",
        ],
    );
    eprintln!("ctr run took {:.2}s", started.elapsed().as_secs_f64());
    let said = text(&out);
    eprintln!("ctr run said: {said}");
    assert!(out.status.success(), "ctr run: {said}");
    assert!(
        said.contains("hello from the app layer") && said.contains("shell of BusyBox"),
        "{said}"
    );
    // The workdir of the image is honoured too: the app's Procfile command runs there.
    let out = c.ctr_within(
        120,
        &[
            "run",
            "--rm",
            &name,
            "wm-registry-base-2",
            "sh",
            "-c",
            "cat hello.txt",
        ],
    );
    assert!(
        out.status.success() && text(&out).contains("hello from the app layer"),
        "ctr run in the workdir: {}",
        text(&out)
    );
    drop(c);
}

/// `widemesh.system/agent` (the agent installed into a cluster): join tokens only, by its tags
/// or digest only; nothing is made for a request that is refused. (Pulled and run for real by
/// the Kubernetes e2e test, `kube::the_agent_installed_into_the_cluster_...`.)
#[tokio::test]
async fn the_agent_image_is_for_join_tokens_and_its_own_tags() {
    let s = TestServer::start().await;
    let local = std::fs::read_to_string(s.dir.join("local-join-token"))
        .unwrap()
        .trim()
        .to_string();
    let get = |path: &str, token: Option<&str>| {
        let mut r = s.http.get(format!("{}{path}", s.url));
        if let Some(t) = token {
            r = r.basic_auth("anyone", Some(t));
        }
        r.send()
    };
    let latest = "/v2/widemesh.system/agent/manifests/latest";
    oci_error(
        get(latest, None).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    let resp = s.req(Method::GET, latest).send().await.unwrap();
    oci_error(resp, StatusCode::FORBIDDEN, "DENIED").await;
    let resp = get("/v2/widemesh.system/agent/manifests/v9", Some(&local))
        .await
        .unwrap();
    let m = oci_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    assert!(m.contains(env!("CARGO_PKG_VERSION")), "{m}");
    let resp = get(
        "/v2/widemesh.system/agent/blobs/sha256:nothex",
        Some(&local),
    )
    .await
    .unwrap();
    oci_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    // Nothing was packed for those.
    assert!(!s.dir.join("bases/agent.layer.json").exists());
}
