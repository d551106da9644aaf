//! The router's own answers: error pages, redirects and ACME challenge responses.
//!
//! Error pages say which case happened (no route, no healthy instance, instance failed, timeout,
//! body too large) and carry the request id, but never an internal address or service name.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use super::headers::X_REQUEST_ID;

/// Why the router answered instead of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No or malformed `Host`.
    BadRequest,
    /// No endpoint for this host (or no route for this path).
    NoRoute,
    /// Declared or streamed body over the limit.
    BodyTooLarge,
    /// Could not connect to any instance, or the instance broke the connection.
    BadGateway,
    /// No healthy, non-draining instance.
    NoHealthyInstance,
    /// The instance did not send a response head in time.
    Timeout,
    /// An HTTPS request for another host than its TLS connection was made for (SNI).
    Misdirected,
}

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::BadGateway => StatusCode::BAD_GATEWAY,
            Failure::NoHealthyInstance => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Misdirected => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// One sentence for a person, naming the case.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Failure::BadRequest => "The request has no valid Host header.",
            Failure::NoRoute => "No application is published at this address.",
            Failure::BodyTooLarge => "The request body is larger than this endpoint accepts.",
            Failure::BadGateway => {
                "The application could not be reached, or it closed the connection before answering."
            }
            Failure::NoHealthyInstance => {
                "No healthy instance of the application is available right now. Try again shortly."
            }
            Failure::Timeout => "The application did not answer in time.",
            Failure::Misdirected => {
                "This connection was made for another host name; send the request on a new connection."
            }
        }
    }

    /// A stable machine-readable code, also in the `x-mesh-error` header.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Failure::BadRequest => "bad-request",
            Failure::NoRoute => "no-route",
            Failure::BodyTooLarge => "body-too-large",
            Failure::BadGateway => "bad-gateway",
            Failure::NoHealthyInstance => "no-healthy-instance",
            Failure::Timeout => "timeout",
            Failure::Misdirected => "misdirected",
        }
    }
}

/// An error page, HTML when the client accepts it, plain text otherwise.
pub(crate) fn error_page(
    failure: Failure,
    request_id: &HeaderValue,
    html: bool,
) -> Response<ResponseBody> {
    let status = failure.status();
    let reason = status.canonical_reason().unwrap_or("Error");
    let id = request_id.to_str().unwrap_or("-");
    let (body, content_type) = if html {
        (
            format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n\
                 <body><h1>{code} {reason}</h1>\n<p>{msg}</p>\n<p><small>Request ID: {id}</small></p></body></html>\n",
                code = status.as_u16(),
                msg = failure.message(),
                id = escape(id),
            ),
            "text/html; charset=utf-8",
        )
    } else {
        (
            format!(
                "{} {reason}\n{}\nRequest ID: {id}\n",
                status.as_u16(),
                failure.message()
            ),
            "text/plain; charset=utf-8",
        )
    };
    let mut resp = Response::new(ResponseBody::full(body, None));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-mesh-error", HeaderValue::from_static(failure.code()));
    h.insert(X_REQUEST_ID.clone(), request_id.clone());
    if failure == Failure::NoHealthyInstance {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Whether the client prefers an HTML page (browsers send `Accept: text/html,...`).
pub(crate) fn wants_html(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// A permanent redirect keeping method and body (308).
pub(crate) fn redirect(location: &str, request_id: &HeaderValue) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty(None));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::try_from(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), request_id.clone());
    resp
}

/// The key authorization for an HTTP-01 challenge.
pub(crate) fn acme_answer(key_authorization: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(key_authorization.to_owned(), None));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
