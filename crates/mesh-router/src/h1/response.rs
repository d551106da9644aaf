//! Waiting for the instance's response head: interim answers pass (or not), a pooled
//! connection the instance closed as the request went out gets the request again, a client
//! that leaves stops the wait.

use std::io;

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::Engine;
use super::exchange::Asked;
use super::fault::{Fault, InstanceError};
use super::head::{self, Exchange, Parsed};
use super::send::Sent;

/// What woke the wait for a response head.
enum Wake {
    Instance(io::Result<usize>),
    Deadline,
    Client(io::Result<usize>),
}

/// An interim answer (1xx) other than `101 Switching Protocols`, which is final.
fn interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads the final response head, written for the client into `out`. `resendable`: the
    /// whole request went out with its head; `body_done`: the client sent its whole body.
    pub(super) async fn response_head(
        &mut self,
        up: &mut Sent,
        asked: &Asked,
        request_id: &HeaderValue,
        resendable: bool,
        body_done: bool,
    ) -> Result<head::Response, Fault> {
        let head_limit = self.head_limit();
        let client_close = !asked.keep_alive || !body_done;
        self.deadline
            .arm(Instant::now() + self.state.options.response_head_timeout);
        let mut retried = false;
        // Whether the instance sent anything at all (then the request is never sent again).
        let mut answered = false;
        loop {
            if !up.conn.buf.is_empty() {
                let x = Exchange {
                    head_request: self.head_request,
                    client_minor: self.minor,
                    close: client_close || self.draining(),
                    request_id,
                };
                match head::parse_response(up.conn.buf.filled(), &x, &mut self.out) {
                    Ok(Parsed::Complete(r)) if interim(r.status) => {
                        up.conn.buf.consume(r.head_len);
                        // 100 Continue was the router's to send; other interim answers pass.
                        if r.status != 100 && self.minor == 1 {
                            self.write_out().await.map_err(|_| Fault::InterimUnsent)?;
                        }
                        continue;
                    }
                    Ok(Parsed::Complete(r)) => {
                        up.conn.buf.consume(r.head_len);
                        return Ok(r);
                    }
                    Ok(Parsed::Partial) => {}
                    Err(invalid) => {
                        return Err(Fault::Instance(InstanceError::BadHead(invalid.why)));
                    }
                }
            }
            if !up.conn.buf.has_room(head_limit) {
                return Err(Fault::Instance(InstanceError::HeadTooLarge));
            }
            let watch_client = self.buf.has_room(head_limit);
            let wake = tokio::select! {
                biased;
                r = up.conn.buf.read_from(&mut up.conn.tcp, head_limit) => Wake::Instance(r),
                () = self.deadline.passed() => Wake::Deadline,
                // A client that leaves stops the exchange (logged as 499).
                r = self.buf.read_from(&mut self.io, head_limit), if watch_client => Wake::Client(r),
            };
            match wake {
                Wake::Instance(Ok(0) | Err(_))
                    if up.reused && resendable && asked.idempotent && !retried && !answered =>
                {
                    // A pooled connection the instance closed as the request went out.
                    retried = true;
                    self.resend(up).await.map_err(Fault::Instance)?;
                }
                Wake::Instance(Ok(0)) => return Err(Fault::Instance(InstanceError::ClosedEarly)),
                Wake::Instance(Err(e)) => return Err(Fault::Instance(InstanceError::Io(e))),
                Wake::Instance(Ok(_)) => answered = true,
                Wake::Deadline => return Err(Fault::HeadTimeout),
                Wake::Client(Ok(0) | Err(_)) => return Err(Fault::ClientLeft),
                Wake::Client(Ok(_)) => {}
            }
        }
    }
}
