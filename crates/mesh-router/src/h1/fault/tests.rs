//! Each fault's answer and access record, as the engine gave them before faults had a type.

use std::io;
use std::sync::Arc;

use http::HeaderValue;

use super::*;
use crate::config::ServiceKey;
use crate::h1::chunked::ChunkError;
use crate::table::{Route, Upstream};

const ID: &str = "web-1";

fn verdict(fault: Fault) -> Verdict {
    Verdict::of(&fault, ID)
}

fn page(failure: Failure, error: Option<&str>, close: bool) -> Verdict {
    Verdict {
        reply: Reply::Page(failure),
        error: error.map(str::to_owned),
        close,
    }
}

fn nothing(error: Option<&str>) -> Verdict {
    Verdict {
        reply: Reply::Nothing,
        error: error.map(str::to_owned),
        close: true,
    }
}

fn refused() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionRefused)
}

#[test]
fn routing_faults_get_their_pages_and_keep_the_connection_if_the_client_may() {
    assert_eq!(
        verdict(Fault::NoHost),
        page(Failure::BadRequest, None, false)
    );
    assert_eq!(
        verdict(Fault::Misdirected),
        page(Failure::Misdirected, None, false)
    );
    assert_eq!(verdict(Fault::NoRoute), page(Failure::NoRoute, None, false));
}

#[test]
fn body_faults_close_the_connection() {
    assert_eq!(
        verdict(Fault::BodyTooLarge),
        page(Failure::BodyTooLarge, None, true)
    );
    assert_eq!(
        verdict(Fault::Body(BodyError::TooLarge)),
        page(Failure::BodyTooLarge, None, true)
    );
    assert_eq!(
        verdict(Fault::Body(BodyError::Framing(ChunkError::Size))),
        page(Failure::BadRequest, None, true)
    );
    assert_eq!(
        verdict(Fault::BodyTimeout),
        Verdict {
            reply: Reply::Refuse(Invalid {
                status: 408,
                why: "request body not received in time"
            }),
            error: Some("client sent no body bytes in time".to_owned()),
            close: true,
        }
    );
}

#[test]
fn unreadable_heads_are_refused_with_their_reason_logged() {
    let invalid = Invalid {
        status: 431,
        why: "request head too large",
    };
    assert_eq!(
        verdict(Fault::Refused(invalid)),
        Verdict {
            reply: Reply::Refuse(invalid),
            error: Some("request head too large".to_owned()),
            close: true,
        }
    );
}

#[test]
fn no_instance_is_503_before_any_try_and_502_after_leaving_the_last_error() {
    assert_eq!(
        verdict(Fault::NoInstance { tried_any: false }),
        page(Failure::NoHealthyInstance, None, false)
    );
    assert_eq!(
        verdict(Fault::NoInstance { tried_any: true }),
        page(Failure::BadGateway, None, false)
    );
}

#[test]
fn instance_faults_are_502_naming_the_instance() {
    let cases = [
        (
            InstanceError::Connect(SendError::Connect(refused())),
            "instance web-1: connect: connection refused",
        ),
        (
            InstanceError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no progress in time",
            )),
            "instance web-1: no progress in time",
        ),
        (
            InstanceError::ClosedEarly,
            "instance web-1: connection closed before a response head",
        ),
        (
            InstanceError::BadHead("malformed response head"),
            "instance web-1: malformed response head",
        ),
        (
            InstanceError::HeadTooLarge,
            "instance web-1: response head too large",
        ),
    ];
    for (e, error) in cases {
        assert_eq!(
            verdict(Fault::Instance(e)),
            page(Failure::BadGateway, Some(error), false)
        );
    }
    // Its head named a protocol the client never asked for: what follows is not HTTP/1.
    assert_eq!(
        verdict(Fault::Instance(InstanceError::UnaskedSwitch)),
        page(
            Failure::BadGateway,
            Some("instance web-1: switched protocols unasked"),
            true
        )
    );
    assert_eq!(
        verdict(Fault::HeadTimeout),
        page(
            Failure::Timeout,
            Some("no response head before the timeout"),
            false
        )
    );
}

#[test]
fn a_client_gone_or_a_relay_cut_gets_no_answer() {
    assert_eq!(
        verdict(Fault::ClientLeft),
        nothing(Some("client went away"))
    );
    assert_eq!(verdict(Fault::InterimUnsent), nothing(None));
    assert_eq!(
        verdict(Fault::Relay(Cut::ClientGone)),
        nothing(Some("client went away"))
    );
    assert_eq!(
        verdict(Fault::Relay(Cut::ClientSlow)),
        nothing(Some("client took no response bytes in time"))
    );
    assert_eq!(
        verdict(Fault::Relay(Cut::Instance(
            "connection closed mid-body".to_owned()
        ))),
        nothing(Some(
            "response body from instance failed: connection closed mid-body"
        ))
    );
}

fn access() -> Access {
    Access::new(HeaderValue::from_static("req-1"), None, None)
}

fn routed(metrics: &Metrics) -> Access {
    let mut a = access();
    a.route = Some(Arc::new(Route {
        host: Arc::from("shop.test"),
        prefix: "/".to_owned(),
        upstream: Arc::new(Upstream {
            key: ServiceKey::new("env", "app", "web"),
            name: Arc::from("env/app/web"),
            instances: Vec::new(),
        }),
        metrics: metrics.route("shop.test", "env/app/web"),
    }));
    a
}

#[test]
fn an_answer_records_its_status_and_counts_as_unmatched_without_a_route() {
    let metrics = Metrics::new();
    let mut a = access();
    verdict(Fault::NoRoute).record(&mut a, &metrics);
    assert_eq!(a.status, 404);
    assert!(a.unmatched.is_some(), "counted under the unmatched route");
    assert_eq!(a.error, None);

    let mut a = access();
    verdict(Fault::Refused(Invalid {
        status: 408,
        why: "request head not received in time",
    }))
    .record(&mut a, &metrics);
    assert_eq!(a.status, 408);
    assert!(a.unmatched.is_some());
    assert_eq!(
        a.error.as_deref(),
        Some("request head not received in time")
    );

    let mut a = routed(&metrics);
    verdict(Fault::HeadTimeout).record(&mut a, &metrics);
    assert_eq!(a.status, 504);
    assert!(a.unmatched.is_none(), "counted under its route");
    assert_eq!(
        a.error.as_deref(),
        Some("no response head before the timeout")
    );

    let mut a = routed(&metrics);
    verdict(Fault::BodyTimeout).record(&mut a, &metrics);
    assert_eq!(a.status, 408);
    assert!(a.unmatched.is_none());
}

#[test]
fn a_502_after_failed_tries_keeps_the_last_connect_error() {
    let metrics = Metrics::new();
    let mut a = routed(&metrics);
    a.error = Some("instance web-2: connect: connection refused".to_owned());
    verdict(Fault::NoInstance { tried_any: true }).record(&mut a, &metrics);
    assert_eq!(a.status, 502);
    assert_eq!(
        a.error.as_deref(),
        Some("instance web-2: connect: connection refused")
    );
}

#[test]
fn without_an_answer_the_status_stays_as_it_was() {
    let metrics = Metrics::new();
    let mut a = routed(&metrics);
    verdict(Fault::ClientLeft).record(&mut a, &metrics);
    assert_eq!(a.status, 499, "client closed");
    assert_eq!(a.error.as_deref(), Some("client went away"));

    // The instance's head already went out: its status stands.
    let mut a = routed(&metrics);
    a.status = 200;
    verdict(Fault::Relay(Cut::ClientSlow)).record(&mut a, &metrics);
    assert_eq!(a.status, 200);
    assert!(a.unmatched.is_none());
    assert_eq!(
        a.error.as_deref(),
        Some("client took no response bytes in time")
    );

    let mut a = routed(&metrics);
    verdict(Fault::InterimUnsent).record(&mut a, &metrics);
    assert_eq!((a.status, a.error.as_deref()), (499, None));
}

#[test]
fn the_instance_in_the_error_is_the_one_named() {
    assert_eq!(
        Verdict::of(&Fault::Instance(InstanceError::ClosedEarly), "api-7")
            .error
            .as_deref(),
        Some("instance api-7: connection closed before a response head")
    );
}
