//! Output of a build, line by line: stdout and stderr share one pipe, read on a blocking thread
//! and sent as they come. Each stream keeps its order; for a build container, runc copies the
//! two through pipes of its own, so their lines may interleave differently than written.

use std::io::{BufRead, BufReader, PipeReader, PipeWriter, Read};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::error::{IoContext, Result};

/// A longer line is sent in pieces of this many bytes, so a build printing megabytes without a
/// newline cannot grow the reader's memory.
pub(crate) const MAX_LINE: u64 = 16 * 1024;

/// How long the reader may go on after the process ended; something the build left behind that
/// still holds the pipe (it should not, the container's PID namespace is gone) is given up on.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// A pipe for a child's stdout and stderr: the writer twice, and the reader.
pub(crate) fn pipe() -> Result<(PipeReader, PipeWriter, PipeWriter)> {
    let (r, w) = std::io::pipe().context(|| "creating the output pipe".to_string())?;
    let w2 = w
        .try_clone()
        .context(|| "duplicating the output pipe".to_string())?;
    Ok((r, w, w2))
}

/// Sends every line read from `reader` (lossy UTF-8, without its line ending) until it ends.
pub(crate) fn pump(reader: PipeReader, lines: UnboundedSender<String>) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut r).take(MAX_LINE).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    // A closed receiver only means nobody listens; keep draining the pipe so
                    // the build never blocks on a full one.
                    let _ = lines.send(String::from_utf8_lossy(&buf).into_owned());
                }
            }
        }
    })
}

/// Waits for the pump to see the end of the output, at most [`DRAIN_WAIT`].
pub(crate) async fn drain(pump: JoinHandle<()>) {
    let _ = tokio::time::timeout(DRAIN_WAIT, pump).await;
}
