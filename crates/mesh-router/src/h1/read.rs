//! Reading a request head off the client connection (or spotting an HTTP/2 client).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::fault::Fault;
use super::head::{self, Invalid, Parsed, Request};
use super::{Engine, FIRST_REQUEST_GRACE, PREFACE};
use crate::proxy::{self, Access};

pub(super) enum ReadHead {
    Request(Request),
    Http2,
    Closed,
}

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads until a whole request head is here.
    pub(super) async fn read_request(&mut self, first: bool, sniff_h2: bool) -> ReadHead {
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
                    self.client.set_trusted(self.conn.trusted);
                    match head::parse_request(input, &self.client, &mut self.send) {
                        Ok(Parsed::Complete(r)) => {
                            // A router of the platform forwarding this host here now: its
                            // forwarding headers count (checked per request: that changes while
                            // a connection stays open). The head is read again, trusted.
                            let peer = self.conn.peer.ip();
                            let table = self.state.table.load();
                            let forwarded = !self.conn.trusted
                                && table.has_peer(peer)
                                && r.host
                                    .as_deref()
                                    .and_then(crate::table::normalize_host)
                                    .is_some_and(|h| table.trusts_peer(peer, &h));
                            if !forwarded {
                                return ReadHead::Request(r);
                            }
                            self.client.set_trusted(true);
                            match head::parse_request(input, &self.client, &mut self.send) {
                                Ok(Parsed::Complete(r)) => return ReadHead::Request(r),
                                Ok(Parsed::Partial) => {}
                                Err(invalid) => return self.refuse_head(invalid).await,
                            }
                        }
                        Ok(Parsed::Partial) => {}
                        Err(invalid) => return self.refuse_head(invalid).await,
                    }
                }
                if !maybe_h2 {
                    searched = self.buf.len();
                }
            }
            if !self.buf.has_room(limit) {
                return self
                    .refuse_head(Invalid {
                        status: 431,
                        why: "request head too large",
                    })
                    .await;
            }
            let idle = self.buf.is_empty();
            tokio::select! {
                biased;
                r = self.buf.read_from(&mut self.io, limit) => match r {
                    Ok(0) | Err(_) => return ReadHead::Closed,
                    Ok(_) => {}
                },
                () = self.deadline.passed() => {
                    if idle {
                        return ReadHead::Closed;
                    }
                    return self.refuse_head(Invalid { status: 408, why: "request head not received in time" }).await;
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

    /// Refuses a head the router cannot read, with an access record of its own, and closes.
    async fn refuse_head(&mut self, invalid: Invalid) -> ReadHead {
        let access = Access::new(proxy::headers::new_request_id(), None, None);
        self.conclude(Fault::Refused(invalid), access, false, false)
            .await;
        ReadHead::Closed
    }
}

/// Whether `bytes` hold an empty line (`\n\n` or `\n\r\n`): the end a head needs.
pub(super) fn head_may_end(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, b)| {
        *b == b'\n'
            && (bytes.get(i + 1) == Some(&b'\n')
                || (bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n')))
    })
}
