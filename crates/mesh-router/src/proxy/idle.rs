//! Idle keep-alive connections by instance address, most recently used first: the part both
//! instance pools (hyper's client connections, the HTTP/1 engine's raw ones) share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Idle connections of type `C`.
pub(crate) struct IdleList<C> {
    idle: Mutex<HashMap<SocketAddr, Vec<(C, Instant)>>>,
    pub(crate) idle_timeout: Duration,
    max_idle: usize,
}

impl<C> IdleList<C> {
    pub(crate) fn new(idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            idle_timeout,
            max_idle,
        }
    }

    /// The most recently used connection to `addr` that `usable(conn, idle for)` accepts;
    /// those it refuses on the way are closed.
    pub(crate) fn take(
        &self,
        addr: SocketAddr,
        usable: impl Fn(&C, Duration) -> bool,
    ) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(&addr)?;
        while let Some((conn, since)) = list.pop() {
            let age = since.elapsed();
            if age < self.idle_timeout && usable(&conn, age) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `addr` (closes it when `max_idle` are kept).
    pub(crate) fn put(&self, addr: SocketAddr, conn: C) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(addr).or_default();
        if list.len() < self.max_idle {
            list.push((conn, Instant::now()));
        }
    }

    /// Closes connections idle past the timeout or refused by `open`.
    pub(crate) fn sweep(&self, open: impl Fn(&C) -> bool) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, list| {
            list.retain(|(conn, since)| now - *since < self.idle_timeout && open(conn));
            !list.is_empty()
        });
    }
}
