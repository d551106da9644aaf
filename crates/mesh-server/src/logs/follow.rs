//! The body of the logs endpoint: the stored lines a page at a time and, when following, new
//! lines as they are stored: woken at once by lines this control plane stores, and every
//! [`POLL`] reading the store for lines another control plane stored. The follower reads the
//! store after the last id it sent either way, so it neither repeats nor misses a line, however
//! far behind it falls.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use futures_util::stream;
use mesh_store::{StoreError, StoredLogLine};
use mesh_types::UnixMs;
use mesh_types::agent::LogLine;
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::{Entry, LogFilter, PAGE, POLL};
use crate::app::AppState;
use crate::ndjson;

/// Where a reader of one environment's lines is.
pub struct Reader {
    pub env: String,
    pub filter: LogFilter,
    /// Lines printed at or after this time (0: every line kept).
    pub since: UnixMs,
    /// Lines stored after this id (0: from the first).
    pub after: i64,
}

struct Tail {
    state: AppState,
    reader: Reader,
    /// Set when following: lines stored by this control plane, taken as a wake-up.
    wake: Option<broadcast::Receiver<LogLine>>,
    pending: VecDeque<StoredLogLine>,
    /// True once a read came back short: nothing more until new lines are stored.
    caught_up: bool,
}

/// The response body: NDJSON [`Entry`] lines, oldest first; with `follow` it ends only when the
/// client hangs up, the environment is deleted or the server shuts down.
pub fn body(state: AppState, reader: Reader, follow: bool) -> Body {
    // Subscribe before the first read, so no line falls between the two.
    let wake = follow.then(|| state.logs().follow(&reader.env));
    let tail = Tail {
        state,
        reader,
        wake,
        pending: VecDeque::new(),
        caught_up: false,
    };
    Body::from_stream(stream::unfold(tail, next))
}

async fn next(mut t: Tail) -> Option<(Result<Bytes, Infallible>, Tail)> {
    loop {
        if let Some(l) = t.pending.pop_front() {
            t.reader.after = l.id;
            let chunk = ndjson::line(&Entry {
                id: l.id,
                line: &l.line,
            });
            return Some((chunk, t));
        }
        if !t.caught_up {
            let r = &t.reader;
            match t
                .state
                .logs()
                .read(&r.env, &r.filter.read(r.since, r.after))
                .await
            {
                Ok(page) => {
                    t.caught_up = page.len() < PAGE as usize;
                    if !page.is_empty() {
                        // The cursor says where to go on from now; `since` only placed it.
                        t.reader.since = 0;
                    }
                    t.pending.extend(page);
                }
                // The environment was deleted.
                Err(StoreError::NotFound(_)) => return None,
                Err(e) => {
                    tracing::warn!(env = %t.reader.env, error = %e, "reading logs failed");
                    t.wake.as_ref()?;
                    // Following: try again at the next wake-up.
                    t.caught_up = true;
                }
            }
            continue;
        }
        let wake = t.wake.as_mut()?;
        tokio::select! {
            _ = t.state.shutting_down() => return None,
            r = wake.recv() => {
                if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                    // The environment was deleted.
                    return None;
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        // One read serves every wake-up queued meanwhile.
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = wake.try_recv() {}
        t.caught_up = false;
    }
}
