//! Keep-alive HTTP/1.1 connections to instances for the HTTP/1 engine, one pool per worker
//! thread, taken most-recently-used first. A connection carries its own read buffer, so bytes
//! of a response never outlive the exchange that read them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::buf::ReadBuf;
use crate::proxy::{IdleList, SendError, connect_tcp};

/// Read buffer of an instance connection (also the unit bodies are copied in).
const BUF_BYTES: usize = 32 * 1024;

/// One connection to an instance.
pub(crate) struct Conn {
    pub tcp: TcpStream,
    pub buf: ReadBuf,
}

/// Idle connections by instance address.
pub(crate) struct Pool {
    idle: IdleList<Conn>,
    connect_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration, idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            idle: IdleList::new(idle_timeout, max_idle),
            connect_timeout,
        }
    }

    /// An idle connection to `addr` that still looks open (nothing readable: neither the
    /// instance closing it nor stray bytes of an earlier answer).
    pub(crate) fn take(&self, addr: SocketAddr) -> Option<Conn> {
        self.idle.take(addr, |c, _| still_open(&c.tcp))
    }

    /// Takes back a connection whose exchange ended cleanly.
    pub(crate) fn put(&self, addr: SocketAddr, conn: Conn) {
        if conn.buf.is_empty() && still_open(&conn.tcp) {
            self.idle.put(addr, conn);
        }
    }

    /// A new connection to `addr`.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> Result<Conn, SendError> {
        let tcp = connect_tcp(addr, self.connect_timeout).await?;
        Ok(Conn {
            tcp,
            buf: ReadBuf::new(BUF_BYTES),
        })
    }

    /// Closes connections idle for longer than the idle timeout, or closed by the instance.
    pub(crate) fn sweep(&self) {
        self.idle.sweep(|c| still_open(&c.tcp));
    }
}

/// An idle connection has nothing to read: anything readable is the instance closing it (or
/// sending bytes nobody asked for). Costs no system call unless the socket became readable
/// (tokio forgets readiness once a read returned less than it asked for, as the last read of
/// every answer does).
fn still_open(tcp: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
