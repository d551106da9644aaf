//! Worker threads: each runs its own single-threaded tokio runtime with its own accept loops
//! (on duplicates of the shared listening sockets) and its own pool of instance connections.
//!
//! A connection, the requests on it and the instance connections they use all live on one
//! thread, so the request path takes no cross-thread wake-up and no contended lock; what the
//! workers share (route table, in-flight counters, metrics) is read through arc-swap and atomics.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::conn::{self, Builder, Ctx};
use super::listeners::Listeners;
use super::spread::{Handoff, Spread};
use crate::access_log;
use crate::error::RouterError;
use crate::proxy::{ProxyState, Shared};
use crate::tracker::{self, Phase};

/// How long a worker waits, once the router closes, for its tasks to notice.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What one worker needs; its listeners are its own duplicates of the router's sockets.
pub(crate) struct Worker {
    pub listeners: Listeners,
    pub shared: Arc<Shared>,
    pub builder: Arc<Builder>,
    pub tls: Option<TlsAcceptor>,
    /// Held by the worker's accept loops: the router knows they stopped when all are dropped.
    pub accepting: mpsc::Sender<()>,
    pub spread: Arc<Spread>,
    /// Connections other workers accepted for this one.
    pub inbox: mpsc::UnboundedReceiver<Handoff>,
    /// Where this worker's access records go (`None`: the access log is off).
    pub access_log: Option<access_log::Sender>,
}

impl Worker {
    /// Starts the worker's thread. Log events go to the subscriber current at this call.
    pub(crate) fn spawn(self, index: usize) -> Result<(), RouterError> {
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name(format!("mesh-router-{index}"))
            .spawn(move || {
                let _log = tracing::dispatcher::set_default(&dispatch);
                crate::metrics::set_thread_shard(index);
                access_log::set_thread_log(self.access_log.clone());
                self.run(index);
            })
            .map(drop)
            .map_err(RouterError::Worker)
    }

    fn run(self, index: usize) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "router worker: no runtime");
                return;
            }
        };
        runtime.block_on(async move {
            let state = Arc::new(ProxyState::new(self.shared));
            let tracker = state.tracker.clone();
            let mut phase = tracker.phase();
            tokio::spawn(state.clone().sweep_pool());
            let ctx = Arc::new(Ctx {
                state,
                builder: self.builder,
                tls: self.tls,
                index,
                spread: self.spread,
            });
            tokio::spawn(conn::inbox_loop(ctx.clone(), self.inbox));
            let mut sockets = vec![(self.listeners.http, false)];
            if let Some(https) = self.listeners.https {
                sockets.push((https, true));
            }
            for (socket, https) in sockets {
                match TcpListener::from_std(socket) {
                    Ok(listener) => {
                        tokio::spawn(conn::accept_loop(
                            listener,
                            ctx.clone(),
                            https,
                            self.accepting.clone(),
                        ));
                    }
                    Err(e) => tracing::error!(error = %e, "router worker: listener unusable"),
                }
            }
            drop(self.accepting);
            drop(ctx);
            tracker::reached(&mut phase, Phase::Closing).await;
            let _ = tokio::time::timeout(CLOSE_GRACE, tracker.idle()).await;
        });
    }
}
