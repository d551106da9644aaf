//! Restarting the router without losing a connection: the new router process takes over the
//! old one's listening sockets (their file descriptors, over a unix socket, with SCM_RIGHTS),
//! the way `haproxy -x` and nginx's binary upgrade do.
//!
//! The sockets are never closed, so connections waiting in their accept queues are accepted by
//! whichever router calls `accept` next; while both run, both accept; once the new one serves,
//! the old one shuts down gracefully and finishes what it accepted. Binding a second socket
//! with `SO_REUSEPORT` instead would lose the connections queued on the old socket when it
//! closes (the kernel resets them).
//!
//! ```no_run
//! # async fn run(path: &std::path::Path, config: mesh_router::RouterConfig)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_router::{Router, RouterOptions, handover};
//! // The new process: take over from the router serving `path`, if there is one.
//! let (router, taken) = match handover::take(path).await {
//!     Ok((listeners, taken)) => {
//!         // The config applies before the first accept: no request meets an empty table.
//!         let (router, _report) =
//!             Router::take_over(listeners, RouterOptions::default(), config)?;
//!         (router, Some(taken))
//!     }
//!     Err(_) => {
//!         let router = Router::bind("0.0.0.0:80".parse()?, Some("0.0.0.0:443".parse()?)).await?;
//!         router.update(config)?;
//!         (router, None)
//!     }
//! };
//! if let Some(taken) = taken {
//!     taken.serving().await?; // the old router now shuts down
//! }
//! // Serve, and hand over to the next one when it asks:
//! handover::offer(path, &router).await?;
//! router.shutdown(std::time::Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};

use crate::server::{Listeners, Router};

/// The message carrying the descriptors: a tag, how many are the router's (1: HTTP, 2: +
/// HTTPS), and how many other listening sockets of the process follow them.
const TAG: &[u8; 4] = b"WMRL";
/// Most descriptors one handover carries.
const MAX_FDS: usize = 8;
/// The new router's answer once it serves.
const SERVING: u8 = b'S';

/// Sends the sockets (HTTP, then HTTPS if any) over a connected unix socket.
pub async fn send_listeners(stream: &UnixStream, listeners: &Listeners) -> io::Result<()> {
    send_sockets(stream, listeners, &[]).await
}

/// Sends the router's sockets, then `extra` listening sockets of the process (such as an API
/// port that restarts with the router), over a connected unix socket.
pub async fn send_sockets(
    stream: &UnixStream,
    listeners: &Listeners,
    extra: &[TcpListener],
) -> io::Result<()> {
    let mut fds = vec![listeners.http.as_fd()];
    if let Some(https) = &listeners.https {
        fds.push(https.as_fd());
    }
    let router = fds.len() as u8;
    fds.extend(extra.iter().map(AsFd::as_fd));
    if fds.len() > MAX_FDS {
        return Err(io::Error::other("too many sockets to hand over"));
    }
    let payload = [
        TAG[0],
        TAG[1],
        TAG[2],
        TAG[3],
        router,
        (fds.len() as u8) - router,
    ];
    stream
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(io::Error::other("descriptor message too large"));
            }
            let sent = rustix::net::sendmsg(
                stream,
                &[IoSlice::new(&payload)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?;
            if sent != payload.len() {
                return Err(io::Error::other("short handover message"));
            }
            Ok(())
        })
        .await
}

/// Receives the router's sockets `send_listeners` sent (other sockets sent along are closed).
pub async fn receive_listeners(stream: &UnixStream) -> io::Result<Listeners> {
    receive_sockets(stream)
        .await
        .map(|(listeners, _)| listeners)
}

/// Receives what `send_sockets` sent: the router's sockets and the other listening sockets.
pub async fn receive_sockets(stream: &UnixStream) -> io::Result<(Listeners, Vec<TcpListener>)> {
    let mut payload = [0u8; 6];
    let (len, flags, mut fds) = stream
        .async_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut payload)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let mut fds: Vec<OwnedFd> = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = message {
                    fds.extend(rights);
                }
            }
            Ok((got.bytes, got.flags, fds))
        })
        .await?;
    if flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other("handover: descriptors truncated"));
    }
    let (router, extra) = (usize::from(payload[4]), usize::from(payload[5]));
    if len != payload.len()
        || &payload[..4] != TAG
        || !(1..=2).contains(&router)
        || router + extra != fds.len()
    {
        return Err(io::Error::other("handover: not a router handover message"));
    }
    let extra: Vec<TcpListener> = fds
        .split_off(router)
        .into_iter()
        .map(TcpListener::from)
        .collect();
    let https = (fds.len() == 2).then(|| fds.pop()).flatten();
    let http = fds
        .pop()
        .ok_or_else(|| io::Error::other("handover: no listener received"))?;
    Ok((
        Listeners {
            http: TcpListener::from(http),
            https: https.map(TcpListener::from),
        },
        extra,
    ))
}

/// The old router's side: waits at `path` for the next router, gives it this router's
/// sockets, and returns once it says it serves. Then shut this router down.
/// A stale socket file at `path` is replaced.
pub async fn offer(path: &Path, router: &Router) -> io::Result<()> {
    offer_with(path, router, &[]).await
}

/// `offer`, handing `extra` listening sockets of the process over along with the router's.
pub async fn offer_with(path: &Path, router: &Router, extra: &[TcpListener]) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    // The file is removed at the end only while it is still this listener's: the successor
    // binds its own offer at the same path before it says it serves, and that one must stay.
    let own = std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
    let result = async {
        loop {
            let (mut stream, _) = listener.accept().await?;
            send_sockets(&stream, &router.listeners()?, extra).await?;
            let mut answer = [0u8; 1];
            // A new router that failed before serving hangs up: keep serving and wait again.
            match stream.read_exact(&mut answer).await {
                Ok(_) if answer[0] == SERVING => return Ok(()),
                Ok(_) | Err(_) => continue,
            }
        }
    }
    .await;
    if own.is_some() && std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok() == own {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The new router's promise to tell the old one when it serves.
#[derive(Debug)]
pub struct Taken(UnixStream);

impl Taken {
    /// Tells the old router this one serves (call it after `Router::take_over`): the old
    /// router's `offer` returns and it shuts down.
    pub async fn serving(mut self) -> io::Result<()> {
        self.0.write_all(&[SERVING]).await?;
        self.0.flush().await
    }
}

/// The new router's side: takes the sockets of the router offering them at `path`.
pub async fn take(path: &Path) -> io::Result<(Listeners, Taken)> {
    take_with(path)
        .await
        .map(|(listeners, _, taken)| (listeners, taken))
}

/// `take`, with the other listening sockets the old process handed over (`offer_with`).
pub async fn take_with(path: &Path) -> io::Result<(Listeners, Vec<TcpListener>, Taken)> {
    let stream = UnixStream::connect(path).await?;
    let (listeners, extra) = receive_sockets(&stream).await?;
    Ok((listeners, extra, Taken(stream)))
}
