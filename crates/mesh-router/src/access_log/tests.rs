use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use super::*;

/// A sink that keeps what it is given and how many `write` calls gave it.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<(Vec<u8>, usize)>>);

impl Kept {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock").0).into_owned()
    }
    fn writes(&self) -> usize {
        self.0.lock().expect("lock").1
    }
}

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut k = self.0.lock().expect("lock");
        k.0.extend_from_slice(buf);
        k.1 += 1;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink whose every write waits until the gate opens (its sender dropped), saying first
/// that it started.
struct Gated {
    started: mpsc::Sender<()>,
    gate: mpsc::Receiver<()>,
    out: Kept,
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.started.send(());
        let _ = self.gate.recv();
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk full"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn lines_arrive_in_order() {
    let out = Kept::default();
    let dropped = Counter::default();
    let log = writer::spawn(Box::new(out.clone()), 64, dropped.clone()).expect("writer");
    let mut expected = String::new();
    for i in 0..1000 {
        let line = format!("line {i}\n");
        expected.push_str(&line);
        // Flushed every 32 lines, so the queue of 64 never fills: this test is about order.
        log.send(line);
        if i % 32 == 31 {
            assert!(log.flush(WAIT).await, "flushed");
        }
    }
    assert!(log.flush(WAIT).await, "flushed");
    assert_eq!(dropped.get(), 0);
    assert_eq!(out.text(), expected);
}

#[tokio::test]
async fn a_blocked_sink_never_blocks_senders_and_drops_are_counted() {
    let (started, wrote) = mpsc::channel();
    let (open, gate) = mpsc::channel::<()>();
    let out = Kept::default();
    let dropped = Counter::default();
    let sink = Gated {
        started,
        gate,
        out: out.clone(),
    };
    let log = writer::spawn(Box::new(sink), 4, dropped.clone()).expect("writer");

    log.send("first\n".to_owned());
    wrote.recv_timeout(WAIT).expect("the writer is writing");
    // The writer is stuck in `write`: 4 lines fit in the queue, the other 96 are dropped.
    let t = Instant::now();
    for i in 0..100 {
        log.send(format!("line {i}\n"));
    }
    assert!(t.elapsed() < Duration::from_secs(1), "sending waited");
    assert_eq!(dropped.get(), 96);
    // Shutdown's flush gives up on a stuck sink, within its bound.
    let t = Instant::now();
    assert!(!log.flush(Duration::from_millis(100)).await);
    assert!(t.elapsed() < WAIT);

    drop(open);
    assert!(log.flush(WAIT).await, "flushed once the sink moves");
    assert_eq!(out.text(), "first\nline 0\nline 1\nline 2\nline 3\n");
    // One write for the first line, one for the batch queued behind it.
    assert_eq!(out.writes(), 2);
}

#[tokio::test]
async fn lines_a_failing_sink_loses_are_counted() {
    let dropped = Counter::default();
    let log = writer::spawn(Box::new(Broken), 16, dropped.clone()).expect("writer");
    for i in 0..3 {
        log.send(format!("line {i}\n"));
    }
    assert!(log.flush(WAIT).await);
    assert_eq!(dropped.get(), 3);
}

fn record() -> Record<'static> {
    Record {
        request_id: "req-9",
        method: "GET",
        host: "shop.test",
        path: "/",
        endpoint: "shop.test",
        service: "shop/app/web",
        instance: "web-1",
        status: 200,
        bytes: 1,
        attempts: 1,
        duration_ms: 1.0,
        error: None,
    }
}

#[tokio::test]
async fn off_starts_nothing_and_formats_nothing() {
    let log = start(&AccessLog::Off, Counter::default()).expect("off");
    assert!(log.is_none());
    // A thread without a log (as every worker when the log is off) never calls the formatter.
    let called = std::thread::spawn(|| {
        set_thread_log(None);
        let mut called = false;
        with_thread_log(|_| called = true);
        called
    })
    .join()
    .expect("thread");
    assert!(!called);
}

#[tokio::test]
async fn a_thread_with_a_log_sends_its_records_there() {
    let out = Kept::default();
    let log = writer::spawn(Box::new(out.clone()), 16, Counter::default()).expect("writer");
    let theirs = log.clone();
    std::thread::spawn(move || {
        set_thread_log(Some(theirs));
        with_thread_log(|log| log.record(&record()));
    })
    .join()
    .expect("thread");
    assert!(log.flush(WAIT).await);
    let text = out.text();
    assert!(text.contains("request request_id=\"req-9\""), "{text}");
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 1);
}

#[tokio::test]
async fn a_file_is_appended_to_and_created_0640() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let log = start(&AccessLog::File(path.clone()), Counter::default())
        .expect("open")
        .expect("a log");
    log.record(&record());
    assert!(log.flush(WAIT).await);
    let mode = std::fs::metadata(&path).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    // A second router (a restart) appends after the first one's lines.
    let again = start(&AccessLog::File(path.clone()), Counter::default())
        .expect("open")
        .expect("a log");
    again.record(&record());
    assert!(again.flush(WAIT).await);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn a_file_that_cannot_be_opened_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing").join("access.log");
    let err =
        start(&AccessLog::File(path.clone()), Counter::default()).expect_err("no such directory");
    assert!(matches!(&err, RouterError::AccessLog { path: p, .. } if *p == path));
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("`off`"), "{message}");
}
