//! The router's listening sockets as plain std listeners, so they can be bound here, inherited
//! from another router (same process, or another one through `crate::handover`), and shared by
//! every worker thread.
//!
//! Every worker accepts on its own duplicate of the same socket: one accept queue per address,
//! so handing the sockets to a new router moves the queue with them and nothing queued is lost.

use std::io;
use std::net::{SocketAddr, TcpListener};

use crate::error::RouterError;

/// The listening sockets of one router: plain HTTP, and optionally HTTPS.
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub https: Option<TcpListener>,
}

impl Listeners {
    /// Binds both addresses (port 0 picks a free port).
    pub fn bind(http: SocketAddr, https: Option<SocketAddr>) -> Result<Listeners, RouterError> {
        let bind = |addr: SocketAddr| {
            TcpListener::bind(addr).map_err(|source| RouterError::Bind { addr, source })
        };
        Ok(Listeners {
            http: bind(http)?,
            https: https.map(bind).transpose()?,
        })
    }

    /// Other handles to the same sockets (and the same accept queues).
    pub fn try_clone(&self) -> io::Result<Listeners> {
        Ok(Listeners {
            http: self.http.try_clone()?,
            https: self
                .https
                .as_ref()
                .map(TcpListener::try_clone)
                .transpose()?,
        })
    }

    /// Puts every socket in non-blocking mode, as tokio needs.
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        self.http.set_nonblocking(true)?;
        if let Some(l) = &self.https {
            l.set_nonblocking(true)?;
        }
        Ok(())
    }
}
