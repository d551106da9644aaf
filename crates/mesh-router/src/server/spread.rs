//! Spreads accepted connections over the workers: whichever worker accepts a connection hands it
//! to the worker serving the fewest connections (itself on a tie).
//!
//! Every worker accepts on the same socket, and a burst of connections (a load generator
//! starting, clients reconnecting after a restart) would otherwise land on the first worker to
//! wake, leaving the others idle. A handoff costs one cross-thread message per connection, never
//! per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::tracker::Token;

/// An accepted connection on its way to another worker.
pub(crate) struct Handoff {
    pub tcp: std::net::TcpStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    pub token: Token,
    pub load: Load,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Count(AtomicUsize);

/// Connections per worker, and each worker's inbox.
pub(crate) struct Spread {
    counts: Box<[Count]>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// One connection counted against a worker until dropped.
pub(crate) struct Load {
    spread: Arc<Spread>,
    worker: usize,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.spread.counts[self.worker]
            .0
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Spread {
    pub(crate) fn new(workers: usize) -> (Arc<Spread>, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (inboxes, receivers) = (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let spread = Spread {
            counts: (0..workers).map(|_| Count::default()).collect(),
            inboxes,
        };
        (Arc::new(spread), receivers)
    }

    /// Picks the worker for a connection `me` accepted, and counts it there at once (so a
    /// burst of accepts spreads before any of them is served).
    pub(crate) fn pick(self: &Arc<Self>, me: usize) -> Load {
        let load = |i: usize| self.counts[i].0.load(Ordering::Relaxed);
        let mut best = me;
        for i in 0..self.counts.len() {
            if load(i) < load(best) {
                best = i;
            }
        }
        self.counts[best].0.fetch_add(1, Ordering::Relaxed);
        Load {
            spread: self.clone(),
            worker: best,
        }
    }

    /// Sends a connection to the worker its load is counted against; gives it back if that
    /// worker is gone.
    pub(crate) fn send(&self, handoff: Handoff) -> Result<(), Handoff> {
        self.inboxes[handoff.load.worker]
            .send(handoff)
            .map_err(|e| e.0)
    }
}

impl Load {
    pub(crate) fn worker(&self) -> usize {
        self.worker
    }
}
