//! The CA side of an order, behind a trait so the manager is tested without a CA; the real one
//! speaks RFC 8555 through `instant-acme` (ring, no aws-lc).

use std::path::PathBuf;

use mesh_store::StoreError;

use async_trait::async_trait;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use mesh_types::desired::AcmeChallengeDoc;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::AcmeOptions;

/// A certificate chain (leaf first) and its fresh private key, PEM.
pub(crate) struct IssuedCert {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Why the HTTP-01 answers could not be made reachable.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish the challenge: {0}")]
pub(crate) struct PublishError(#[from] pub StoreError);

/// Why the CA gave no certificate, in words for the certificate's pending message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaError {
    #[error("--acme-ca-file {}: {source}", .path.display())]
    CaFile {
        path: PathBuf,
        source: instant_acme::Error,
    },
    #[error("ACME HTTP client: {0}")]
    Client(instant_acme::Error),
    #[error("ACME account: {0}")]
    Account(instant_acme::Error),
    #[error("cannot register with the ACME directory {directory}: {source}")]
    Register {
        directory: String,
        source: instant_acme::Error,
    },
    /// Talking to the CA failed at this step of the order.
    #[error("{step}: {source}")]
    Order {
        step: &'static str,
        source: instant_acme::Error,
    },
    /// The authorization's status, as the CA gave it.
    #[error("the authorization is {0}")]
    Authorization(String),
    #[error("the CA offers no HTTP-01 challenge")]
    NoHttp01,
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The order became invalid and its challenges say nothing of why.
    #[error("the CA refused the order")]
    Refused,
    /// The order became invalid: its challenges' errors.
    #[error("validation failed: {}", .0.join("; "))]
    Validation(Vec<String>),
    #[error("key: {0}")]
    Key(rcgen::Error),
    #[error("certificate request: {0}")]
    Request(rcgen::Error),
}

/// Makes HTTP-01 answers reachable, and returns once the routers should have them.
#[async_trait]
pub(crate) trait Publisher: Send + Sync {
    async fn publish(&self, challenges: &[AcmeChallengeDoc]) -> Result<(), PublishError>;
}

/// A certificate authority: one call, one certificate for one domain.
#[async_trait]
pub(crate) trait Ca: Send + Sync {
    async fn issue(&self, domain: &str, publish: &dyn Publisher) -> Result<IssuedCert, CaError>;
}

/// The account, kept in the data directory so restarts do not register new ones.
#[derive(Serialize, Deserialize)]
struct SavedAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

pub(crate) struct AcmeCa {
    opts: AcmeOptions,
    account_file: PathBuf,
    account: Mutex<Option<Account>>,
}

impl AcmeCa {
    pub(crate) fn new(opts: AcmeOptions, account_file: PathBuf) -> Self {
        Self {
            opts,
            account_file,
            account: Mutex::new(None),
        }
    }

    async fn account(&self) -> Result<Account, CaError> {
        let mut cached = self.account.lock().await;
        if let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        // The HTTP client builds a rustls config from the process default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || match &self.opts.ca_file {
            Some(path) => Account::builder_with_root(path).map_err(|source| CaError::CaFile {
                path: path.clone(),
                source,
            }),
            None => Account::builder().map_err(CaError::Client),
        };
        let saved = std::fs::read(&self.account_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<SavedAccount>(&b).ok())
            .filter(|s| s.directory_url == self.opts.directory_url);
        let account = match saved {
            Some(s) => builder()?
                .from_credentials(s.credentials)
                .await
                .map_err(CaError::Account)?,
            None => {
                let (account, credentials) = builder()?
                    .create(
                        &NewAccount {
                            contact: &[],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.opts.directory_url.clone(),
                        None,
                    )
                    .await
                    .map_err(|source| CaError::Register {
                        directory: self.opts.directory_url.clone(),
                        source,
                    })?;
                let saved = SavedAccount {
                    directory_url: self.opts.directory_url.clone(),
                    credentials,
                };
                if let Err(e) = save_private(&self.account_file, &saved) {
                    tracing::warn!(path = %self.account_file.display(), error = %e, "cannot keep the ACME account; a new one is made at the next start");
                }
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }
}

/// Writes the account (it holds its private key) readable by the owner only.
fn save_private(path: &std::path::Path, saved: &SavedAccount) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec(saved).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn acme_err(step: &'static str) -> impl Fn(instant_acme::Error) -> CaError {
    move |source| CaError::Order { step, source }
}

#[async_trait]
impl Ca for AcmeCa {
    async fn issue(&self, domain: &str, publish: &dyn Publisher) -> Result<IssuedCert, CaError> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(domain.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(acme_err("new order"))?;

        // First the answers to publish (an authorization the CA reuses is already valid),
        // then, once the routers have them, the CA may validate.
        let mut challenges = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(acme_err("authorization"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(CaError::Authorization(format!("{other:?}"))),
                }
                let challenge = authz
                    .challenge(ChallengeType::Http01)
                    .ok_or(CaError::NoHttp01)?;
                challenges.push(AcmeChallengeDoc {
                    token: challenge.token.clone(),
                    key_authorization: challenge.key_authorization().as_str().to_string(),
                });
            }
        }

        if !challenges.is_empty() {
            publish.publish(&challenges).await?;
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(acme_err("authorization"))?;
                if authz.status != AuthorizationStatus::Pending {
                    continue;
                }
                let mut challenge = authz
                    .challenge(ChallengeType::Http01)
                    .ok_or(CaError::NoHttp01)?;
                challenge.set_ready().await.map_err(acme_err("challenge"))?;
            }
        }

        let retries = RetryPolicy::new().timeout(std::time::Duration::from_secs(90));
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(acme_err("validation"))?;
        if status != OrderStatus::Ready {
            return Err(validation_failure(&mut order).await);
        }

        let key = rcgen::KeyPair::generate().map_err(CaError::Key)?;
        let csr = rcgen::CertificateParams::new(vec![domain.to_string()])
            .and_then(|p| p.serialize_request(&key))
            .map_err(CaError::Request)?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(acme_err("finalize"))?;
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(acme_err("certificate"))?;
        Ok(IssuedCert {
            chain_pem,
            key_pem: key.serialize_pem(),
        })
    }
}

/// Why an order became invalid, from its challenges' errors.
async fn validation_failure(order: &mut instant_acme::Order) -> CaError {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(p) = &c.error {
                reasons.push(p.detail.clone().unwrap_or_else(|| format!("{p}")));
            }
        }
    }
    if reasons.is_empty() {
        CaError::Refused
    } else {
        CaError::Validation(reasons)
    }
}
