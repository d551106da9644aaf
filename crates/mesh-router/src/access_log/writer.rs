//! The access log's own thread: request threads hand it finished lines through a bounded queue
//! without waiting (a full queue drops the line and counts it), and it writes them in batches,
//! one `write` per batch, so a slow reader of the log slows this thread and nothing else.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Lines queued between the request threads and the writer. About 2 MiB of lines of ~250
/// bytes, and a quarter of a second of requests at 30k req/s: enough to ride out a reader
/// that pauses briefly, small enough that a stuck one costs little memory before lines drop.
pub(crate) const QUEUE_LINES: usize = 8192;

/// A batch is written once it holds this much (or the queue is empty): large enough that a
/// busy router makes few `write` calls, small enough to stay one pipe-sized burst apart from
/// other writers of stderr for long.
const BATCH_BYTES: usize = 64 * 1024;

/// After a batch that emptied the queue, the writer waits this long before taking more: lines
/// gather meanwhile, so one write carries many, and a request thread rarely finds the writer
/// asleep (waking it is a system call on the request's thread). Lines reach the sink this much
/// later at most.
const GATHER: Duration = Duration::from_millis(5);

/// Pause between attempts to queue the flush marker behind a full queue.
const FLUSH_RETRY: Duration = Duration::from_millis(5);

enum Msg {
    Line(String),
    /// Answered once every line queued before it is written (or failed).
    Flush(oneshot::Sender<()>),
}

/// The request side: cloned into every worker thread.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    tx: SyncSender<Msg>,
    dropped: Counter,
}

impl Sender {
    /// Queues `line` if there is room; otherwise drops it and counts it. Never waits.
    pub(crate) fn send(&self, line: String) {
        if self.tx.try_send(Msg::Line(line)).is_err() {
            self.dropped.inc();
        }
    }

    /// Waits until every line queued so far is written (or given up on, if the sink failed),
    /// at most until `within` passes. False if it did not get there (a sink that blocks, or a
    /// writer gone).
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (done, written) = oneshot::channel();
        let mut marker = Msg::Flush(done);
        loop {
            match self.tx.try_send(marker) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    marker = m;
                    tokio::time::sleep(FLUSH_RETRY).await;
                }
                Err(_) => return false,
            }
        }
        matches!(tokio::time::timeout_at(deadline, written).await, Ok(Ok(())))
    }
}

/// Starts the writer thread on `sink` with room for `capacity` queued lines; lines dropped
/// (queue full, or the sink failed) are added to `dropped`. The thread ends when every
/// `Sender` is gone.
pub(crate) fn spawn(
    sink: Box<dyn Write + Send>,
    capacity: usize,
    dropped: Counter,
) -> io::Result<Sender> {
    let (tx, rx) = mpsc::sync_channel(capacity);
    let counter = dropped.clone();
    std::thread::Builder::new()
        .name("mesh-router-access-log".to_owned())
        .spawn(move || run(&rx, sink, &counter))?;
    Ok(Sender { tx, dropped })
}

fn run(rx: &Receiver<Msg>, mut sink: Box<dyn Write + Send>, dropped: &Counter) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut flushes = Vec::new();
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut lines = 0u64;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line) => {
                    batch.extend_from_slice(line.as_bytes());
                    lines += 1;
                }
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH_BYTES {
                // Empty or disconnected: write what there is.
                next = rx.try_recv().ok();
            }
        }
        // Cut short by size: more is waiting, write it without a pause.
        let more = batch.len() >= BATCH_BYTES;
        if !batch.is_empty() {
            match sink.write_all(&batch).and_then(|()| sink.flush()) {
                Ok(()) => failing = false,
                Err(e) => {
                    dropped.inc_by(lines);
                    if !failing {
                        tracing::warn!(error = %e, "access log: lines lost, the log cannot be written");
                    }
                    failing = true;
                }
            }
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        if !more {
            std::thread::sleep(GATHER);
        }
    }
}
