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
//!
//! Files, one concern each: `read` (request heads), `exchange` (one request's steps), `send`
//! (pick an instance, send head and body; `tried` remembers the instances tried), `response`
//! (the response head), `relay` (the response body, tunnels), `fault` (every way a step stops,
//! and what each gets), `reply` (the router's own answers; `Engine::conclude` is the one place
//! a fault becomes an answer and an access record), `deadline` (the connection's one timer);
//! bytes: `head`, `body`, `chunked`, `buf`, `date`; instance connections: `upstream`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::proxy::{ConnInfo, ProxyState};
use crate::tracker::{self, Phase};

mod body;
mod buf;
pub(crate) mod chunked;
mod date;
mod deadline;
mod exchange;
mod fault;
pub(crate) mod head;
mod prefixed;
mod read;
mod relay;
mod reply;
mod response;
mod send;
mod tried;
mod upstream;

#[cfg(test)]
mod tests;

use buf::ReadBuf;
use deadline::Deadline;
use head::Client;
pub(crate) use prefixed::Prefixed;
use read::ReadHead;
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

/// One client connection's state across its requests: buffers, timers, and what the
/// current request asked for that the router's own answers depend on.
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
}
