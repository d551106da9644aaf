//! Instance output, kept per environment in memory for up to [`MAX_AGE_MS`] and [`MAX_BYTES`]
//! (whichever comes first, oldest dropped), with followers fed as lines arrive.
//!
//! Agents resend after a restart; each line carries its offset in the instance's output on its
//! stream (stdout, stderr and the platform's lines are separate files, each counted from 0), and
//! lines at or below the highest offset kept for that instance and stream are dropped as
//! duplicates.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use mesh_types::UnixMs;
use mesh_types::agent::{LogAck, LogLine, LogStream};
use tokio::sync::broadcast;

pub const MAX_AGE_MS: UnixMs = 60 * 60 * 1000;
pub const MAX_BYTES: usize = 500 * 1024 * 1024;
/// Lines a follower may fall behind before it is told it missed some.
const FOLLOW_BUFFER: usize = 4096;
/// Per-line bookkeeping counted against the byte budget besides the text.
const LINE_OVERHEAD: usize = 96;

/// What a reader wants to see.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub stack: Option<String>,
    pub service: Option<String>,
    pub instance: Option<String>,
}

impl LogFilter {
    pub fn matches(&self, l: &LogLine) -> bool {
        self.stack.as_ref().is_none_or(|s| s == l.stack.as_str())
            && self
                .service
                .as_ref()
                .is_none_or(|s| s == l.service.as_str())
            && self.instance.as_ref().is_none_or(|i| i == &l.instance)
    }
}

struct EnvLogs {
    lines: VecDeque<LogLine>,
    bytes: usize,
    /// Highest offset kept per instance and stream.
    seen: HashMap<(String, LogStream), u64>,
    followers: broadcast::Sender<LogLine>,
}

impl EnvLogs {
    fn new() -> Self {
        Self {
            lines: VecDeque::new(),
            bytes: 0,
            seen: HashMap::new(),
            followers: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }

    fn trim(&mut self, now: UnixMs, max_bytes: usize) {
        while let Some(first) = self.lines.front() {
            if first.at >= now - MAX_AGE_MS && self.bytes <= max_bytes {
                break;
            }
            self.bytes -= size(first);
            self.lines.pop_front();
        }
        // Offsets of instances with nothing left are forgotten, unless still recent enough that
        // a resend could arrive.
        if self.seen.len() > 4 * 1024 {
            let live: std::collections::HashSet<&str> =
                self.lines.iter().map(|l| l.instance.as_str()).collect();
            self.seen.retain(|(k, _), _| live.contains(k.as_str()));
        }
    }
}

fn size(l: &LogLine) -> usize {
    l.text.len() + l.instance.len() + LINE_OVERHEAD
}

pub struct LogStore {
    envs: Mutex<HashMap<String, EnvLogs>>,
    max_bytes: usize,
}

impl Default for LogStore {
    fn default() -> Self {
        Self::with_limit(MAX_BYTES)
    }
}

impl LogStore {
    pub fn with_limit(max_bytes: usize) -> Self {
        Self {
            envs: Mutex::new(HashMap::new()),
            max_bytes,
        }
    }

    /// Keeps new lines, drops resent ones, and feeds followers.
    pub fn ingest(&self, lines: Vec<LogLine>, now: UnixMs) -> LogAck {
        let mut envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        let mut ack = LogAck {
            accepted: 0,
            duplicates: 0,
        };
        for line in lines {
            let env = envs
                .entry(line.environment.to_string())
                .or_insert_with(EnvLogs::new);
            let seen = env
                .seen
                .entry((line.instance.clone(), line.stream))
                .or_insert(0);
            if line.offset <= *seen {
                ack.duplicates += 1;
                continue;
            }
            *seen = line.offset;
            env.bytes += size(&line);
            let _ = env.followers.send(line.clone());
            env.lines.push_back(line);
            ack.accepted += 1;
        }
        for env in envs.values_mut() {
            env.trim(now, self.max_bytes);
        }
        ack
    }

    /// Lines at or after `since`, oldest first.
    pub fn query(&self, env: &str, since: UnixMs, filter: &LogFilter) -> Vec<LogLine> {
        let envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = envs.get(env) else {
            return Vec::new();
        };
        let start = e.lines.partition_point(|l| l.at < since);
        e.lines
            .range(start..)
            .filter(|l| filter.matches(l))
            .cloned()
            .collect()
    }

    /// New lines of an environment as they arrive.
    pub fn follow(&self, env: &str) -> broadcast::Receiver<LogLine> {
        let mut envs = self.envs.lock().unwrap_or_else(|e| e.into_inner());
        envs.entry(env.to_string())
            .or_insert_with(EnvLogs::new)
            .followers
            .subscribe()
    }

    /// Forgets an environment's logs (it was deleted).
    pub fn forget(&self, env: &str) {
        self.envs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(env);
    }
}

#[cfg(test)]
#[path = "logs/tests.rs"]
mod tests;
