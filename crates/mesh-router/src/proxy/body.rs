//! Bodies that stream through the router without buffering.
//!
//! `UpstreamBody` carries the client's request body to an instance. It leaves the body in a
//! shared slot until the first poll, so when connecting to an instance fails (nothing was sent)
//! the router takes the body back and retries on another instance. It also enforces the size
//! limit while streaming. `ResponseBody` carries the answer back and finishes the access record
//! (log line, metrics, in-flight count) when the last byte passes or the client goes away.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::access::Access;
use super::pool::Lent;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body grew past the configured limit.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {0} bytes")]
pub(crate) struct BodyTooLarge(pub u64);

/// Holds a request body until an attempt starts reading it.
pub(crate) struct BodySlot {
    body: Mutex<Option<Incoming>>,
    hint: SizeHint,
    end: bool,
    limit: u64,
    exceeded: AtomicBool,
}

impl BodySlot {
    pub(crate) fn new(body: Incoming, limit: u64) -> Arc<Self> {
        Arc::new(Self {
            hint: body.size_hint(),
            end: body.is_end_stream(),
            body: Mutex::new(Some(body)),
            limit,
            exceeded: AtomicBool::new(false),
        })
    }

    /// A body for one attempt; the body stays in the slot until that attempt polls it.
    pub(crate) fn attempt(self: &Arc<Self>) -> UpstreamBody {
        UpstreamBody {
            slot: self.clone(),
            inner: None,
            seen: 0,
        }
    }

    /// Whether no attempt has read the body yet (so a new attempt sends it whole).
    pub(crate) fn untouched(&self) -> bool {
        self.end
            || self
                .body
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    /// Whether the body was cut off for exceeding the limit.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }
}

/// The request body as one attempt sends it.
pub(crate) struct UpstreamBody {
    slot: Arc<BodySlot>,
    inner: Option<Incoming>,
    seen: u64,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.inner.is_none() {
            if this.slot.end {
                return Poll::Ready(None);
            }
            let taken = this
                .slot
                .body
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            match taken {
                Some(b) => this.inner = Some(b),
                // Another attempt took it: this one must not send a partial body.
                None => return Poll::Ready(Some(Err("request body already consumed".into()))),
            }
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.slot.limit {
                        this.slot.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(this.slot.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(b) => b.is_end_stream(),
            None => self.slot.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => self.slot.hint,
        }
    }
}

enum Kind {
    Full(Option<Bytes>),
    /// An instance's response body, and its connection to give back once the body ended.
    Stream(Incoming, Option<Lent>),
}

/// What the router sends back to the client.
pub(crate) struct ResponseBody {
    kind: Kind,
    sent: u64,
    access: Option<Access>,
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>, access: Option<Access>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            sent: 0,
            access,
        }
    }

    pub(crate) fn empty(access: Option<Access>) -> Self {
        Self::full(Bytes::new(), access)
    }

    pub(crate) fn stream(body: Incoming, access: Access, conn: Lent) -> Self {
        Self {
            kind: Kind::Stream(body, Some(conn)),
            sent: 0,
            access: Some(access),
        }
    }

    /// The whole body of one of the router's own answers (empty for a streamed body).
    pub(crate) fn take_full(&mut self) -> Bytes {
        match &mut self.kind {
            Kind::Full(b) => b.take().unwrap_or_default(),
            Kind::Stream(..) => Bytes::new(),
        }
    }

    /// Attaches the access record, finished with the body.
    pub(crate) fn with_access(mut self, access: Access) -> Self {
        self.access = Some(access);
        self
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut access) = self.access.take() {
            access.bytes = self.sent;
            if error.is_some() {
                access.error = error;
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Kind::Stream(body, conn) => {
                let polled =
                    ready!(Pin::new(&mut *body).poll_frame(cx)).map(|r| r.map_err(BoxError::from));
                // hyper may stop polling once `is_end_stream` holds, so give the connection back
                // as soon as the body is complete, not only at its final `None`.
                if (polled.is_none() || body.is_end_stream())
                    && let Some(conn) = conn.take()
                {
                    conn.give_back();
                }
                polled
            }
        };
        match polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.finish(Some(format!("response body from instance failed: {e}")));
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.finish(None);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(b, _) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(b, _) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The client went away (or hyper dropped a finished body): record what was sent.
        let unfinished = matches!(&self.kind, Kind::Stream(b, _) if !b.is_end_stream())
            || matches!(&self.kind, Kind::Full(Some(_)));
        if let Kind::Stream(b, conn) = &mut self.kind
            && b.is_end_stream()
            && let Some(conn) = conn.take()
        {
            conn.give_back();
        }
        let error = (unfinished && self.access.is_some()).then(|| "client went away".to_owned());
        self.finish(error);
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("sent", &self.sent)
            .finish()
    }
}
