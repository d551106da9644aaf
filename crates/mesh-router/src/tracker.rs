//! Tracks connection and tunnel tasks for graceful shutdown: tells them when to stop taking
//! requests and when to give up, and lets shutdown wait until all of them are gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

#[cfg(test)]
mod tests;

/// Where the router is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    /// Finish in-flight requests, take no new ones.
    Draining,
    /// The deadline passed: close everything now.
    Closing,
}

#[derive(Debug)]
struct Inner {
    live: AtomicUsize,
    idle: Notify,
    phase: watch::Sender<Phase>,
}

#[derive(Clone, Debug)]
pub(crate) struct Tracker(Arc<Inner>);

/// Held by one tracked task; dropping it marks the task gone.
#[derive(Debug)]
pub(crate) struct Token(Arc<Inner>);

impl Drop for Token {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Tracker {
    pub(crate) fn new() -> Self {
        let (phase, _) = watch::channel(Phase::Running);
        Tracker(Arc::new(Inner {
            live: AtomicUsize::new(0),
            idle: Notify::new(),
            phase,
        }))
    }

    pub(crate) fn token(&self) -> Token {
        self.0.live.fetch_add(1, Ordering::AcqRel);
        Token(self.0.clone())
    }

    pub(crate) fn live(&self) -> usize {
        self.0.live.load(Ordering::Acquire)
    }

    pub(crate) fn phase(&self) -> watch::Receiver<Phase> {
        self.0.phase.subscribe()
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.0.phase.send_replace(phase);
    }

    /// Resolves once no token is alive.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Resolves when `rx` reaches at least `phase` (or the tracker is gone).
pub(crate) async fn reached(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    let _ = rx.wait_for(|p| *p >= phase).await;
}
