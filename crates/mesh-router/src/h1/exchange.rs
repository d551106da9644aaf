//! One request from head to end, as steps that each return a `Fault` when they stop it:
//! route → admit the body → connect and send the head (send.rs) → stream the body (send.rs)
//! → read the answer's head (response.rs) → relay its body, or tunnel (relay.rs). A fault
//! from any step is answered in one place, `Engine::conclude` (reply.rs).

use http::Method;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Engine;
use super::body::RequestBody;
use super::fault::Fault;
use super::head::{Framing, Request};
use crate::forwarding;
use crate::proxy::{self, Access, Decision};
use crate::table::normalize_host;

/// What the client's request asks of its exchange, beyond the head bytes going out.
pub(super) struct Asked {
    pub framing: Framing,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// The client asks to switch protocols.
    pub upgrade: bool,
    pub expect_continue: bool,
    /// Sent again on a new connection only if repeating it is harmless (RFC 9110 9.2.2).
    pub idempotent: bool,
    /// The client prefers HTML error pages.
    pub html: bool,
}

/// Whether repeating a request with `method` is harmless (RFC 9110 9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

impl<IO> Engine<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Serves one request; returns whether the connection stays open for another.
    pub(super) async fn exchange(&mut self, req: Request) -> bool {
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
            forwarded_https,
        } = req;
        self.buf.consume(head_len);
        self.head_request = method == Method::HEAD;
        self.minor = minor;
        let asked = Asked {
            framing,
            keep_alive,
            upgrade,
            expect_continue,
            idempotent: idempotent(&method),
            html,
        };
        let mut access = Access::new(request_id, Some(method), Some(path));
        let mut body = RequestBody::new(framing, self.state.options.max_request_body_bytes);
        let https = self.conn.https || forwarded_https;
        match self
            .forward(&asked, host, https, &mut access, &mut body)
            .await
        {
            Ok(keep_open) => keep_open,
            Err(fault) => {
                // An unread request body leaves the connection unusable for the next request.
                let reusable = asked.keep_alive && body.done();
                self.conclude(fault, access, asked.html, reusable).await
            }
        }
    }

    /// The steps of one exchange; `Ok`: it ended as it should, and whether the connection
    /// stays open.
    async fn forward(
        &mut self,
        asked: &Asked,
        host: Option<String>,
        https: bool,
        access: &mut Access,
        body: &mut RequestBody,
    ) -> Result<bool, Fault> {
        let route = match self.route(host, https, access)? {
            Decision::Route(route) => route,
            Decision::NoRoute => return Err(Fault::NoRoute),
            Decision::Answer(resp) => {
                access.unmatched = Some(self.state.metrics.unmatched());
                access.status = resp.status().as_u16();
                let close = !(asked.keep_alive && body.done()) || self.draining();
                return Ok(self.answer(resp, close).await);
            }
        };
        access.route = Some(route.clone());
        self.admit(asked, body).await?;
        let resendable = body.done();
        let mut up = self.connect(&route.upstream, access, resendable).await?;
        self.stream_body(&mut up, body).await?;
        let resp = self
            .response_head(&mut up, asked, &access.request_id, resendable, body.done())
            .await?;
        self.finish(up, resp, asked, access, body.done()).await
    }

    /// Where the request goes: the host it names, checked against the TLS connection's;
    /// `https`: it came over HTTPS, to this router or to a trusted peer in front of it.
    fn route(
        &self,
        host: Option<String>,
        https: bool,
        access: &mut Access,
    ) -> Result<Decision, Fault> {
        let host = host
            .as_deref()
            .and_then(normalize_host)
            .ok_or(Fault::NoHost)?;
        access.host = host;
        if forwarding::misdirected(self.conn.https, self.conn.sni.as_deref(), &access.host) {
            return Err(Fault::Misdirected);
        }
        Ok(match &access.path {
            Some(pq) => proxy::decide(&self.state, https, &access.host, pq, &access.request_id),
            None => Decision::NoRoute,
        })
    }

    /// Takes the request body on: its declared size, `100 Continue` if asked, and what of it
    /// is already here, which goes out with the head.
    async fn admit(&mut self, asked: &Asked, body: &mut RequestBody) -> Result<(), Fault> {
        let limit = self.state.options.max_request_body_bytes;
        if matches!(asked.framing, Framing::Length(n) if n > limit) {
            return Err(Fault::BodyTooLarge);
        }
        if asked.expect_continue
            && !asked.framing.is_empty()
            && self.buf.is_empty()
            && self.minor == 1
        {
            self.out.clear();
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.write_out().await.map_err(|_| Fault::InterimUnsent)?;
        }
        let n = body.take(self.buf.filled()).map_err(Fault::Body)?;
        self.send.extend_from_slice(&self.buf.filled()[..n]);
        self.buf.consume(n);
        Ok(())
    }
}
