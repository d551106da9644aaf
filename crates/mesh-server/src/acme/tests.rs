use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};

use mesh_store::{MasterKey, SqlStore};
use mesh_types::Domain;
use rcgen::{CertificateParams, KeyPair, date_time_ymd};

use super::client::CaError;
use super::*;
use crate::clock::Clock;

// 2026-11-25T00:00:00Z
const NOW: UnixMs = 1_795_564_800_000;
const DAY: UnixMs = 24 * 3600 * 1000;

struct Fixed;

impl Clock for Fixed {
    fn now_ms(&self) -> UnixMs {
        NOW
    }
}

fn cert(fp: &str, domains: &[&str], state: CertificateState, not_after: UnixMs) -> Certificate {
    Certificate {
        environment: Name::parse("shop").unwrap(),
        fingerprint: fp.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        source: CertificateSource::Uploaded,
        state,
        issuer: "CN=test".into(),
        not_before: 0,
        not_after,
        created_at: 0,
    }
}

#[test]
fn a_domain_is_ordered_renewed_or_left_alone() {
    use plan::{Next, decide};
    let d = "shop.example.com";
    let long = NOW + 60 * DAY;
    let soon = NOW + 10 * DAY;
    assert_eq!(
        decide(d, &[], NOW, true, None),
        Next::Order { renewal: false }
    );
    assert_eq!(decide(d, &[], NOW, false, None), Next::NotConfigured);
    let issued = [cert("aa", &[d], CertificateState::Issued, long)];
    assert_eq!(decide(d, &issued, NOW, true, None), Next::Covered);
    let wildcard = [cert(
        "aa",
        &["*.example.com"],
        CertificateState::Issued,
        long,
    )];
    assert_eq!(decide(d, &wildcard, NOW, true, None), Next::Covered);
    let deeper = [cert("aa", &["*.com"], CertificateState::Issued, long)];
    assert_eq!(
        decide(d, &deeper, NOW, true, None),
        Next::Order { renewal: false },
        "a wildcard covers one label only"
    );
    let expiring = [cert("aa", &[d], CertificateState::Issued, soon)];
    assert_eq!(
        decide(d, &expiring, NOW, true, None),
        Next::Order { renewal: true }
    );
    assert_eq!(
        decide(d, &expiring, NOW, false, None),
        Next::Covered,
        "without a CA a valid certificate stays in use"
    );
    let expired = [cert("aa", &[d], CertificateState::Issued, NOW - DAY)];
    assert_eq!(decide(d, &expired, NOW, false, None), Next::NotConfigured);
    let failed = [cert("acme-x", &[d], CertificateState::Failed, 0)];
    assert_eq!(
        decide(d, &failed, NOW, true, Some(NOW + 5000)),
        Next::Later(5000)
    );
    assert_eq!(
        decide(d, &failed, NOW, true, Some(NOW - 1)),
        Next::Order { renewal: false }
    );
}

#[test]
fn retries_back_off_to_an_hour() {
    assert_eq!(retry_delay(1), Duration::from_secs(60));
    assert_eq!(retry_delay(2), Duration::from_secs(300));
    assert_eq!(retry_delay(50), Duration::from_secs(3600));
}

/// A store with the local rack, environment `shop` and the custom domain `shop.example.com`.
async fn platform(dir: &Path) -> crate::AppState {
    let key = MasterKey::generate().unwrap();
    let store = SqlStore::open_sqlite_path(&dir.join("db"), key)
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let opts = crate::ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        database_url: None,
        local_rack: true,
        acme: None,
        builder: None,
        max_upload_bytes: 64 * 1024 * 1024,
        uploads: crate::UploadLimits::default(),
        listener: None,
        server_lost_after: crate::DEFAULT_SERVER_LOST_AFTER,
    };
    crate::bootstrap::bootstrap(store.as_ref(), &Fixed, &opts)
        .await
        .unwrap();
    let shop = Name::parse("shop").unwrap();
    store
        .create_environment(&shop, &[Name::parse("local").unwrap()], &[], NOW)
        .await
        .unwrap();
    store
        .create_endpoint(
            "shop",
            &Domain::parse("shop.example.com").unwrap(),
            EndpointKind::Custom,
            None,
            NOW,
        )
        .await
        .unwrap();
    crate::AppState::new(store, Arc::new(Fixed))
}

async fn desired(state: &crate::AppState) -> mesh_types::desired::EnvironmentDoc {
    let rack = state.store().get_rack("local").await.unwrap();
    let mut doc = crate::agent::desired::for_rack(state.store(), &rack, None, state.liveness())
        .await
        .unwrap();
    doc.environments.remove(0)
}

/// Issues self-signed certificates valid until `not_after` (y, m, d), or fails.
struct FakeCa {
    state: crate::AppState,
    not_after: (i32, u8, u8),
    fail: bool,
    calls: AtomicU32,
    /// The challenges the desired state held while the order waited for validation.
    seen: StdMutex<Vec<AcmeChallengeDoc>>,
}

#[async_trait]
impl Ca for FakeCa {
    async fn issue(&self, domain: &str, publish: &dyn Publisher) -> Result<IssuedCert, CaError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let challenge = AcmeChallengeDoc {
            token: format!("tok-{}", self.calls.load(Ordering::SeqCst)),
            key_authorization: "tok.thumbprint".into(),
        };
        publish.publish(std::slice::from_ref(&challenge)).await?;
        let doc = desired(&self.state).await;
        self.seen.lock().unwrap().extend(doc.acme_challenges);
        if self.fail {
            return Err(CaError::Validation(vec!["connection refused".into()]));
        }
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![domain.to_string()]).unwrap();
        params.not_before = date_time_ymd(2026, 1, 1);
        let (y, m, d) = self.not_after;
        params.not_after = date_time_ymd(y, m, d);
        let cert = params.self_signed(&key).unwrap();
        Ok(IssuedCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn fake(state: &crate::AppState, not_after: (i32, u8, u8), fail: bool) -> Arc<FakeCa> {
    Arc::new(FakeCa {
        state: state.clone(),
        not_after,
        fail,
        calls: AtomicU32::new(0),
        seen: StdMutex::new(Vec::new()),
    })
}

fn manager(state: &crate::AppState, ca: Option<Arc<FakeCa>>) -> Manager {
    Manager::new(state.clone(), ca.map(|c| c as Arc<dyn Ca>)).with_publish_wait(Duration::ZERO)
}

#[tokio::test]
async fn without_a_ca_the_domain_waits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let mut m = manager(&state, None);
    assert_eq!(m.scan().await, RESCAN);
    let certs = state.store().list_certificates("shop").await.unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0].fingerprint, "acme-shop.example.com");
    assert_eq!(certs[0].state, CertificateState::Pending);
    assert_eq!(certs[0].source, CertificateSource::Acme);
    assert_eq!(certs[0].issuer, NOT_CONFIGURED);
    let doc = desired(&state).await;
    assert!(doc.certificates.is_empty() && doc.acme_challenges.is_empty());

    // Scanning again changes nothing; deleting the endpoint drops the record.
    m.scan().await;
    assert_eq!(
        state.store().list_certificates("shop").await.unwrap(),
        certs
    );
    state
        .store()
        .delete_endpoint("shop", "shop.example.com")
        .await
        .unwrap();
    m.scan().await;
    assert!(
        state
            .store()
            .list_certificates("shop")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_order_publishes_its_challenge_then_stores_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let ca = fake(&state, (2027, 3, 1), false);
    let mut m = manager(&state, Some(ca.clone()));
    m.scan().await;
    assert_eq!(ca.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        ca.seen.lock().unwrap().as_slice(),
        [AcmeChallengeDoc {
            token: "tok-1".into(),
            key_authorization: "tok.thumbprint".into()
        }],
        "routers get the challenge before the CA validates"
    );
    let certs = state.store().list_certificates("shop").await.unwrap();
    assert_eq!(certs.len(), 1, "the pending record is gone: {certs:?}");
    assert_eq!(certs[0].source, CertificateSource::Acme);
    assert_eq!(certs[0].state, CertificateState::Issued);
    assert_eq!(certs[0].fingerprint.len(), 64);
    let doc = desired(&state).await;
    assert!(doc.acme_challenges.is_empty());
    assert_eq!(doc.certificates.len(), 1);
    assert_eq!(doc.certificates[0].domains, ["shop.example.com"]);
    assert!(doc.certificates[0].key_pem.contains("PRIVATE KEY"));

    // Valid for more than 30 days: no new order.
    m.scan().await;
    assert_eq!(ca.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_certificate_expiring_within_30_days_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let first = fake(&state, (2026, 12, 10), false);
    manager(&state, Some(first)).scan().await;
    let old = state.store().list_certificates("shop").await.unwrap();
    assert_eq!(old.len(), 1);

    let renewer = fake(&state, (2027, 3, 1), false);
    manager(&state, Some(renewer.clone())).scan().await;
    assert_eq!(renewer.calls.load(Ordering::SeqCst), 1);
    let now = state.store().list_certificates("shop").await.unwrap();
    assert_eq!(now.len(), 1, "the old certificate is dropped: {now:?}");
    assert_ne!(now[0].fingerprint, old[0].fingerprint);
    assert!(now[0].not_after > old[0].not_after);
}

#[tokio::test]
async fn a_failed_order_is_recorded_and_retried_later() {
    let dir = tempfile::tempdir().unwrap();
    let state = platform(dir.path()).await;
    let ca = fake(&state, (2027, 3, 1), true);
    let mut m = manager(&state, Some(ca.clone()));
    assert_eq!(m.scan().await, Duration::from_secs(60));
    let certs = state.store().list_certificates("shop").await.unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].state, CertificateState::Failed);
    assert_eq!(
        certs[0].issuer,
        "ordering failed: validation failed: connection refused; next try in 60 s"
    );
    assert!(
        desired(&state).await.acme_challenges.is_empty(),
        "a failed order publishes nothing"
    );
    // Too early for another try.
    let wait = m.scan().await;
    assert!(wait <= Duration::from_secs(60), "{wait:?}");
    assert_eq!(ca.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn custom_domains_and_real_aliases_get_certificates_localhost_ones_do_not() {
    use mesh_types::api::{Endpoint, EndpointKind};
    let ep = |domain: &str, kind| Endpoint {
        environment: "shop".parse().unwrap(),
        domain: domain.parse().unwrap(),
        kind,
        rack: None,
        routes: vec![],
        dns: vec![],
        https_redirect: false,
        created_at: 0,
    };
    assert!(super::wants_certificate(&ep(
        "shop.example.com",
        EndpointKind::Custom
    )));
    assert!(super::wants_certificate(&ep(
        "shop.apps.example.com",
        EndpointKind::Alias
    )));
    assert!(!super::wants_certificate(&ep(
        "shop.localhost",
        EndpointKind::Alias
    )));
}

#[test]
fn ca_errors_read_as_the_pending_message_always_did() {
    let said = |e: CaError| e.to_string();
    assert_eq!(said(CaError::Refused), "the CA refused the order");
    assert_eq!(
        said(CaError::Validation(vec![
            "timeout".into(),
            "refused".into()
        ])),
        "validation failed: timeout; refused"
    );
    assert_eq!(
        said(CaError::NoHttp01),
        "the CA offers no HTTP-01 challenge"
    );
    assert_eq!(
        said(CaError::Authorization("Revoked".into())),
        "the authorization is Revoked"
    );
    let publish = PublishError(StoreError::Invalid("bad".into()));
    assert_eq!(
        said(CaError::Publish(publish)),
        "cannot publish the challenge: bad"
    );
}
