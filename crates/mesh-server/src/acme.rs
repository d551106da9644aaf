//! Automatic certificates for custom domains: the control plane orders them from an ACME CA
//! (RFC 8555) with HTTP-01 challenges, which reach every rack's router through the desired state.
//!
//! One task per control plane scans the custom endpoints whenever something changes through the
//! API (and hourly, for renewals). A domain with no issued certificate valid for 30 more days
//! gets an order: the challenge is written to the store with the domain's pending record, agents
//! receive it in their next desired state and their routers answer
//! `/.well-known/acme-challenge/{token}`; then the CA is told to validate, the certificate is
//! stored (key sealed, `source: acme`) and the pending record goes away.
//!
//! The store has no table for orders in progress, so a domain's order lives in a certificate
//! record of its own: fingerprint `acme-<domain>`, state `pending` or `failed`, the status
//! sentence in `issuer`, and the published challenges (JSON) in the sealed key field.
//! Several control planes sharing a database see the same records, so an agent watching any of
//! them gets the challenge.

mod client;
mod plan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mesh_store::{CertificateRecord, Store, StoreError};
use mesh_types::api::{Certificate, CertificateSource, CertificateState, EndpointKind};
use mesh_types::desired::AcmeChallengeDoc;
use mesh_types::{Name, UnixMs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) use client::{Ca, IssuedCert, PublishError, Publisher};
use plan::Next;

/// Where to order certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeOptions {
    /// The CA's directory URL, such as Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// A PEM file whose first certificate is trusted for the directory's TLS (a test CA such as
    /// pebble); without it, the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// Fingerprint prefix of the record that stands for a domain's order until it is issued.
const PENDING_PREFIX: &str = "acme-";
/// Certificates are renewed this long before they expire.
pub(crate) const RENEW_BEFORE_MS: UnixMs = 30 * 24 * 3600 * 1000;
/// Scans happen at least this often, so renewals are noticed without any change.
const RESCAN: Duration = Duration::from_secs(3600);
/// One order, from creation to the certificate, takes at most this long.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);
/// After publishing a challenge, the time agents get to receive it before the CA is told to
/// validate: the watch stream wakes at once, and other control planes poll every 5 s.
const PUBLISH_WAIT: Duration = Duration::from_secs(6);

pub(crate) const NOT_CONFIGURED: &str = "ACME is not configured: start the control plane with --acme-directory URL, or upload a certificate with `mesh cert upload`";

/// The pending record's fingerprint for `domain`.
pub(crate) fn pending_fingerprint(domain: &str) -> String {
    format!("{PENDING_PREFIX}{domain}")
}

/// Whether a certificate row is an order's pending record rather than a certificate.
pub(crate) fn is_pending_record(cert: &Certificate) -> bool {
    cert.source == CertificateSource::Acme && cert.fingerprint.starts_with(PENDING_PREFIX)
}

/// The challenges a pending record publishes (none when it waits or failed).
pub(crate) fn challenges_of(record: &CertificateRecord) -> Vec<AcmeChallengeDoc> {
    if !is_pending_record(&record.certificate) || record.key_pem.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&record.key_pem).unwrap_or_default()
}

/// Starts the certificate task of a control plane; it ends when `stop` turns true (or its
/// sender goes away).
pub(crate) fn spawn(
    state: crate::AppState,
    opts: Option<AcmeOptions>,
    data_dir: &Path,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let ca: Option<Arc<dyn Ca>> = opts.map(|o| {
        Arc::new(client::AcmeCa::new(o, data_dir.join("acme-account.json"))) as Arc<dyn Ca>
    });
    let manager = Manager::new(state, ca);
    tokio::spawn(manager.run(stop))
}

/// When a failed domain may be tried again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    at: UnixMs,
}

/// Waits after the n-th failure in a row: the CA's limits (Let's Encrypt allows 5 failed
/// validations per hostname per hour) must never be reached by retries alone.
fn retry_delay(failures: u32) -> Duration {
    const STEPS: [u64; 5] = [60, 300, 900, 1800, 3600];
    Duration::from_secs(STEPS[(failures.saturating_sub(1) as usize).min(STEPS.len() - 1)])
}

pub(crate) struct Manager {
    state: crate::AppState,
    ca: Option<Arc<dyn Ca>>,
    retries: HashMap<String, Retry>,
    publish_wait: Duration,
}

impl Manager {
    pub(crate) fn new(state: crate::AppState, ca: Option<Arc<dyn Ca>>) -> Self {
        Self {
            state,
            ca,
            retries: HashMap::new(),
            publish_wait: PUBLISH_WAIT,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_publish_wait(mut self, wait: Duration) -> Self {
        self.publish_wait = wait;
        self
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.state.subscribe_changes();
        loop {
            if *stop.borrow() {
                return;
            }
            let scan = self.scan();
            let wait = tokio::select! {
                w = scan => w,
                _ = stop.changed() => return,
            };
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    fn store(&self) -> &dyn Store {
        self.state.store()
    }

    /// One pass over every custom domain; returns how long until the next pass is due.
    pub(crate) async fn scan(&mut self) -> Duration {
        let mut wait = RESCAN;
        let envs = match self.store().list_environments().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "certificates: cannot list environments");
                return Duration::from_secs(30);
            }
        };
        for env in envs {
            match self.scan_env(&env.name).await {
                Ok(w) => wait = wait.min(w),
                // Deleted meanwhile: nothing to do for it.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(environment = %env.name, error = %e, "certificates: scan failed");
                    wait = wait.min(Duration::from_secs(30));
                }
            }
        }
        wait
    }

    async fn scan_env(&mut self, env: &Name) -> Result<Duration, StoreError> {
        let mut wait = RESCAN;
        let domains: Vec<String> = self
            .store()
            .list_endpoints(env.as_str())
            .await?
            .into_iter()
            .filter(wants_certificate)
            .map(|e| e.domain.as_str().to_string())
            .collect();
        let certs = self.store().list_certificates(env.as_str()).await?;
        // Orders of domains that are no longer endpoints are dropped.
        for c in certs.iter().filter(|c| is_pending_record(c)) {
            if !c.domains.iter().any(|d| domains.contains(d)) {
                self.remove_pending(env, &c.domains[..]).await?;
            }
        }
        for domain in domains {
            let now = self.state.now();
            let retry_at = self.retries.get(&domain).map(|r| r.at);
            match plan::decide(&domain, &certs, now, self.ca.is_some(), retry_at) {
                Next::Covered => {
                    self.retries.remove(&domain);
                    if certs
                        .iter()
                        .any(|c| is_pending_record(c) && c.domains == [domain.clone()])
                    {
                        self.remove_pending(env, std::slice::from_ref(&domain))
                            .await?;
                    }
                }
                Next::NotConfigured => {
                    self.set_pending(env, &domain, CertificateState::Pending, NOT_CONFIGURED, &[])
                        .await?;
                }
                Next::Later(ms) => {
                    wait = wait.min(Duration::from_millis(ms.max(0) as u64));
                }
                Next::Order { renewal } => {
                    let w = self.order(env, &domain, renewal).await?;
                    wait = wait.min(w);
                }
            }
        }
        Ok(wait)
    }

    /// Orders a certificate for `domain` and stores it; a failure is recorded on the domain's
    /// pending record and retried later.
    async fn order(
        &mut self,
        env: &Name,
        domain: &str,
        renewal: bool,
    ) -> Result<Duration, StoreError> {
        let Some(ca) = self.ca.clone() else {
            return Ok(RESCAN);
        };
        tracing::info!(environment = %env, domain, renewal, "ordering a certificate");
        let what = if renewal { "renewing" } else { "ordering" };
        self.set_pending(
            env,
            domain,
            CertificateState::Pending,
            &format!("{what}: creating the ACME order"),
            &[],
        )
        .await?;
        let publisher = StorePublisher {
            state: self.state.clone(),
            env: env.clone(),
            domain: domain.to_string(),
            wait: self.publish_wait,
        };
        let result = match tokio::time::timeout(ORDER_TIMEOUT, ca.issue(domain, &publisher)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "the order took longer than {} s",
                ORDER_TIMEOUT.as_secs()
            )),
        };
        let stored = match result {
            Ok(issued) => self.store_issued(env, domain, issued).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(fingerprint) => {
                self.retries.remove(domain);
                tracing::info!(environment = %env, domain, fingerprint = %&fingerprint[..16], "certificate issued");
                Ok(RESCAN)
            }
            Err(e) => {
                let failures = self.retries.get(domain).map_or(0, |r| r.failures) + 1;
                let delay = retry_delay(failures);
                self.retries.insert(
                    domain.to_string(),
                    Retry {
                        failures,
                        at: self.state.now() + delay.as_millis() as UnixMs,
                    },
                );
                tracing::warn!(environment = %env, domain, error = %e, retry_in_s = delay.as_secs(), "certificate order failed");
                self.set_pending(
                    env,
                    domain,
                    CertificateState::Failed,
                    &format!("{what} failed: {e}; next try in {} s", delay.as_secs()),
                    &[],
                )
                .await?;
                Ok(delay)
            }
        }
    }

    /// Checks and stores an issued certificate, then drops the pending record and the older
    /// ACME certificates of the same domain.
    async fn store_issued(
        &self,
        env: &Name,
        domain: &str,
        issued: IssuedCert,
    ) -> Result<String, String> {
        let now = self.state.now();
        let parsed =
            crate::certs::parse_upload(&[issued.chain_pem.clone(), issued.key_pem.clone()], now)
                .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
        if !parsed.domains.iter().any(|d| d == domain) {
            return Err(format!(
                "the CA's certificate names {} but not {domain}",
                parsed.domains.join(", ")
            ));
        }
        let record = CertificateRecord {
            certificate: Certificate {
                environment: env.clone(),
                fingerprint: parsed.fingerprint.clone(),
                domains: parsed.domains,
                source: CertificateSource::Acme,
                state: CertificateState::Issued,
                issuer: parsed.issuer,
                not_before: parsed.not_before,
                not_after: parsed.not_after,
                created_at: now,
            },
            chain_pem: parsed.chain_pem,
            key_pem: parsed.key_pem,
        };
        let store_err = |e: StoreError| format!("cannot store the certificate: {e}");
        self.store()
            .add_certificate(&record)
            .await
            .map_err(store_err)?;
        let old: Vec<Certificate> = self
            .store()
            .list_certificates(env.as_str())
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|c| {
                c.source == CertificateSource::Acme
                    && c.fingerprint != parsed.fingerprint
                    && c.domains == [domain.to_string()]
            })
            .collect();
        for c in old {
            match self
                .store()
                .delete_certificate(env.as_str(), &c.fingerprint)
                .await
            {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        self.state.notify_change();
        Ok(parsed.fingerprint)
    }

    async fn remove_pending(&self, env: &Name, domains: &[String]) -> Result<(), StoreError> {
        for d in domains {
            match self
                .store()
                .delete_certificate(env.as_str(), &pending_fingerprint(d))
                .await
            {
                Ok(()) => self.state.notify_change(),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn set_pending(
        &self,
        env: &Name,
        domain: &str,
        state: CertificateState,
        message: &str,
        challenges: &[AcmeChallengeDoc],
    ) -> Result<(), StoreError> {
        set_pending(&self.state, env, domain, state, message, challenges).await
    }
}

/// Writes a domain's pending record unless it already says the same.
async fn set_pending(
    app: &crate::AppState,
    env: &Name,
    domain: &str,
    state: CertificateState,
    message: &str,
    challenges: &[AcmeChallengeDoc],
) -> Result<(), StoreError> {
    let store = app.store();
    let fingerprint = pending_fingerprint(domain);
    let key_pem = if challenges.is_empty() {
        String::new()
    } else {
        serde_json::to_string(challenges).unwrap_or_default()
    };
    match store.get_certificate(env.as_str(), &fingerprint).await {
        Ok(old)
            if old.certificate.state == state
                && old.certificate.issuer == message
                && old.key_pem == key_pem =>
        {
            return Ok(());
        }
        // No update in the store: replace the row.
        Ok(_) => store.delete_certificate(env.as_str(), &fingerprint).await?,
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let now = app.now();
    let record = CertificateRecord {
        certificate: Certificate {
            environment: env.clone(),
            fingerprint,
            domains: vec![domain.to_string()],
            source: CertificateSource::Acme,
            state,
            issuer: message.to_string(),
            not_before: 0,
            not_after: 0,
            created_at: now,
        },
        chain_pem: String::new(),
        key_pem,
    };
    match store.add_certificate(&record).await {
        // Another control plane wrote it meanwhile: theirs is as good.
        Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    app.notify_change();
    Ok(())
}

/// Publishes challenges on the domain's pending record, then gives agents time to get them.
struct StorePublisher {
    state: crate::AppState,
    env: Name,
    domain: String,
    wait: Duration,
}

#[async_trait]
impl Publisher for StorePublisher {
    async fn publish(&self, challenges: &[AcmeChallengeDoc]) -> Result<(), PublishError> {
        set_pending(
            &self.state,
            &self.env,
            &self.domain,
            CertificateState::Pending,
            "validating: the HTTP-01 challenge is published to the routers",
            challenges,
        )
        .await?;
        tokio::time::sleep(self.wait).await;
        Ok(())
    }
}

/// Whether the control plane orders a certificate for an endpoint: every custom domain, and
/// platform aliases under a real domain (`shop.apps.example.com`); `*.localhost` names cannot
/// have a public certificate.
fn wants_certificate(e: &mesh_types::api::Endpoint) -> bool {
    let d = e.domain.as_str();
    e.kind == EndpointKind::Custom || !(d == "localhost" || d.ends_with(".localhost"))
}

#[cfg(test)]
#[path = "acme/tests.rs"]
mod tests;
