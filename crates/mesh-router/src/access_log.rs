//! The access log: one line per request (`line`), handed by the request's thread to a writer
//! thread of its own (`writer`) so that writing never holds a request up.
//!
//! Each worker thread gets the router's `Sender` once (`set_thread_log`); an access record
//! finishing on that thread formats its line only when there is a log to send it to.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;

use crate::error::RouterError;
use crate::options::AccessLog;

mod line;
#[cfg(test)]
mod tests;
mod writer;

pub(crate) use line::{Record, write_line};
pub(crate) use writer::Sender;

/// Room reserved for one line: most fit, so formatting one allocates once.
const LINE_BYTES: usize = 320;

/// Mode of an access log file the router creates: the owner writes, its group reads (log
/// shippers), others nothing (lines name clients' hosts and paths).
const FILE_MODE: u32 = 0o640;

thread_local! {
    static LOG: RefCell<Option<Sender>> = const { RefCell::new(None) };
}

/// Starts the writer for `setting`: `None` for `Off`. A file that cannot be opened is an error
/// now, not a silent loss later.
pub(crate) fn start(setting: &AccessLog, dropped: Counter) -> Result<Option<Sender>, RouterError> {
    let sink: Box<dyn Write + Send> = match setting {
        AccessLog::Off => return Ok(None),
        AccessLog::Stderr => Box::new(std::io::stderr()),
        AccessLog::File(path) => Box::new(
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(FILE_MODE)
                .open(path)
                .map_err(|source| RouterError::AccessLog {
                    path: path.clone(),
                    source,
                })?,
        ),
    };
    writer::spawn(sink, writer::QUEUE_LINES, dropped)
        .map(Some)
        .map_err(RouterError::Worker)
}

/// Makes this thread's access records go to `log` (`None`: nowhere). Worker threads call it
/// once when they start.
pub(crate) fn set_thread_log(log: Option<Sender>) {
    LOG.with(|l| *l.borrow_mut() = log);
}

/// Runs `f` with this thread's log, if it has one (with none, nothing is formatted).
pub(crate) fn with_thread_log(f: impl FnOnce(&Sender)) {
    // `try_with`: a record dropped while the thread's locals are torn down is not logged.
    let _ = LOG.try_with(|l| {
        if let Some(log) = l.borrow().as_ref() {
            f(log);
        }
    });
}

impl Sender {
    /// Formats `record` (stamped now) and queues its line.
    pub(crate) fn record(&self, record: &Record<'_>) {
        let mut line = String::with_capacity(LINE_BYTES);
        write_line(&mut line, SystemTime::now(), record);
        self.send(line);
    }
}
