//! Endpoints, routes, DNS records of custom domains, and certificates.

use std::sync::Arc;

use mesh_store::{CertificateRecord, Store};
use mesh_types::api::{
    Certificate, CertificateSource, CertificateState, DnsRecord, EndpointKind, Route,
};

use crate::support::*;

both!(
    domains_are_unique_platform_wide,
    custom_domains_list_their_dns_records,
    routes_target_existing_services,
    certificates_keep_their_key,
);

fn route(path: &str, stack: &str, service: &str) -> Route {
    Route {
        path: path.into(),
        stack: name(stack),
        service: name(service),
    }
}

async fn domains_are_unique_platform_wide(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "blog").await;
    let www = domain("www.example.com");
    let created = store
        .create_endpoint("shop", &www, EndpointKind::Custom, None, T)
        .await
        .unwrap();
    assert_eq!(created.domain, www);
    assert_eq!(created.environment.as_str(), "shop");
    assert!(created.routes.is_empty());
    for env in ["shop", "blog"] {
        exists(
            store
                .create_endpoint(env, &www, EndpointKind::Custom, None, T)
                .await,
            "endpoint \"www.example.com\" already exists in environment \"shop\"",
        );
    }
    // Aliases are endpoints too: their domains are taken.
    exists(
        store
            .create_endpoint(
                "blog",
                &domain("shop.local.test"),
                EndpointKind::Custom,
                None,
                T,
            )
            .await,
        "endpoint \"shop.local.test\" already exists in environment \"shop\"",
    );
    not_found(
        store
            .create_endpoint(
                "nope",
                &domain("a.example.com"),
                EndpointKind::Custom,
                None,
                T,
            )
            .await,
        "environment \"nope\"",
    );
    invalid(
        store
            .create_endpoint(
                "shop",
                &domain("a.example.com"),
                EndpointKind::Alias,
                None,
                T,
            )
            .await,
        "needs the rack",
    );
    not_found(
        store
            .create_endpoint(
                "shop",
                &domain("shop.edge.test"),
                EndpointKind::Alias,
                Some(&name("edge")),
                T,
            )
            .await,
        "rack \"edge\"",
    );

    // Lookups normalize the domain as the API would have.
    assert_eq!(
        store
            .get_endpoint("shop", "WWW.Example.com.")
            .await
            .unwrap(),
        created
    );
    not_found(
        store.get_endpoint("blog", "www.example.com").await,
        "endpoint \"www.example.com\" in environment \"blog\"",
    );
    not_found(
        store.get_endpoint("shop", "not a domain").await,
        "endpoint \"not a domain\" in environment \"shop\"",
    );
    store
        .delete_endpoint("shop", "www.example.com")
        .await
        .unwrap();
    not_found(
        store.delete_endpoint("shop", "www.example.com").await,
        "endpoint \"www.example.com\" in environment \"shop\"",
    );
    // Free again, for anyone.
    store
        .create_endpoint("blog", &www, EndpointKind::Custom, None, T)
        .await
        .unwrap();
}

async fn custom_domains_list_their_dns_records(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    for (rack_name, address) in [
        ("v6", "2001:db8::1"),
        ("cdn", "edge.example.net"),
        ("same", "203.0.113.10"),
    ] {
        store
            .create_rack(&rack(rack_name, "local", address))
            .await
            .unwrap();
    }
    let racks = [name("local"), name("v6"), name("cdn"), name("same")];
    store
        .update_environment_racks("shop", &racks, &[], &[alias("shop", "local")], T)
        .await
        .unwrap();
    store
        .create_endpoint(
            "shop",
            &domain("shop.example.com"),
            EndpointKind::Custom,
            None,
            T,
        )
        .await
        .unwrap();
    let record = |t: &str, v: &str| DnsRecord {
        record_type: t.into(),
        name: "shop.example.com".into(),
        value: v.into(),
    };
    let custom = store
        .get_endpoint("shop", "shop.example.com")
        .await
        .unwrap();
    // One record per distinct address, in rack order.
    assert_eq!(
        custom.dns,
        [
            record("A", "203.0.113.10"),
            record("AAAA", "2001:db8::1"),
            record("CNAME", "edge.example.net"),
        ]
    );
    let alias_endpoint = store.get_endpoint("shop", "shop.local.test").await.unwrap();
    assert!(alias_endpoint.dns.is_empty());
}

async fn routes_target_existing_services(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "blog").await;
    let ep = "shop.local.test";
    let routes = [route("/", "app", "web"), route("/jobs", "app", "worker")];
    let endpoint = store.set_routes("shop", ep, &routes).await.unwrap();
    assert_eq!(endpoint.routes, routes);
    assert_eq!(store.get_endpoint("shop", ep).await.unwrap(), endpoint);

    not_found(
        store
            .set_routes("shop", ep, &[route("/", "app", "nope")])
            .await,
        "service \"nope\" in stack \"app\" of environment \"shop\"",
    );
    not_found(
        store
            .set_routes("shop", ep, &[route("/", "nope", "web")])
            .await,
        "stack \"nope\" in environment \"shop\"",
    );
    not_found(
        store
            .set_routes("shop", "blog.local.test", &[route("/", "app", "web")])
            .await,
        "endpoint \"blog.local.test\" in environment \"shop\"",
    );
    exists(
        store
            .set_routes(
                "shop",
                ep,
                &[route("/", "app", "web"), route("/", "app", "worker")],
            )
            .await,
        "route \"/\" already exists on endpoint \"shop.local.test\"",
    );
    invalid(
        store
            .set_routes("shop", ep, &[route("api", "app", "web")])
            .await,
        "must start with '/'",
    );
    // Failed replacements left the routes alone.
    assert_eq!(store.get_endpoint("shop", ep).await.unwrap().routes, routes);

    // Deleting a service removes the routes to it.
    store.delete_service("shop", "app", "worker").await.unwrap();
    assert_eq!(
        store.get_endpoint("shop", ep).await.unwrap().routes,
        [route("/", "app", "web")]
    );
    let cleared = store.set_routes("shop", ep, &[]).await.unwrap();
    assert!(cleared.routes.is_empty());
}

fn certificate(env: &str, fingerprint: &str, key_pem: &str) -> CertificateRecord {
    CertificateRecord {
        certificate: Certificate {
            environment: name(env),
            fingerprint: fingerprint.into(),
            domains: vec!["shop.example.com".into(), "www.shop.example.com".into()],
            source: CertificateSource::Uploaded,
            state: CertificateState::Issued,
            issuer: "Test CA".into(),
            not_before: T,
            not_after: T + 90 * 86_400_000,
            created_at: T,
        },
        chain_pem: "-----BEGIN CERTIFICATE-----\nchain\n".into(),
        key_pem: key_pem.into(),
    }
}

async fn certificates_keep_their_key(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "blog").await;
    let first = certificate("shop", "aa11", "-----BEGIN PRIVATE KEY-----\nk1\n");
    let added = store.add_certificate(&first).await.unwrap();
    assert_eq!(added, first.certificate);
    exists(
        store.add_certificate(&first).await,
        "certificate \"aa11\" already exists in environment \"shop\"",
    );
    // Fingerprints are per environment.
    store
        .add_certificate(&certificate("blog", "aa11", "k"))
        .await
        .unwrap();
    let second = certificate("shop", "bb22", "k2");
    store.add_certificate(&second).await.unwrap();
    assert_eq!(
        store.list_certificates("shop").await.unwrap(),
        [first.certificate.clone(), second.certificate.clone()]
    );
    assert_eq!(store.get_certificate("shop", "aa11").await.unwrap(), first);
    not_found(
        store.get_certificate("shop", "cc33").await,
        "certificate \"cc33\" in environment \"shop\"",
    );
    not_found(
        store
            .add_certificate(&certificate("nope", "aa11", "k"))
            .await,
        "environment \"nope\"",
    );
    store.delete_certificate("shop", "aa11").await.unwrap();
    not_found(
        store.delete_certificate("shop", "aa11").await,
        "certificate \"aa11\" in environment \"shop\"",
    );
    assert_eq!(store.list_certificates("shop").await.unwrap().len(), 1);
    assert_eq!(store.list_certificates("blog").await.unwrap().len(), 1);
}
