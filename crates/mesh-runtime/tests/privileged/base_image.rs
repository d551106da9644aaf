//! The Debian base image: made once with debootstrap from the host's apt mirror, cached
//! outside the test's temporary directory, then run like any image. No skipping: if the
//! mirror is unreachable, this fails and says so.

use std::path::Path;

use mesh_runtime::Runtime;
use mesh_runtime::image::{BaseImageOptions, ImageRecord, base_image, record_path};
use mesh_runtime::state::read_json;

use super::support::Fixture;

pub const CACHE: &str = "/var/cache/widemesh/base-bookworm";

#[tokio::test]
async fn the_debian_base_image_is_built_once_and_runs() {
    let fx = Fixture::new(15).await;
    let started = std::time::Instant::now();
    let image = base_image(Path::new(CACHE), &BaseImageOptions::default())
        .await
        .unwrap_or_else(|e| panic!("building the base image at {CACHE} failed: {e}"));
    eprintln!("base image ready in {:?}", started.elapsed());
    let record: ImageRecord = read_json(&record_path(Path::new(CACHE))).unwrap().unwrap();
    assert_eq!(record.kind, "debian");
    assert!(record.version.starts_with("12."), "{record:?}");
    assert!(record.source.contains(" bookworm minbase"), "{record:?}");

    fx.network("app", 0).await;
    let mut spec = fx.spec(
        "deb",
        "app",
        "app-deb",
        "cat /etc/debian_version; id -un; command -v apt-get; echo x > /tmp/w && echo writable",
    );
    spec.image = image.clone();
    fx.rt.create(&spec).await.unwrap();
    let st = fx.wait("deb", 30).await;
    assert_eq!(st.code, Some(0), "{}", fx.stderr("deb"));
    assert_eq!(
        fx.stdout("deb"),
        format!("{}\nnobody\n/usr/bin/apt-get\nwritable\n", record.version)
    );
    assert!(!image.layers[0].join("tmp/w").exists());

    // The second time it is the cache.
    let started = std::time::Instant::now();
    base_image(Path::new(CACHE), &BaseImageOptions::default())
        .await
        .unwrap();
    assert!(started.elapsed().as_secs() < 2);

    fx.rt.delete("deb").await.unwrap();
    fx.rt.remove_network("app").await.unwrap();
    fx.assert_clean().await;
}
