//! The HTTP/1.1 engine: serves a client connection's requests in the connection's own task,
//! talking to instances over pooled HTTP/1.1 connections it drives itself.
//!
//! hyper serves HTTP/2 clients; HTTP/1 clients (nearly all traffic an edge sees from load
//! balancers, curl and most libraries) take this path because it does much less per request:
//! heads are parsed in place (httparse) and rewritten as bytes, never put in header maps;
//! the instance exchange happens in the same task instead of in a second task fed over
//! channels; bodies are copied through one buffer per side, framing scanned, not re-encoded.
//! Routing, balancing, retries, error pages, the access record and draining are the same as
//! the hyper path's (`proxy`).
//!
//! One exchange: read the request head (header timeout; idle connections close when the
//! router drains) → route (ACME answers, HTTPS redirects, error pages) → pick an instance
//! (connect failures retried elsewhere) → send head and body (a pooled connection found
//! closed is replaced and the request sent again when the whole body is still at hand) →
//! wait for the response head (head timeout, client leaving = 499) → relay the body
//! (length, chunked, or until close) → pool the instance connection if it can serve again.
//! `101 Switching Protocols` turns the connection into a tunnel. The caller ends the whole
//! connection when the router's shutdown deadline passes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf as TokioReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::forwarding;
use crate::proxy::{self, Access, ConnInfo, Decision, Failure, ProxyState, ResponseBody, pages};
use crate::table::normalize_host;
use crate::tracker::{self, Phase};

mod body;
mod buf;
pub(crate) mod chunked;
mod date;
pub(crate) mod head;
mod upstream;

#[cfg(test)]
mod tests;

use body::{BodyError, RequestBody};
use buf::ReadBuf;
use chunked::{Chunked, Step};
use head::{Client, Exchange, Framing, Invalid, Parsed, Request};
pub(crate) use upstream::Pool;

/// What an HTTP/2 client sends first (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// First size of a client connection's read buffer (grows up to the head size limit).
const CLIENT_BUF: usize = 4096;

/// How long a connection accepted just before shutdown may take to send its first request
/// before it is closed without one.
pub(crate) const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// How a client connection ended.
pub(crate) enum Served<IO> {
    Done,
    /// The client speaks HTTP/2 (prior knowledge): the connection, with the bytes already
    /// read put back in front, for the HTTP/2 server.
    Http2(Prefixed<IO>),
}

/// Serves HTTP/1 requests on one client connection until it closes. With `sniff_h2`, a
/// connection that opens with the HTTP/2 preface is handed back instead.
pub(crate) async fn serve<IO>(
    io: IO,
    conn: ConnInfo,
    state: Arc<ProxyState>,
    sniff_h2: bool,
) -> Served<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut e = Engine::new(io, conn, state);
    let mut first = true;
    loop {
        let req = match e.read_request(first, sniff_h2).await {
            ReadHead::Request(r) => r,
            ReadHead::Http2 => {
                let prefix = e.buf.filled().to_vec();
                return Served::Http2(Prefixed::new(prefix, e.io));
            }
            ReadHead::Closed => break,
        };
        first = false;
        if !e.exchange(req).await {
            break;
        }
    }
    // Best effort: the client may be gone, or not reading.
    let _ = tokio::time::timeout(Duration::from_secs(1), e.io.shutdown()).await;
    Served::Done
}

enum ReadHead {
    Request(Request),
    Http2,
    Closed,
}

/// How a response body relay ended, when not complete.
enum Cut {
    ClientGone,
    /// The client took no bytes for the client timeout.
    ClientSlow,
    Instance(String),
}

/// A deadline kept on one timer that is only moved earlier, never later: the timer fires at
/// or before the deadline and is re-armed then if the deadline moved on. Arming it for every
/// request costs a clock read instead of a timer-wheel update.
struct Deadline {
    sleep: Pin<Box<Sleep>>,
    at: Instant,
    /// The shortest timeout the connection arms: a timer re-armed no later than this from now
    /// is never ahead of the next deadline, so arming does not move it.
    shortest: Duration,
}

impl Deadline {
    fn new(shortest: Duration) -> Self {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Self {
            sleep: Box::pin(tokio::time::sleep_until(far)),
            at: far,
            shortest,
        }
    }

    fn arm(&mut self, at: Instant) {
        self.at = at;
        if self.sleep.deadline() > at {
            self.sleep.as_mut().reset(at);
        }
    }

    fn arm_sooner(&mut self, at: Instant) {
        if at < self.at {
            self.arm(at);
        }
    }

    async fn passed(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let now = Instant::now();
            if now >= self.at {
                return;
            }
            let next = self.at.min(now + self.shortest);
            self.sleep.as_mut().reset(next);
        }
    }
}

struct Engine<IO> {
    io: IO,
    buf: ReadBuf,
    /// Heads (and body starts) going to the client.
    out: Vec<u8>,
    /// The head (and body start) going to the instance, kept to send it again.
    send: Vec<u8>,
    conn: ConnInfo,
    client: Client,
    /// The current request is `HEAD` (the router's own answers then carry no body).
    head_request: bool,
    /// The current request's `HTTP/1.x` minor version.
    minor: u8,
    state: Arc<ProxyState>,
    phase: watch::Receiver<Phase>,
    /// Resolves once the router drains (made once per connection, polled while idle).
    drained: Pin<Box<dyn Future<Output = ()> + Send>>,
    deadline: Deadline,
}

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn new(io: IO, conn: ConnInfo, state: Arc<ProxyState>) -> Self {
        let o = &state.options;
        let shortest = o
            .header_read_timeout
            .min(o.response_head_timeout)
            .min(o.client_timeout);
        let client = Client::new(conn.peer.ip(), conn.https, conn.local.port(), conn.trusted);
        Self {
            io,
            buf: ReadBuf::new(CLIENT_BUF),
            out: Vec::with_capacity(1024),
            send: Vec::with_capacity(1024),
            conn,
            client,
            head_request: false,
            minor: 1,
            phase: state.tracker.phase(),
            drained: {
                let mut rx = state.tracker.phase();
                Box::pin(async move { tracker::reached(&mut rx, Phase::Draining).await })
            },
            state,
            deadline: Deadline::new(shortest),
        }
    }

    fn draining(&self) -> bool {
        *self.phase.borrow() >= Phase::Draining
    }

    fn head_limit(&self) -> usize {
        self.state.options.max_header_bytes.max(1024)
    }

    /// Reads until a whole request head is here.
    async fn read_request(&mut self, first: bool, sniff_h2: bool) -> ReadHead {
        let limit = self.head_limit();
        self.deadline
            .arm(Instant::now() + self.state.options.header_read_timeout);
        let mut grace = false;
        // Bytes already searched for the end of the head: a head trickling in byte by byte is
        // parsed once it can be complete, not once per read (which would cost O(n^2)).
        let mut searched: usize = 0;
        loop {
            if !self.buf.is_empty() {
                let input = self.buf.filled();
                let n = input.len().min(PREFACE.len());
                let maybe_h2 = first && sniff_h2 && input[..n] == PREFACE[..n];
                if maybe_h2 && n == PREFACE.len() {
                    return ReadHead::Http2;
                }
                if !maybe_h2 && head_may_end(&input[searched.saturating_sub(2)..]) {
                    match head::parse_request(input, &self.client, &mut self.send) {
                        Ok(Parsed::Complete(r)) => return ReadHead::Request(r),
                        Ok(Parsed::Partial) => {}
                        Err(invalid) => {
                            self.refuse(invalid, None).await;
                            return ReadHead::Closed;
                        }
                    }
                }
                if !maybe_h2 {
                    searched = self.buf.len();
                }
            }
            if !self.buf.has_room(limit) {
                self.refuse(
                    Invalid {
                        status: 431,
                        why: "request head too large",
                    },
                    None,
                )
                .await;
                return ReadHead::Closed;
            }
            let idle = self.buf.is_empty();
            tokio::select! {
                biased;
                r = self.buf.read_from(&mut self.io, limit) => match r {
                    Ok(0) | Err(_) => return ReadHead::Closed,
                    Ok(_) => {}
                },
                () = self.deadline.passed() => {
                    if !idle {
                        self.refuse(Invalid { status: 408, why: "request head not received in time" }, None).await;
                    }
                    return ReadHead::Closed;
                }
                () = self.drained.as_mut(), if idle && !grace => {
                    if !first {
                        return ReadHead::Closed;
                    }
                    // Accepted just before draining: it gets a moment to send its request.
                    grace = true;
                    self.deadline.arm_sooner(Instant::now() + FIRST_REQUEST_GRACE);
                }
            }
        }
    }

    /// Answers a request the router cannot even read (or that stalled), and closes. It is
    /// logged and counted like any other (`access`, or a record of its own).
    async fn refuse(&mut self, invalid: Invalid, access: Option<Access>) {
        let mut access =
            access.unwrap_or_else(|| Access::new(proxy::headers::new_request_id(), None, None));
        if access.route.is_none() {
            access.unmatched = Some(self.state.metrics.unmatched());
        }
        access.status = invalid.status;
        if access.error.is_none() {
            access.error = Some(invalid.why.to_owned());
        }
        let reason = http::StatusCode::from_u16(invalid.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Bad Request");
        let body = format!("{} {reason}\n{}\n", invalid.status, invalid.why);
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nX-Request-ID: {}\r\nConnection: close\r\n\r\n{body}",
                invalid.status,
                body.len(),
                access.request_id.to_str().unwrap_or("-"),
            )
            .as_bytes(),
        );
        let _ = self.write_out().await;
    }

    /// Writes `out` to a client that must take it within the client timeout.
    async fn write_out(&mut self) -> Result<(), Cut> {
        self.deadline
            .arm(Instant::now() + self.state.options.client_timeout);
        tokio::select! {
            biased;
            r = async {
                self.io.write_all(&self.out).await?;
                self.io.flush().await
            } => r.map_err(|_| Cut::ClientGone),
            () = self.deadline.passed() => Err(Cut::ClientSlow),
        }
    }

    /// Writes one of the router's own answers; returns whether the connection stays open.
    async fn answer(&mut self, mut resp: Response<ResponseBody>, close: bool) -> bool {
        let body = resp.body_mut().take_full();
        self.out.clear();
        let status = resp.status();
        self.out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\n",
                status.as_str(),
                status.canonical_reason().unwrap_or("")
            )
            .as_bytes(),
        );
        for (name, value) in resp.headers() {
            self.out.extend_from_slice(name.as_str().as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        head::put_length(&mut self.out, body.len() as u64);
        date::put_header(&mut self.out);
        if close {
            self.out.extend_from_slice(b"Connection: close\r\n");
        } else if self.minor == 0 {
            self.out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        if !self.head_request {
            self.out.extend_from_slice(&body);
        }
        self.write_out().await.is_ok() && !close
    }

    /// Answers with an error page instead of an instance.
    async fn fail(
        &mut self,
        failure: Failure,
        mut access: Access,
        html: bool,
        close: bool,
    ) -> bool {
        if access.route.is_none() {
            access.unmatched = Some(self.state.metrics.unmatched());
        }
        access.status = failure.status().as_u16();
        let page = pages::error_page(failure, &access.request_id, html);
        let close = close || self.draining();
        self.answer(page, close).await
    }

    /// Serves one request; returns whether the connection stays open for another.
    async fn exchange(&mut self, req: Request) -> bool {
        let Request {
            head_len,
            method,
            path,
            minor,
            host,
            body: framing,
            keep_alive,
            upgrade,
            expect_continue,
            html,
            request_id,
        } = req;
        self.buf.consume(head_len);
        let state = self.state.clone();
        let head_request = method == Method::HEAD;
        self.head_request = head_request;
        self.minor = minor;
        // Sent again on a new connection only if repeating it is harmless (RFC 9110 9.2.2).
        let idempotent = matches!(
            method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let mut access = Access::new(request_id, Some(method), Some(path));
        // An unread request body leaves the connection unusable for the next request.
        let unread_close = !keep_alive || !framing.is_empty();
        let Some(host) = host.as_deref().and_then(normalize_host) else {
            return self
                .fail(Failure::BadRequest, access, html, unread_close)
                .await;
        };
        access.host = host;
        if forwarding::misdirected(self.conn.https, self.conn.sni.as_deref(), &access.host) {
            return self
                .fail(Failure::Misdirected, access, html, unread_close)
                .await;
        }
        let decision = match &access.path {
            Some(pq) => proxy::decide(
                &state,
                self.conn.https,
                &access.host,
                pq,
                &access.request_id,
            ),
            None => Decision::NoRoute,
        };
        let route = match decision {
            Decision::Route(route) => route,
            Decision::NoRoute => {
                return self
                    .fail(Failure::NoRoute, access, html, unread_close)
                    .await;
            }
            Decision::Answer(resp) => {
                access.unmatched = Some(state.metrics.unmatched());
                access.status = resp.status().as_u16();
                let close = unread_close || self.draining();
                return self.answer(resp, close).await;
            }
        };
        access.route = Some(route.clone());
        let limit = state.options.max_request_body_bytes;
        if matches!(framing, Framing::Length(n) if n > limit) {
            return self.fail(Failure::BodyTooLarge, access, html, true).await;
        }
        if expect_continue && !framing.is_empty() && self.buf.is_empty() && minor == 1 {
            self.out.clear();
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if self.write_out().await.is_err() {
                return false;
            }
        }

        // What of the body is here goes out with the head.
        let mut body = RequestBody::new(framing, limit);
        match body.take(self.buf.filled()) {
            Ok(n) => {
                self.send.extend_from_slice(&self.buf.filled()[..n]);
                self.buf.consume(n);
            }
            Err(e) => return self.fail(e.failure(), access, html, true).await,
        }
        let resendable = body.done();

        // Pick an instance and send the head; connect failures go to the next instance.
        let upstream = &route.upstream;
        let mut tried = [usize::MAX; 8];
        let mut n_tried = 0;
        let (mut up, mut reused, addr) = loop {
            let Some(idx) = upstream.pick(&tried[..n_tried]) else {
                let failure = if n_tried == 0 {
                    Failure::NoHealthyInstance
                } else {
                    Failure::BadGateway
                };
                let close = !keep_alive || !body.done();
                return self.fail(failure, access, html, close).await;
            };
            if n_tried < tried.len() {
                tried[n_tried] = idx;
                n_tried += 1;
            }
            access.attempts += 1;
            let instance = &upstream.instances[idx];
            access.instance = Some(idx);
            access.in_flight = Some(instance.in_flight.start());
            if let Some(c) = state.h1_pool.take(instance.addr) {
                break (c, true, instance.addr);
            }
            let last_chance = access.attempts >= state.options.max_attempts
                || n_tried >= upstream.instances.len();
            match state.h1_pool.connect(instance.addr).await {
                Ok(c) => break (c, false, instance.addr),
                Err(e) => {
                    access.error = Some(format!("instance {}: {e}", instance.id));
                    if last_chance {
                        let close = !keep_alive || !body.done();
                        return self.fail(Failure::BadGateway, access, html, close).await;
                    }
                    tracing::debug!(instance = %instance.id, error = %e, "connect failed, retrying");
                }
            }
        };
        let instance_id = upstream.instances[access.instance.unwrap_or(0)].id.clone();
        // Every write to and body read from an instance must progress within this.
        let instance_timeout = state.options.response_head_timeout;
        self.deadline.arm(Instant::now() + instance_timeout);
        let mut sent = within(&mut self.deadline, up.tcp.write_all(&self.send)).await;
        if sent.is_err() && reused && resendable {
            // The pooled connection was closed meanwhile (the request could not have been
            // read whole): a new one gets it.
            match state.h1_pool.connect(addr).await {
                Ok(c) => {
                    up = c;
                    reused = false;
                    sent = within(&mut self.deadline, up.tcp.write_all(&self.send)).await;
                }
                Err(e) => sent = Err(io::Error::other(e)),
            }
        }
        if let Err(e) = sent {
            access.error = Some(format!("instance {instance_id}: {e}"));
            let close = !keep_alive || !body.done();
            return self.fail(Failure::BadGateway, access, html, close).await;
        }

        // The rest of the body streams through as it arrives.
        let head_limit = self.head_limit();
        while !body.done() {
            if self.buf.is_empty() {
                self.deadline
                    .arm(Instant::now() + state.options.client_timeout);
                tokio::select! {
                    biased;
                    r = self.buf.read_from(&mut self.io, head_limit) => match r {
                        Ok(0) | Err(_) => {
                            access.error = Some("client went away".to_owned());
                            return false;
                        }
                        Ok(_) => {}
                    },
                    () = self.deadline.passed() => {
                        access.error = Some("client sent no body bytes in time".to_owned());
                        self.refuse(Invalid { status: 408, why: "request body not received in time" }, Some(access)).await;
                        return false;
                    }
                }
            }
            let n = match body.take(self.buf.filled()) {
                Ok(n) => n,
                Err(e) => return self.fail(e.failure(), access, html, true).await,
            };
            self.deadline.arm(Instant::now() + instance_timeout);
            let wrote = within(
                &mut self.deadline,
                up.tcp.write_all(&self.buf.filled()[..n]),
            )
            .await;
            self.buf.consume(n);
            if wrote.is_err() {
                // The instance stopped reading; it may have answered already.
                break;
            }
        }

        // The response head.
        let client_close = !keep_alive || !body.done();
        self.deadline
            .arm(Instant::now() + state.options.response_head_timeout);
        let mut retried = false;
        // Whether the instance sent anything at all (then the request is never sent again).
        let mut answered = false;
        let resp = loop {
            if !up.buf.is_empty() {
                let x = Exchange {
                    head_request,
                    client_minor: minor,
                    close: client_close || self.draining(),
                    request_id: &access.request_id,
                };
                match head::parse_response(up.buf.filled(), &x, &mut self.out) {
                    Ok(Parsed::Complete(r))
                        if (100..200).contains(&r.status) && r.status != 101 =>
                    {
                        up.buf.consume(r.head_len);
                        // 100 Continue was the router's to send; other interim answers pass.
                        if r.status != 100 && minor == 1 && self.write_out().await.is_err() {
                            return false;
                        }
                        continue;
                    }
                    Ok(Parsed::Complete(r)) => break r,
                    Ok(Parsed::Partial) => {}
                    Err(invalid) => {
                        access.error = Some(format!("instance {instance_id}: {}", invalid.why));
                        return self
                            .fail(Failure::BadGateway, access, html, client_close)
                            .await;
                    }
                }
            }
            if !up.buf.has_room(head_limit) {
                access.error = Some(format!("instance {instance_id}: response head too large"));
                return self
                    .fail(Failure::BadGateway, access, html, client_close)
                    .await;
            }
            let watch_client = self.buf.has_room(head_limit);
            tokio::select! {
                biased;
                r = up.buf.read_from(&mut up.tcp, head_limit) => match r {
                    Ok(0) | Err(_) if reused && resendable && idempotent && !retried && !answered => {
                        // A pooled connection the instance closed as the request went out.
                        retried = true;
                        match state.h1_pool.connect(addr).await {
                            Ok(c) => up = c,
                            Err(e) => {
                                access.error = Some(format!("instance {instance_id}: {e}"));
                                return self.fail(Failure::BadGateway, access, html, client_close).await;
                            }
                        }
                        reused = false;
                        if let Err(e) = within(&mut self.deadline, up.tcp.write_all(&self.send)).await {
                            access.error = Some(format!("instance {instance_id}: {e}"));
                            return self.fail(Failure::BadGateway, access, html, client_close).await;
                        }
                    }
                    Ok(0) => {
                        access.error = Some(format!(
                            "instance {instance_id}: connection closed before a response head"
                        ));
                        return self.fail(Failure::BadGateway, access, html, client_close).await;
                    }
                    Err(e) => {
                        access.error = Some(format!("instance {instance_id}: {e}"));
                        return self.fail(Failure::BadGateway, access, html, client_close).await;
                    }
                    Ok(_) => answered = true,
                },
                () = self.deadline.passed() => {
                    access.error = Some("no response head before the timeout".to_owned());
                    return self.fail(Failure::Timeout, access, html, client_close).await;
                }
                // A client that leaves stops the exchange (logged as 499).
                r = self.buf.read_from(&mut self.io, head_limit), if watch_client => match r {
                    Ok(0) | Err(_) => {
                        access.error = Some("client went away".to_owned());
                        return false;
                    }
                    Ok(_) => {}
                },
            }
        };
        up.buf.consume(resp.head_len);
        access.status = resp.status;

        if resp.status == 101 {
            if !upgrade {
                access.error = Some(format!(
                    "instance {instance_id}: switched protocols unasked"
                ));
                return self.fail(Failure::BadGateway, access, html, true).await;
            }
            self.tunnel(up, &mut access).await;
            return false;
        }

        let mut sent_bytes = 0;
        let relayed = self
            .relay(&mut up, resp.body, resp.dechunk, &mut sent_bytes)
            .await;
        access.bytes = sent_bytes;
        match relayed {
            Ok(()) => {
                if resp.reusable && body.done() {
                    state.h1_pool.put(addr, up);
                }
                !resp.close
            }
            Err(Cut::ClientGone) => {
                access.error = Some("client went away".to_owned());
                false
            }
            Err(Cut::ClientSlow) => {
                access.error = Some("client took no response bytes in time".to_owned());
                false
            }
            Err(Cut::Instance(e)) => {
                access.error = Some(format!("response body from instance failed: {e}"));
                false
            }
        }
    }

    /// Sends the response head in `out` and the body after it.
    async fn relay(
        &mut self,
        up: &mut upstream::Conn,
        framing: Framing,
        dechunk: bool,
        sent: &mut u64,
    ) -> Result<(), Cut> {
        let mut left = match framing {
            Framing::Empty => 0,
            Framing::Length(n) => n,
            Framing::Chunked | Framing::UntilClose => u64::MAX,
        };
        let mut chunked = Chunked::default();
        loop {
            let input = up.buf.filled();
            let used = match framing {
                Framing::Chunked => {
                    let mut at = 0;
                    while at < input.len() && !chunked.is_done() {
                        let step = chunked
                            .step(&input[at..])
                            .map_err(|e| Cut::Instance(e.to_string()))?;
                        match step {
                            Step::Data(k) => {
                                *sent += k as u64;
                                if dechunk {
                                    self.out.extend_from_slice(&input[at..at + k]);
                                }
                                at += k;
                            }
                            Step::Framing(k) | Step::Done(k) => at += k,
                        }
                    }
                    if !dechunk {
                        self.out.extend_from_slice(&input[..at]);
                    }
                    if chunked.is_done() {
                        left = 0;
                    }
                    at
                }
                _ => {
                    let k = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    self.out.extend_from_slice(&input[..k]);
                    *sent += k as u64;
                    if framing != Framing::UntilClose {
                        left -= k as u64;
                    }
                    k
                }
            };
            up.buf.consume(used);
            if !self.out.is_empty() {
                self.write_out().await?;
                self.out.clear();
            }
            if left == 0 {
                return Ok(());
            }
            let limit = self.head_limit();
            self.deadline
                .arm(Instant::now() + self.state.options.response_head_timeout);
            match within(&mut self.deadline, up.buf.read_from(&mut up.tcp, limit)).await {
                Ok(0) if framing == Framing::UntilClose => return Ok(()),
                Ok(0) => return Err(Cut::Instance("connection closed mid-body".to_owned())),
                Err(e) => return Err(Cut::Instance(e.to_string())),
                Ok(_) => {}
            }
        }
    }

    /// Joins client and instance after `101 Switching Protocols` until either side closes.
    async fn tunnel(&mut self, mut up: upstream::Conn, access: &mut Access) {
        self.out.extend_from_slice(up.buf.filled());
        let early = up.buf.len();
        up.buf.consume(early);
        if self.write_out().await.is_err() {
            return;
        }
        if !self.buf.is_empty() {
            if up.tcp.write_all(self.buf.filled()).await.is_err() {
                return;
            }
            let n = self.buf.len();
            self.buf.consume(n);
        }
        match tokio::io::copy_bidirectional(&mut self.io, &mut up.tcp).await {
            Ok((_up, down)) => access.bytes = down + early as u64,
            Err(e) => access.error = Some(format!("tunnel closed: {e}")),
        }
    }
}

/// `fut`, unless `deadline` passes first (a `TimedOut` error).
async fn within<T>(
    deadline: &mut Deadline,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::select! {
        biased;
        r = fut => r,
        () = deadline.passed() => Err(io::Error::new(io::ErrorKind::TimedOut, "no progress in time")),
    }
}

/// Whether `bytes` hold an empty line (`\n\n` or `\n\r\n`): the end a head needs.
fn head_may_end(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, b)| {
        *b == b'\n'
            && (bytes.get(i + 1) == Some(&b'\n')
                || (bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n')))
    })
}

impl BodyError {
    fn failure(&self) -> Failure {
        match self {
            BodyError::TooLarge => Failure::BodyTooLarge,
            BodyError::Framing(_) => Failure::BadRequest,
        }
    }
}

/// A connection with bytes already read from it put back in front.
pub(crate) struct Prefixed<IO> {
    prefix: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO> Prefixed<IO> {
    fn new(prefix: Vec<u8>, io: IO) -> Self {
        Self { prefix, at: 0, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut TokioReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
