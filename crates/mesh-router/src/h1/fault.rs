//! Every way an exchange ends other than relaying an instance's answer whole, as one type,
//! and the one table saying what each gets: the answer the router sends (an error page, a
//! bare refusal, or nothing), what the access record says, and whether the client connection
//! must close. `Engine::conclude` (reply.rs) carries it out.

use std::fmt::Display;
use std::io;

use super::body::BodyError;
use super::head::Invalid;
use crate::metrics::Metrics;
use crate::proxy::{Access, Failure, SendError};

#[cfg(test)]
mod tests;

/// Why an exchange stopped.
#[derive(Debug)]
pub(super) enum Fault {
    /// A request head the router cannot take (or that did not come in time).
    Refused(Invalid),
    /// No usable `Host`.
    NoHost,
    /// An HTTPS request for another host than its TLS connection was made for.
    Misdirected,
    NoRoute,
    /// The declared body length is over the limit.
    BodyTooLarge,
    /// The body, as it came, is over the limit or not valid chunked framing.
    Body(BodyError),
    /// The client stopped sending its body.
    BodyTimeout,
    /// No instance left to try; `tried_any`: some were tried and failed.
    NoInstance {
        tried_any: bool,
    },
    /// The instance the request went to failed it.
    Instance(InstanceError),
    /// The instance sent no response head in time.
    HeadTimeout,
    /// The client closed its connection before the response head.
    ClientLeft,
    /// The client did not take an interim answer (`100 Continue`, other 1xx).
    InterimUnsent,
    /// The response body relay stopped (its head is already with the client).
    Relay(Cut),
}

/// What went wrong with an instance (logged after its id).
#[derive(Debug, thiserror::Error)]
pub(super) enum InstanceError {
    #[error(transparent)]
    Connect(SendError),
    #[error(transparent)]
    Io(io::Error),
    #[error("connection closed before a response head")]
    ClosedEarly,
    #[error("{0}")]
    BadHead(&'static str),
    #[error("response head too large")]
    HeadTooLarge,
    #[error("switched protocols unasked")]
    UnaskedSwitch,
}

/// How a response body relay ended, when not complete.
#[derive(Debug)]
pub(super) enum Cut {
    ClientGone,
    /// The client took no bytes for the client timeout.
    ClientSlow,
    Instance(String),
}

/// The answer a fault gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// An error page; the connection may stay open.
    Page(Failure),
    /// A plain-text refusal, then the connection closes.
    Refuse(Invalid),
    /// No answer (the client is gone, or has part of the instance's answer): it closes.
    Nothing,
}

/// What the router does about one fault.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Verdict {
    pub reply: Reply,
    /// Replaces the access record's error; `None` leaves it (a `NoInstance` 502 keeps the
    /// last connect failure).
    pub error: Option<String>,
    /// The client connection closes even if the client wanted it kept and sent its whole body
    /// (what is left on it cannot be trusted to be the next request's start).
    pub close: bool,
}

impl Verdict {
    /// The verdict on `fault`; `instance` is the id of the instance the request went to.
    pub(super) fn of(fault: &Fault, instance: &str) -> Self {
        let (reply, error, close) = match fault {
            Fault::Refused(invalid) => {
                (Reply::Refuse(*invalid), Some(invalid.why.to_owned()), true)
            }
            Fault::NoHost => (Reply::Page(Failure::BadRequest), None, false),
            Fault::Misdirected => (Reply::Page(Failure::Misdirected), None, false),
            Fault::NoRoute => (Reply::Page(Failure::NoRoute), None, false),
            Fault::BodyTooLarge => (Reply::Page(Failure::BodyTooLarge), None, true),
            Fault::Body(BodyError::TooLarge) => (Reply::Page(Failure::BodyTooLarge), None, true),
            Fault::Body(BodyError::Framing(_)) => (Reply::Page(Failure::BadRequest), None, true),
            Fault::BodyTimeout => (
                Reply::Refuse(Invalid {
                    status: 408,
                    why: "request body not received in time",
                }),
                Some("client sent no body bytes in time".to_owned()),
                true,
            ),
            Fault::NoInstance { tried_any: false } => {
                (Reply::Page(Failure::NoHealthyInstance), None, false)
            }
            Fault::NoInstance { tried_any: true } => {
                (Reply::Page(Failure::BadGateway), None, false)
            }
            Fault::Instance(e) => (
                Reply::Page(Failure::BadGateway),
                Some(instance_error(instance, e)),
                matches!(e, InstanceError::UnaskedSwitch),
            ),
            Fault::HeadTimeout => (
                Reply::Page(Failure::Timeout),
                Some("no response head before the timeout".to_owned()),
                false,
            ),
            Fault::ClientLeft | Fault::Relay(Cut::ClientGone) => {
                (Reply::Nothing, Some("client went away".to_owned()), true)
            }
            Fault::InterimUnsent => (Reply::Nothing, None, true),
            Fault::Relay(Cut::ClientSlow) => (
                Reply::Nothing,
                Some("client took no response bytes in time".to_owned()),
                true,
            ),
            Fault::Relay(Cut::Instance(e)) => (
                Reply::Nothing,
                Some(format!("response body from instance failed: {e}")),
                true,
            ),
        };
        Self {
            reply,
            error,
            close,
        }
    }

    /// Writes the verdict into the access record: the error, and for an answer its status
    /// (counted under "unmatched" when no route was found). Without an answer the status stays
    /// what it was: 499, or the instance's once its head went out.
    pub(super) fn record(&mut self, access: &mut Access, metrics: &Metrics) {
        if let Some(error) = self.error.take() {
            access.error = Some(error);
        }
        let status = match self.reply {
            Reply::Page(failure) => failure.status().as_u16(),
            Reply::Refuse(invalid) => invalid.status,
            Reply::Nothing => return,
        };
        if access.route.is_none() {
            access.unmatched = Some(metrics.unmatched());
        }
        access.status = status;
    }
}

/// How the access record names a failure of the instance with id `instance`.
pub(super) fn instance_error(instance: &str, e: &dyn Display) -> String {
    format!("instance {instance}: {e}")
}
