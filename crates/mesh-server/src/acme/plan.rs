//! What a custom domain needs, as a pure function of its environment's certificates and time.

use mesh_types::UnixMs;
use mesh_types::api::{Certificate, CertificateState};

use super::{RENEW_BEFORE_MS, is_pending_record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// An issued certificate covers the domain for long enough (or, without ACME, still
    /// covers it at all): nothing to do.
    Covered,
    /// Nothing covers it and no CA is configured: say so on its pending record.
    NotConfigured,
    /// It failed recently: try again in this many milliseconds.
    Later(UnixMs),
    /// Order now; `renewal` when a certificate still covers it but expires within 30 days.
    Order { renewal: bool },
}

/// Whether `cert` names `domain`, exactly or through a one-label wildcard.
pub(crate) fn covers(cert: &Certificate, domain: &str) -> bool {
    cert.domains.iter().any(|d| {
        d == domain
            || d.strip_prefix("*.")
                .is_some_and(|parent| domain.split_once('.').is_some_and(|(_, p)| p == parent))
    })
}

pub(crate) fn decide(
    domain: &str,
    certs: &[Certificate],
    now: UnixMs,
    configured: bool,
    retry_at: Option<UnixMs>,
) -> Next {
    let best = certs
        .iter()
        .filter(|c| {
            c.state == CertificateState::Issued && !is_pending_record(c) && covers(c, domain)
        })
        .map(|c| c.not_after)
        .max();
    if best.is_some_and(|until| until - now > RENEW_BEFORE_MS) {
        return Next::Covered;
    }
    if !configured {
        return if best.is_some_and(|until| until > now) {
            Next::Covered
        } else {
            Next::NotConfigured
        };
    }
    if let Some(at) = retry_at
        && at > now
    {
        return Next::Later(at - now);
    }
    Next::Order {
        renewal: best.is_some_and(|until| until > now),
    }
}
