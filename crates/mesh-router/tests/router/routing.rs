//! Host, then longest path prefix on segment boundaries; unknown hosts get a bland 404.

use http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn routes_by_host_then_longest_prefix() {
    let web = Backend::echo("web").await;
    let api = Backend::echo("api").await;
    let v2 = Backend::echo("v2").await;
    let admin = Backend::echo("admin").await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/", "web")
            .route("shop.test", "/api", "api")
            .route("shop.test", "/api/v2", "v2")
            .route("admin.test", "/", "admin")
            .upstream("web", vec![inst("web-1", web.addr)])
            .upstream("api", vec![inst("api-1", api.addr)])
            .upstream("v2", vec![inst("v2-1", v2.addr)])
            .upstream("admin", vec![inst("admin-1", admin.addr)])
            .build(),
    )
    .await;
    let a = r.http_addr();
    for (host, path, want) in [
        ("shop.test", "/", "web"),
        ("shop.test", "/index.html", "web"),
        ("shop.test", "/api", "api"),
        ("shop.test", "/api/", "api"),
        ("shop.test", "/api/users?id=1", "api"),
        ("shop.test", "/apix", "web"),
        ("shop.test", "/api/v2", "v2"),
        ("shop.test", "/api/v2/orders", "v2"),
        ("shop.test", "/api/v20", "api"),
        ("SHOP.test:8080", "/api", "api"),
        ("shop.test.", "/", "web"),
        ("admin.test", "/api", "admin"),
    ] {
        let reply = get(a, host, path).await;
        assert_eq!(reply.backend(), want, "{host}{path}: {reply:?}");
        // The path and query reach the instance unchanged.
        assert_eq!(reply.echo().path, path);
    }
}

#[tokio::test]
async fn unknown_host_gets_404_that_names_nothing_internal() {
    let web = Backend::echo("web").await;
    let r = router(
        Cfg::default()
            .route("shop.test", "/api", "web")
            .upstream("web", vec![inst("instance-web-1", web.addr)])
            .build(),
    )
    .await;
    let a = r.http_addr();
    for (host, path) in [("unknown.test", "/"), ("shop.test", "/not-api")] {
        let reply = get(a, host, path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.headers["x-mesh-error"], "no-route");
        assert!(
            reply.body.contains("No application is published"),
            "{}",
            reply.body
        );
        for secret in [
            "127.0.0.1",
            &web.addr.port().to_string(),
            "instance-web-1",
            "shop/app",
            "web",
        ] {
            assert!(
                !reply.body.contains(secret),
                "404 leaks {secret}: {}",
                reply.body
            );
        }
        assert!(reply.headers.get("x-request-id").is_some());
    }
    assert_eq!(web.hits(), 0);
}

#[tokio::test]
async fn a_router_without_config_answers_404() {
    init();
    let r = mesh_router::Router::bind("127.0.0.1:0".parse().expect("addr"), None)
        .await
        .expect("bind");
    let reply = get(r.http_addr(), "anything.test", "/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
