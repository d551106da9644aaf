//! The writable layer belongs to one instance and goes away with it; the image never changes.

use mesh_runtime::{Runtime, User, WritableLayer};

use super::support::Fixture;

fn snapshot(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn writes_land_in_the_instance_layer_and_are_thrown_away() {
    let fx = Fixture::new(5).await;
    fx.network("app", 0).await;
    let image_dir = fx.image.layers[0].clone();
    let before = snapshot(&image_dir);

    let mut spec = fx.spec(
        "w1",
        "app",
        "app-w",
        "echo data > /tmp/marker && echo motd > /etc/motd && rm /bin/ls && cat /tmp/marker",
    );
    spec.user = User::ROOT;
    fx.rt.create(&spec).await.unwrap();
    assert_eq!(fx.wait("w1", 10).await.code, Some(0), "{}", fx.stderr("w1"));
    assert_eq!(fx.stdout("w1"), "data\n");
    let upper = fx.rt.instance_dir("w1").upper();
    assert_eq!(
        std::fs::read_to_string(upper.join("tmp/marker")).unwrap(),
        "data\n"
    );
    assert!(upper.join("etc/motd").exists());
    assert_eq!(
        snapshot(&image_dir),
        before,
        "the image directory is unchanged"
    );
    assert!(image_dir.join("bin/ls").exists());

    fx.rt.delete("w1").await.unwrap();
    assert!(!fx.rt.instance_dir("w1").path().exists());

    // The same id again starts from the image, not from the old layer.
    let again = fx.spec(
        "w1",
        "app",
        "app-w",
        "test -e /tmp/marker && echo stale || echo fresh; test -e /bin/ls && echo ls-back",
    );
    fx.rt.create(&again).await.unwrap();
    assert_eq!(fx.wait("w1", 10).await.code, Some(0));
    assert_eq!(fx.stdout("w1"), "fresh\nls-back\n");

    fx.rt.delete("w1").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}

#[tokio::test]
async fn a_tmpfs_layer_caps_what_an_instance_can_write() {
    let fx = Fixture::build(
        6,
        |o| o.writable_layer = WritableLayer::Tmpfs { size_mb: 4 },
        None,
    )
    .await;
    fx.network("app", 0).await;
    let spec = fx.spec(
        "cap",
        "app",
        "app-cap",
        "dd if=/dev/zero of=/tmp/big bs=1024 count=8192 2>&1; echo rc=$?",
    );
    fx.rt.create(&spec).await.unwrap();
    fx.wait("cap", 10).await;
    let out = fx.stdout("cap");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains("rc=1"), "{out}");

    fx.rt.delete("cap").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}
