//! The request's way to an instance: pick one (connect failures go to the next), send the
//! head and the body start, then stream the rest of the body as the client sends it.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::body::RequestBody;
use super::deadline::within;
use super::fault::{Fault, InstanceError, instance_error};
use super::tried::Tried;
use super::{Engine, upstream};
use crate::proxy::{Access, ProxyState};
use crate::table::Upstream;

/// An instance connection with the request head (and the body start) sent on it.
pub(super) struct Sent {
    pub conn: upstream::Conn,
    pub addr: SocketAddr,
    /// Taken from the pool: the instance may have closed it before the request reached it.
    pub reused: bool,
}

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Picks an instance and sends it the head in `send`; `resendable`: `send` holds the whole
    /// request, so a pooled connection found closed can be replaced and the request sent again.
    pub(super) async fn connect(
        &mut self,
        upstream: &Upstream,
        access: &mut Access,
        resendable: bool,
    ) -> Result<Sent, Fault> {
        let mut up = pick(&self.state, upstream, access).await?;
        self.deadline
            .arm(Instant::now() + self.state.options.response_head_timeout);
        let sent = within(&mut self.deadline, up.conn.tcp.write_all(&self.send)).await;
        match sent {
            Ok(()) => Ok(up),
            // The pooled connection was closed meanwhile (the request could not have been
            // read whole): a new one gets it.
            Err(_) if up.reused && resendable => {
                self.resend(&mut up).await.map_err(Fault::Instance)?;
                Ok(up)
            }
            Err(e) => Err(Fault::Instance(InstanceError::Io(e))),
        }
    }

    /// Sends the request again on a new connection to the same instance (within the deadline
    /// already armed).
    pub(super) async fn resend(&mut self, up: &mut Sent) -> Result<(), InstanceError> {
        up.conn = self
            .state
            .h1_pool
            .connect(up.addr)
            .await
            .map_err(InstanceError::Connect)?;
        up.reused = false;
        within(&mut self.deadline, up.conn.tcp.write_all(&self.send))
            .await
            .map_err(InstanceError::Io)
    }

    /// Streams the rest of the request body to the instance as it arrives. An instance that
    /// stops reading ends it early without a fault: it may have answered already.
    pub(super) async fn stream_body(
        &mut self,
        up: &mut Sent,
        body: &mut RequestBody,
    ) -> Result<(), Fault> {
        let head_limit = self.head_limit();
        // Every write to an instance must progress within this.
        let instance_timeout = self.state.options.response_head_timeout;
        while !body.done() {
            if self.buf.is_empty() {
                self.deadline
                    .arm(Instant::now() + self.state.options.client_timeout);
                tokio::select! {
                    biased;
                    r = self.buf.read_from(&mut self.io, head_limit) => match r {
                        Ok(0) | Err(_) => return Err(Fault::ClientLeft),
                        Ok(_) => {}
                    },
                    () = self.deadline.passed() => return Err(Fault::BodyTimeout),
                }
            }
            let n = body.take(self.buf.filled()).map_err(Fault::Body)?;
            self.deadline.arm(Instant::now() + instance_timeout);
            let wrote = within(
                &mut self.deadline,
                up.conn.tcp.write_all(&self.buf.filled()[..n]),
            )
            .await;
            self.buf.consume(n);
            if wrote.is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// An instance not tried yet, with a pooled or new connection to it. The access record
/// counts each attempt, holds the instance's in-flight count, and keeps the last connect
/// failure (the error of a 502 once no instance is left), cleared once an instance takes it.
async fn pick(state: &ProxyState, upstream: &Upstream, access: &mut Access) -> Result<Sent, Fault> {
    let mut tried = Tried::new();
    loop {
        let Some(idx) = tried.pick(upstream) else {
            return Err(Fault::NoInstance {
                tried_any: !tried.is_empty(),
            });
        };
        access.attempts += 1;
        let instance = &upstream.instances[idx];
        access.instance = Some(idx);
        access.in_flight = Some(instance.in_flight.start());
        let addr = instance.addr;
        if let Some(conn) = state.h1_pool.take(addr) {
            access.error = None; // an earlier instance's refusal is not this request's error
            return Ok(Sent {
                conn,
                addr,
                reused: true,
            });
        }
        let last_chance = tried.last_chance(
            access.attempts,
            state.options.max_attempts,
            upstream.instances.len(),
        );
        match state.h1_pool.connect(addr).await {
            Ok(conn) => {
                access.error = None;
                return Ok(Sent {
                    conn,
                    addr,
                    reused: false,
                });
            }
            Err(e) if last_chance => return Err(Fault::Instance(InstanceError::Connect(e))),
            Err(e) => {
                access.error = Some(instance_error(&instance.id, &e));
                tracing::debug!(instance = %instance.id, error = %e, "connect failed, retrying");
            }
        }
    }
}
