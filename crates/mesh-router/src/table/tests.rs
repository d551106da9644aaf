use super::*;
use crate::config::{InstanceConfig, RouteConfig, UpstreamConfig};

fn key(s: &str) -> ServiceKey {
    ServiceKey::new("env", "app", s)
}

fn config(routes: &[(&str, &str, &str)]) -> RouterConfig {
    let mut services: Vec<&str> = routes.iter().map(|r| r.2).collect();
    services.sort_unstable();
    services.dedup();
    RouterConfig {
        routes: routes
            .iter()
            .map(|(host, path, svc)| RouteConfig {
                host: (*host).to_owned(),
                path: (*path).to_owned(),
                service: key(svc),
            })
            .collect(),
        upstreams: services
            .iter()
            .enumerate()
            .map(|(i, svc)| UpstreamConfig {
                service: key(svc),
                instances: vec![InstanceConfig {
                    id: format!("{svc}-1"),
                    addr: SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16)),
                    healthy: true,
                    draining: false,
                }],
            })
            .collect(),
        ..RouterConfig::default()
    }
}

fn build(cfg: &RouterConfig) -> RouteTable {
    RouteTable::build(cfg, &InFlightRegistry::default(), &Metrics::new())
        .expect("valid config")
        .0
}

fn service_of(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.lookup(host, path).map(|r| r.upstream.key.service.clone())
}

#[test]
fn longest_prefix_on_segment_boundaries() {
    let t = build(&config(&[
        ("shop.example.com", "/", "web"),
        ("shop.example.com", "/api", "api"),
        ("shop.example.com", "/api/v2/", "v2"),
    ]));
    let h = "shop.example.com";
    assert_eq!(service_of(&t, h, "/").as_deref(), Some("web"));
    assert_eq!(service_of(&t, h, "/api").as_deref(), Some("api"));
    assert_eq!(service_of(&t, h, "/api/").as_deref(), Some("api"));
    assert_eq!(service_of(&t, h, "/api/x").as_deref(), Some("api"));
    assert_eq!(service_of(&t, h, "/apix").as_deref(), Some("web"));
    assert_eq!(service_of(&t, h, "/api/v2").as_deref(), Some("v2"));
    assert_eq!(service_of(&t, h, "/api/v2/items").as_deref(), Some("v2"));
    assert_eq!(service_of(&t, h, "/api/v20").as_deref(), Some("api"));
    assert_eq!(service_of(&t, "other.example.com", "/"), None);
}

#[test]
fn no_root_route_means_no_match_outside_prefixes() {
    let t = build(&config(&[("a.test", "/api", "api")]));
    assert_eq!(service_of(&t, "a.test", "/"), None);
    assert_eq!(service_of(&t, "a.test", "/apix"), None);
    assert_eq!(service_of(&t, "a.test", "/api/1").as_deref(), Some("api"));
}

#[test]
fn host_normalization() {
    assert_eq!(
        normalize_host("Shop.Example.COM").as_deref(),
        Some("shop.example.com")
    );
    assert_eq!(
        normalize_host("shop.example.com:8080").as_deref(),
        Some("shop.example.com")
    );
    assert_eq!(
        normalize_host("shop.example.com.").as_deref(),
        Some("shop.example.com")
    );
    assert_eq!(normalize_host("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
    assert_eq!(normalize_host("[::1]:8080").as_deref(), Some("[::1]"));
    assert_eq!(normalize_host("[::1]").as_deref(), Some("[::1]"));
    assert_eq!(normalize_host(""), None);
    assert_eq!(normalize_host("a b"), None);
    assert_eq!(normalize_host("host:port"), None);
    assert_eq!(normalize_host("[::1"), None);
    assert_eq!(normalize_host("evil/../x"), None);
}

#[test]
fn route_hosts_are_normalized_and_ports_rejected() {
    let t = build(&config(&[("Shop.Example.com", "/", "web")]));
    assert!(t.lookup("shop.example.com", "/").is_some());
    let err = RouteTable::build(
        &config(&[("shop:8080", "/", "web")]),
        &InFlightRegistry::default(),
        &Metrics::new(),
    );
    assert!(matches!(err, Err(ConfigError::InvalidHost(_))));
}

#[test]
fn invalid_configs_are_rejected() {
    let reg = InFlightRegistry::default();
    let m = Metrics::new();
    let bad_path = config(&[("a.test", "api", "web")]);
    assert!(matches!(
        RouteTable::build(&bad_path, &reg, &m),
        Err(ConfigError::InvalidPath(_))
    ));
    let dup = config(&[("a.test", "/x", "web"), ("a.test", "/x/", "api")]);
    assert!(matches!(
        RouteTable::build(&dup, &reg, &m),
        Err(ConfigError::DuplicateRoute(_))
    ));
    let mut dup_inst = config(&[("a.test", "/", "web"), ("a.test", "/api", "api")]);
    dup_inst.upstreams[1].instances[0].id = dup_inst.upstreams[0].instances[0].id.clone();
    assert!(matches!(
        RouteTable::build(&dup_inst, &reg, &m),
        Err(ConfigError::DuplicateInstance(_))
    ));
}

#[test]
fn route_to_missing_upstream_warns_and_has_no_instances() {
    let mut cfg = config(&[("a.test", "/", "web")]);
    cfg.upstreams.clear();
    let (t, warnings) =
        RouteTable::build(&cfg, &InFlightRegistry::default(), &Metrics::new()).expect("builds");
    assert_eq!(warnings.len(), 1);
    let route = t.lookup("a.test", "/").expect("route");
    assert!(route.upstream.instances.is_empty());
    assert_eq!(route.upstream.pick(&[]), None);
}

#[test]
fn redirects_and_challenges() {
    let mut cfg = config(&[("a.test", "/", "web")]);
    cfg.https_redirects = vec!["A.Test".to_owned()];
    cfg.acme_challenges
        .insert("tok".to_owned(), "tok.key".to_owned());
    let t = build(&cfg);
    assert!(t.redirects_to_https("a.test"));
    assert!(!t.redirects_to_https("b.test"));
    assert_eq!(t.acme_answer("tok"), Some("tok.key"));
    assert_eq!(t.acme_answer("other"), None);
}

#[test]
fn config_deserializes_with_defaults() {
    let json = r#"{
        "routes": [{"host": "a.test", "service": {"environment": "e", "stack": "s", "service": "web"}}],
        "upstreams": [{"service": {"environment": "e", "stack": "s", "service": "web"},
                       "instances": [{"id": "i1", "addr": "127.0.0.1:5000"}]}]
    }"#;
    let cfg: RouterConfig = serde_json::from_str(json).expect("parses");
    assert_eq!(cfg.routes[0].path, "/");
    assert!(cfg.upstreams[0].instances[0].healthy);
    assert!(!cfg.upstreams[0].instances[0].draining);
    let t = build(&cfg);
    assert_eq!(t.instance_ids().collect::<Vec<_>>(), vec!["i1"]);
}
