use super::*;
use crate::spec::tests::sample;

#[tokio::test]
async fn behaves_like_a_runtime() {
    let rt = FakeRuntime::new();
    let spec = sample();
    assert!(matches!(rt.create(&spec).await, Err(Error::NoNetwork(_))));
    let net = NetworkSpec::new("shop", "10.5.0.0/24".parse().unwrap());
    rt.ensure_network(&net).await.unwrap();
    let h = rt.create(&spec).await.unwrap();
    assert_eq!(h.address, "10.5.0.2".parse::<std::net::Ipv4Addr>().unwrap());
    assert!(matches!(
        rt.create(&spec).await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        rt.remove_network("shop").await,
        Err(Error::NetworkInUse { instances: 1, .. })
    ));
    assert!(rt.state(&spec.id).await.unwrap().status.is_running());

    rt.exit(
        &spec.id,
        ExitStatus {
            code: Some(137),
            signal: Some(9),
            oom_killed: true,
        },
    );
    let st = rt.wait(&spec.id).await.unwrap();
    assert!(st.oom_killed);
    assert!(matches!(
        rt.exec(&spec.id, &["true".into()]).await,
        Err(Error::NotRunning(_))
    ));
    rt.delete(&spec.id).await.unwrap();
    rt.remove_network("shop").await.unwrap();
    assert!(rt.list().await.unwrap().is_empty());
    assert_eq!(rt.calls()[0], "create app-web-1");
}

#[tokio::test]
async fn stop_and_scripted_failures() {
    let rt: Arc<dyn Runtime> = Arc::new(FakeRuntime::new());
    rt.ensure_network(&NetworkSpec::new("shop", "10.5.0.0/24".parse().unwrap()))
        .await
        .unwrap();
    let spec = sample();
    rt.create(&spec).await.unwrap();
    let st = rt.stop(&spec.id, Duration::from_secs(1)).await.unwrap();
    assert_eq!(st.code, Some(143));

    let fake = FakeRuntime::new();
    fake.ensure_network(&NetworkSpec::new("shop", "10.5.0.0/24".parse().unwrap()))
        .await
        .unwrap();
    fake.fail_next_create("no runc");
    assert!(matches!(
        fake.create(&spec).await,
        Err(Error::StartFailed { .. })
    ));
    fake.create(&spec).await.unwrap();
}
