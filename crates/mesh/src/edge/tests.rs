use mesh_agent::routing::{Backend, RoutedEnv, Upstream};
use mesh_types::Name;
use mesh_types::desired::{AcmeChallengeDoc, CertificateDoc, RouteDoc};

use super::*;

fn route(host: &str, path: &str, stack: &str, service: &str) -> RouteDoc {
    RouteDoc {
        host: host.into(),
        path: path.into(),
        stack: Name::parse(stack).unwrap(),
        service: Name::parse(service).unwrap(),
    }
}

fn backend(id: &str, port: u16) -> Backend {
    Backend {
        id: id.into(),
        addr: SocketAddr::from(([10, 231, 0, 2], port)),
        healthy: true,
        draining: false,
    }
}

#[tokio::test]
async fn routes_upstreams_certificates_and_challenges_reach_the_router() {
    let routing = Routing {
        routes: vec![
            RoutedEnv {
                environment: "shop".into(),
                https_redirects: vec!["shop.localhost".into()],
                routes: vec![
                    route("shop.localhost", "/", "a-b", "web"),
                    route("shop.localhost", "/api", "a", "b-web"),
                ],
            },
            RoutedEnv {
                environment: "blog".into(),
                https_redirects: vec![],
                routes: vec![
                    route("blog.localhost", "/", "app", "web"),
                    // Damaged: a second route for the same host and path is left out.
                    route("blog.localhost", "/", "app", "other"),
                ],
            },
        ],
        upstreams: vec![
            Upstream {
                key: "shop/a-b-web".into(),
                instances: vec![backend("i1", 5000)],
            },
            Upstream {
                key: "shop/a-b-web-x".into(),
                instances: vec![backend("unrouted", 5000)],
            },
        ],
        certificates: vec![CertificateDoc {
            domains: vec!["shop.example.com".into()],
            chain_pem: "chain".into(),
            key_pem: "key".into(),
        }],
        acme_challenges: vec![AcmeChallengeDoc {
            token: "tok".into(),
            key_authorization: "tok.thumb".into(),
        }],
        trusted_peers: vec![mesh_agent::routing::Peer {
            ip: "127.0.0.2".parse().unwrap(),
            hosts: vec!["shop.localhost".into()],
        }],
    };
    let c = router_config(&routing);
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.routes[0].service, ServiceKey::new("shop", "a-b", "web"));
    assert_eq!(c.routes[1].path, "/api");
    assert_eq!(c.routes[1].service, ServiceKey::new("shop", "a", "b-web"));
    assert_eq!(c.routes[2].service, ServiceKey::new("blog", "app", "web"));
    let by_key: HashMap<&ServiceKey, &UpstreamConfig> =
        c.upstreams.iter().map(|u| (&u.service, u)).collect();
    assert_eq!(by_key.len(), 3, "only routed services: {:?}", c.upstreams);
    // `a`/`b-web` and `a-b`/`web` share the agent's key `shop/a-b-web`: the instance goes to
    // one of them, never to both (the router would refuse a duplicate instance id).
    let ids: Vec<usize> = [("a", "b-web"), ("a-b", "web")]
        .iter()
        .map(|(st, sv)| by_key[&ServiceKey::new("shop", st, sv)].instances.len())
        .collect();
    assert_eq!(ids, [1, 0]);
    assert!(
        by_key[&ServiceKey::new("blog", "app", "web")]
            .instances
            .is_empty(),
        "a routed service with nothing running answers 503"
    );
    assert_eq!(c.certificates[0].domains, ["shop.example.com"]);
    assert_eq!(c.acme_challenges["tok"], "tok.thumb");
    assert_eq!(c.https_redirects, ["shop.localhost"]);
    assert_eq!(
        c.trusted_peers,
        [mesh_router::TrustedPeer {
            ip: "127.0.0.2".parse().unwrap(),
            hosts: vec!["shop.localhost".into()],
        }]
    );

    // A real router takes it; the certificate here is not PEM, so it alone is left out.
    let router = Router::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap();
    let report = router.update(c).unwrap();
    assert_eq!(report.certificate_errors.len(), 1, "{report:?}");
    router.shutdown(Duration::from_secs(1)).await;
}
