//! Instance output, kept per environment in the store for up to [`MAX_AGE_MS`] and
//! [`MAX_BYTES`] (whichever comes first, oldest dropped), so it survives a restart of the
//! control plane and every control plane sharing the database serves the same lines.
//!
//! Agents resend after a restart; each line carries its offset in the instance's output on its
//! stream (stdout, stderr and the platform's lines are separate files, each counted from 0), and
//! lines at or below the highest offset kept for that instance and stream (kept in the store
//! too) are dropped as duplicates.
//!
//! Followers in this process are woken as lines arrive; lines another control plane stored are
//! found by reading the store every [`POLL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_store::{LogLimits, LogRead, Store, StoreResult, StoredLogLine};
use mesh_types::UnixMs;
use mesh_types::agent::{LogAck, LogLine};
use serde::Serialize;
use tokio::sync::broadcast;

pub const MAX_AGE_MS: UnixMs = 60 * 60 * 1000;
pub const MAX_BYTES: u64 = 500 * 1024 * 1024;
/// Lines a follower may fall behind before it is told it missed some (followers that read the
/// store only take the channel as a wake-up and miss nothing).
const FOLLOW_BUFFER: usize = 4096;
/// How often a follower reads the store for lines that reached another control plane: often
/// enough to feel live, rarely enough that idle followers cost the database nothing to speak of.
pub const POLL: Duration = Duration::from_secs(1);
/// Lines per read of the store: a long history streams in pages instead of one large answer.
pub const PAGE: u32 = 5000;

/// What a reader wants to see.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub stack: Option<String>,
    pub service: Option<String>,
    pub instance: Option<String>,
}

impl LogFilter {
    /// The store read of a page of this filter's lines from `since`, after id `after`.
    pub fn read(&self, since: UnixMs, after: i64) -> LogRead {
        LogRead {
            stack: self.stack.clone(),
            service: self.service.clone(),
            instance: self.instance.clone(),
            since,
            after,
            limit: PAGE,
        }
    }
}

/// A line as the logs endpoint sends it: the line and its id, a cursor a client passes back as
/// `after` to resume where it stopped.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub id: i64,
    #[serde(flatten)]
    pub line: &'a LogLine,
}

pub struct LogStore {
    store: Arc<dyn Store>,
    limits: LogLimits,
    /// New lines per environment, for followers in this process.
    followers: Mutex<HashMap<String, broadcast::Sender<LogLine>>>,
}

impl LogStore {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_limit(store, MAX_BYTES)
    }

    pub fn with_limit(store: Arc<dyn Store>, max_bytes: u64) -> Self {
        Self {
            store,
            limits: LogLimits {
                max_age_ms: MAX_AGE_MS,
                max_bytes,
            },
            followers: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps new lines (one store transaction), drops resent ones, and feeds followers.
    pub async fn ingest(&self, lines: Vec<LogLine>, now: UnixMs) -> StoreResult<LogAck> {
        let done = self.store.append_logs(lines, now, self.limits).await?;
        if !done.kept.is_empty() {
            let followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
            for l in done.kept {
                if let Some(tx) = followers.get(l.line.environment.as_str()) {
                    let _ = tx.send(l.line);
                }
            }
        }
        Ok(done.ack)
    }

    /// Every line at or after `since` that `filter` matches, oldest first.
    pub async fn query(
        &self,
        env: &str,
        since: UnixMs,
        filter: &LogFilter,
    ) -> StoreResult<Vec<LogLine>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.read(env, &filter.read(since, after)).await?;
            let full = page.len() >= PAGE as usize;
            if let Some(last) = page.last() {
                after = last.id;
            }
            out.extend(page.into_iter().map(|l| l.line));
            if !full {
                return Ok(out);
            }
        }
    }

    /// One page of stored lines.
    pub async fn read(&self, env: &str, read: &LogRead) -> StoreResult<Vec<StoredLogLine>> {
        self.store.read_logs(env, read).await
    }

    /// New lines of an environment as this control plane stores them.
    pub fn follow(&self, env: &str) -> broadcast::Receiver<LogLine> {
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        followers
            .entry(env.to_string())
            .or_insert_with(|| broadcast::channel(FOLLOW_BUFFER).0)
            .subscribe()
    }

    /// Forgets an environment's followers (it was deleted; the store drops its lines with it).
    pub fn forget(&self, env: &str) {
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(env);
    }
}

pub mod follow;

#[cfg(test)]
#[path = "logs/tests.rs"]
mod tests;
