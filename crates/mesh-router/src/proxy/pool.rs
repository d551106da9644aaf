//! Keep-alive HTTP/1.1 connections to instances, one pool per worker thread.
//!
//! A worker's requests and its instance connections run on the same single-threaded runtime, so
//! the pool's lock is never contended. A connection goes back to the pool when its response body
//! has been read to the end (see `ResponseBody`), and is taken most-recently-used first. A request
//! that a pooled connection could not even start (closed meanwhile) comes back untouched and is
//! sent on another connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpstreamBody;
use super::idle::IdleList;

/// Why a request got no response from an instance.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be made: nothing was sent.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect: timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The HTTP exchange failed after the connection was made.
    #[error(transparent)]
    Http(hyper::Error),
}

impl SendError {
    /// Nothing reached the instance, so another one may get the request.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::ConnectTimeout(_))
    }
}

/// Idle connections by instance address.
pub(crate) struct Pool {
    idle: IdleList<SendRequest<UpstreamBody>>,
    connect_timeout: Duration,
}

/// A connection lent to one request; `give_back` once the response body was read to the end,
/// or drop it (the connection closes) when it was not.
pub(crate) struct Lent {
    pool: Arc<Pool>,
    addr: SocketAddr,
    sender: SendRequest<UpstreamBody>,
}

impl Lent {
    pub(crate) fn give_back(self) {
        let pool = self.pool.clone();
        pool.put(self);
    }
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration, idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            idle: IdleList::new(idle_timeout, max_idle),
            connect_timeout,
        }
    }

    /// Sends `req` to `addr` on a pooled connection, or a new one. Returns the connection with
    /// the response so the caller can give it back when the body is done.
    pub(crate) async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lent), SendError> {
        while let Some(mut sender) = self.take(addr) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    return Ok((
                        resp,
                        Lent {
                            pool: self.clone(),
                            addr,
                            sender,
                        },
                    ));
                }
                Err(mut e) => match e.take_message() {
                    // Closed before the request started: try the next connection.
                    Some(back) => req = back,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect(addr).await?;
        match sender.send_request(req).await {
            Ok(resp) => Ok((
                resp,
                Lent {
                    pool: self.clone(),
                    addr,
                    sender,
                },
            )),
            Err(e) => Err(SendError::Http(e)),
        }
    }

    /// Takes back a connection whose response was read to the end.
    fn put(&self, lent: Lent) {
        if !lent.sender.is_closed() {
            self.idle.put(lent.addr, lent.sender);
        }
    }

    /// Closes connections idle for longer than the idle timeout, or closed by the instance.
    pub(crate) fn sweep(&self) {
        self.idle.sweep(|s| !s.is_closed());
    }

    fn take(&self, addr: SocketAddr) -> Option<SendRequest<UpstreamBody>> {
        self.idle.take(addr, |s, _| !s.is_closed())
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<UpstreamBody>, SendError> {
        let tcp = connect_tcp(addr, self.connect_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "instance connection closed");
            }
        });
        Ok(sender)
    }
}

/// A new TCP connection to an instance, without Nagle's delay.
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, SendError> {
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(SendError::Connect(e)),
        Err(_) => return Err(SendError::ConnectTimeout(timeout)),
    };
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}
