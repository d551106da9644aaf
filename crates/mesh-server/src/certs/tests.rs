use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};

use super::*;

// 2026-11-25T00:00:00Z
const NOW: UnixMs = 1_795_564_800_000;

struct Pki {
    ca_pem: String,
    leaf_pem: String,
    leaf_key: String,
}

fn pki(domains: &[&str], not_after_year: i32) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(domains.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, domains[0]);
    leaf_params.not_before = date_time_ymd(2025, 1, 1);
    leaf_params.not_after = date_time_ymd(not_after_year, 1, 1);
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca.pem(),
        leaf_pem: leaf.pem(),
        leaf_key: leaf_key.serialize_pem(),
    }
}

#[test]
fn every_documented_layout_is_accepted() {
    let p = pki(&["app.example.com", "www.example.com"], 2030);
    let layouts: Vec<Vec<String>> = vec![
        vec![p.leaf_pem.clone(), p.leaf_key.clone()],
        vec![format!("{}{}", p.leaf_pem, p.ca_pem), p.leaf_key.clone()],
        vec![format!("{}{}{}", p.leaf_pem, p.ca_pem, p.leaf_key)],
        vec![p.leaf_pem.clone(), p.ca_pem.clone(), p.leaf_key.clone()],
    ];
    for files in layouts {
        let c = parse_upload(&files, NOW).unwrap_or_else(|e| panic!("{} files: {e}", files.len()));
        assert_eq!(c.domains, vec!["app.example.com", "www.example.com"]);
        assert_eq!(c.fingerprint.len(), 64);
        assert!(c.issuer.contains("Test CA"), "{}", c.issuer);
        assert!(c.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.key_pem.contains("PRIVATE KEY"));
        assert!(c.not_after > NOW && c.not_before < NOW);
    }
}

#[test]
fn the_key_must_come_last() {
    let p = pki(&["app.example.com"], 2030);
    let e = parse_upload(&[p.leaf_key.clone(), p.leaf_pem.clone()], NOW)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must come last"), "{e}");
    let e = parse_upload(std::slice::from_ref(&p.leaf_pem), NOW)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no private key"), "{e}");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (a, b) = (pki(&["a.example.com"], 2030), pki(&["b.example.com"], 2030));
    let e = parse_upload(&[a.leaf_pem, b.leaf_key], NOW)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match"), "{e}");
}

#[test]
fn chains_out_of_order_are_refused() {
    let p = pki(&["app.example.com"], 2030);
    let e = parse_upload(
        &[p.ca_pem.clone(), p.leaf_pem.clone(), p.leaf_key.clone()],
        NOW,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("leaf first"), "{e}");
}

#[test]
fn expired_certificates_are_refused() {
    let p = pki(&["old.example.com"], 2026);
    let e = parse_upload(&[p.leaf_pem, p.leaf_key], NOW)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired"), "{e}");
}

#[test]
fn garbage_is_refused_clearly() {
    let e = parse_upload(&["hello".to_string()], NOW)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no PEM block"), "{e}");
    let e = parse_upload(
        &[
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into(),
            "x".into(),
        ],
        NOW,
    )
    .unwrap_err();
    assert_eq!(e, CertError::NoBlock(2));
    assert_eq!(e.to_string(), "file 2 holds no PEM block");
    assert_eq!(parse_upload(&[], NOW), Err(CertError::FileCount));
}

#[test]
fn every_refusal_says_what_to_do_as_before() {
    let p = pki(&["app.example.com"], 2030);
    let e = parse_upload(&[p.leaf_key.clone(), p.leaf_pem.clone()], NOW).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the private key must come last: list the certificate files first, then the key"
    );
    let e = parse_upload(
        &[p.ca_pem.clone(), p.leaf_pem.clone(), p.leaf_key.clone()],
        NOW,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate 1 (CN=Test CA) was not issued by certificate 2 (CN=app.example.com): put the chain in order, leaf first"
    );
    let e = parse_upload(&["-----BEGIN CERTIFICATE-----\nx".to_string()], NOW).unwrap_err();
    assert_eq!(e.to_string(), "the PEM block CERTIFICATE has no END line");
}
