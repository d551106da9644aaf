//! What the router itself writes to the client: its own answers, error pages and refusals,
//! and the one place a fault becomes an answer and an access record.

use http::Response;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::fault::{Cut, Fault, Reply, Verdict};
use super::head::{self, Invalid};
use super::{Engine, date};
use crate::proxy::{Access, ResponseBody, pages};

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Ends an exchange that went wrong: answers as `fault` calls for, and writes its status,
    /// error and metrics into `access` (logged once the answer is out, when `access` drops).
    /// `reusable`: the client wants the connection kept and sent its whole request, so only the
    /// fault (or draining) can close it. Returns whether the connection stays open.
    pub(super) async fn conclude(
        &mut self,
        fault: Fault,
        mut access: Access,
        html: bool,
        reusable: bool,
    ) -> bool {
        let instance = access
            .route
            .as_deref()
            .zip(access.instance)
            .and_then(|(r, i)| r.upstream.instances.get(i))
            .map_or("-", |i| &*i.id);
        let mut verdict = Verdict::of(&fault, instance);
        verdict.record(&mut access, &self.state.metrics);
        match verdict.reply {
            Reply::Page(failure) => {
                let page = pages::error_page(failure, &access.request_id, html);
                let close = verdict.close || !reusable || self.draining();
                self.answer(page, close).await
            }
            Reply::Refuse(invalid) => {
                self.refuse(invalid, &access).await;
                false
            }
            Reply::Nothing => false,
        }
    }

    /// Answers a request the router cannot even read (or that stalled), and closes.
    async fn refuse(&mut self, invalid: Invalid, access: &Access) {
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
    pub(super) async fn write_out(&mut self) -> Result<(), Cut> {
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
    pub(super) async fn answer(&mut self, mut resp: Response<ResponseBody>, close: bool) -> bool {
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
}
