//! After the response head: relay the body (length, chunked, or until close) and pool the
//! instance connection if it can serve again, or join both sides after `101`.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::chunked::{Chunked, Step};
use super::deadline::within;
use super::exchange::Asked;
use super::fault::{Cut, Fault, InstanceError};
use super::head::{self, Framing};
use super::send::Sent;
use super::{Engine, upstream};
use crate::proxy::Access;

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Sends the response whose head is in `out`; returns whether the connection stays open.
    /// `body_done`: the client sent its whole request body (else the instance connection,
    /// which stopped reading it, is not reused).
    pub(super) async fn finish(
        &mut self,
        mut up: Sent,
        resp: head::Response,
        asked: &Asked,
        access: &mut Access,
        body_done: bool,
    ) -> Result<bool, Fault> {
        access.status = resp.status;
        if resp.status == 101 {
            if !asked.upgrade {
                return Err(Fault::Instance(InstanceError::UnaskedSwitch));
            }
            self.tunnel(up.conn, access).await;
            return Ok(false);
        }
        let relayed = self
            .relay(&mut up.conn, resp.body, resp.dechunk, &mut access.bytes)
            .await;
        relayed.map_err(Fault::Relay)?;
        if resp.reusable && body_done {
            self.state.h1_pool.put(up.addr, up.conn);
        }
        Ok(!resp.close)
    }

    /// Sends the response head in `out` and the body after it, counting body bytes in `sent`.
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
