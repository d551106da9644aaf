//! Teardown leaves nothing: no mounts, namespaces, links, cgroups, nft table, containers or
//! directories, whether instances are deleted one by one or purged.

use std::time::Duration;

use mesh_runtime::{Error, Runtime};

use super::support::Fixture;

#[tokio::test]
async fn deleting_everything_leaves_nothing_behind() {
    let fx = Fixture::new(12).await;
    fx.network("shop", 0).await;
    fx.network("blog", 1).await;
    fx.rt
        .create(&fx.spec("a1", "shop", "app-a", "exec sleep 600"))
        .await
        .unwrap();
    fx.rt
        .create(&fx.spec("a2", "shop", "app-b", "exit 0"))
        .await
        .unwrap();
    fx.rt
        .create(&fx.spec("b1", "blog", "blog-a", "exec sleep 600"))
        .await
        .unwrap();
    fx.wait("a2", 10).await;

    // While they exist, all of it is really there.
    let left = fx.leftovers().await;
    for what in [
        "netns",
        "link",
        "nft table",
        "cgroup",
        "container",
        "instance dir",
        "mount",
    ] {
        assert!(
            left.iter().any(|l| l.starts_with(what)),
            "no {what} in {left:#?}"
        );
    }
    assert!(matches!(
        fx.rt.remove_network("shop").await,
        Err(Error::NetworkInUse { instances: 2, .. })
    ));

    fx.rt.stop("a1", Duration::from_millis(100)).await.unwrap();
    fx.rt.delete("a1").await.unwrap();
    fx.rt.delete("a2").await.unwrap();
    // A running instance is killed by delete.
    fx.rt.delete("b1").await.unwrap();
    fx.rt.remove_network("shop").await.unwrap();
    fx.rt.remove_network("blog").await.unwrap();
    fx.assert_clean().await;
    assert!(fx.rt.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn purge_removes_everything_even_half_made_instances() {
    let fx = Fixture::new(13).await;
    fx.network("shop", 0).await;
    fx.rt
        .create(&fx.spec("p1", "shop", "app-a", "exec sleep 600"))
        .await
        .unwrap();
    fx.rt
        .create(&fx.spec("p2", "shop", "app-b", "exit 0"))
        .await
        .unwrap();
    // A create that fails half-way cleans up after itself.
    let mut broken = fx.spec("p3", "shop", "app-c", "true");
    broken.command = None;
    broken.image.default_command = Some(vec!["/no/such/program".into()]);
    let e = fx.rt.create(&broken).await.unwrap_err();
    assert!(e.to_string().contains("no such file"), "{e}");
    assert!(!fx.rt.instance_dir("p3").path().exists());

    fx.rt.purge().await.unwrap();
    fx.assert_clean().await;
}
