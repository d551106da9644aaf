//! A deployment's log: lines are buffered and appended to the store in chunks (every 250 ms or
//! 64 KiB), so a chatty build costs a few writes a second, and followers read it from the store.

use std::time::Duration;

use mesh_types::Version;
use tokio::sync::mpsc;

use crate::app::AppState;

const FLUSH_EVERY: Duration = Duration::from_millis(250);
const FLUSH_BYTES: usize = 64 * 1024;
/// Longest line kept; the rest is cut (a minified file printed by a build, say).
const MAX_LINE: usize = 4096;

/// Appends lines to a deployment's log; cheap to clone, lines arrive in order.
#[derive(Clone)]
pub struct DeployLog {
    tx: mpsc::UnboundedSender<String>,
}

/// The writer task of a [`DeployLog`]; awaiting it flushes what is left.
pub struct LogWriter {
    task: tokio::task::JoinHandle<()>,
}

impl DeployLog {
    pub fn start(
        state: AppState,
        env: String,
        stack: String,
        version: Version,
    ) -> (Self, LogWriter) {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            let mut buf = String::new();
            loop {
                let line = tokio::time::timeout(FLUSH_EVERY, rx.recv()).await;
                let closed = matches!(line, Ok(None));
                if let Ok(Some(mut line)) = line {
                    if line.len() > MAX_LINE {
                        let mut cut = MAX_LINE;
                        while !line.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        line.truncate(cut);
                        line.push_str(" [cut]");
                    }
                    buf.push_str(&line);
                    buf.push('\n');
                    if buf.len() < FLUSH_BYTES {
                        continue;
                    }
                }
                if !buf.is_empty() {
                    let chunk = std::mem::take(&mut buf);
                    if let Err(e) = state
                        .store()
                        .append_deployment_log(&env, &stack, version, &chunk)
                        .await
                    {
                        tracing::warn!(%env, %stack, %version, error = %e, "deployment log lost a chunk");
                    }
                }
                if closed {
                    return;
                }
            }
        });
        (Self { tx }, LogWriter { task })
    }

    pub fn line(&self, line: impl Into<String>) {
        let _ = self.tx.send(line.into());
    }

    /// A sender for a builder's output lines.
    pub fn sender(&self) -> mpsc::UnboundedSender<String> {
        self.tx.clone()
    }
}

impl LogWriter {
    /// Waits until every line sent before all [`DeployLog`] clones were dropped is stored.
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}
