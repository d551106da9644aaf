use super::*;

fn self_signed(names: &[&str]) -> CertificateConfig {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let cert = rcgen::generate_simple_self_signed(names.clone()).expect("rcgen");
    CertificateConfig {
        domains: names,
        chain_pem: cert.cert.pem(),
        key_pem: cert.signing_key.serialize_pem(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[test]
fn loads_and_resolves_exact_then_wildcard() {
    let a = self_signed(&["a.test"]);
    let wild = self_signed(&["*.apps.test"]);
    let r = SniResolver::new();
    let errors = r.replace(&[a, wild], None, &provider());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(r.lookup("a.test").is_some());
    assert!(r.lookup("A.TEST.").is_some());
    assert!(r.lookup("shop.apps.test").is_some());
    assert!(r.lookup("apps.test").is_none());
    assert!(r.lookup("deep.shop.apps.test").is_none());
    assert!(r.lookup("b.test").is_none());
    let a1 = r.lookup("a.test").expect("a");
    let w = r.lookup("x.apps.test").expect("wildcard");
    assert_ne!(a1.cert[0], w.cert[0]);
}

#[test]
fn bad_certificates_are_reported_and_left_out() {
    let good = self_signed(&["good.test"]);
    let other = self_signed(&["other.test"]);
    let mismatch = CertificateConfig {
        domains: vec!["mismatch.test".to_owned()],
        chain_pem: good.chain_pem.clone(),
        key_pem: other.key_pem.clone(),
    };
    let garbage = CertificateConfig {
        domains: vec!["garbage.test".to_owned()],
        chain_pem: "not a pem".to_owned(),
        key_pem: "nope".to_owned(),
    };
    let r = SniResolver::new();
    let errors = r.replace(&[good, mismatch, garbage], None, &provider());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(matches!(errors[0], CertificateError::KeyMismatch { .. }));
    assert!(r.lookup("good.test").is_some());
    assert!(r.lookup("mismatch.test").is_none());
    assert!(r.lookup("garbage.test").is_none());
    // Messages never carry key material.
    assert!(errors.iter().all(|e| !e.to_string().contains("PRIVATE")));
}

#[test]
fn replace_is_whole() {
    let r = SniResolver::new();
    r.replace(&[self_signed(&["a.test"])], None, &provider());
    r.replace(&[self_signed(&["b.test"])], None, &provider());
    assert!(r.lookup("a.test").is_none());
    assert!(r.lookup("b.test").is_some());
}

#[test]
fn default_certificate_must_be_loaded() {
    let r = SniResolver::new();
    assert!(
        r.replace(&[self_signed(&["a.test"])], Some("a.test"), &provider())
            .is_empty()
    );
    assert!(r.certs.load().default.is_some());
    let errors = r.replace(&[self_signed(&["a.test"])], Some("b.test"), &provider());
    assert!(matches!(
        errors[..],
        [CertificateError::UnknownDefault { .. }]
    ));
    assert!(r.certs.load().default.is_none());
}

#[test]
fn server_config_offers_h2_and_http11() {
    let cfg = server_config(Arc::new(SniResolver::new()), provider()).expect("config");
    assert_eq!(
        cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn debug_redacts_keys() {
    let c = self_signed(&["a.test"]);
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
}
