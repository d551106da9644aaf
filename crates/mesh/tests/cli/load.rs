//! A client sending one request at a time until stopped, for the tests that move traffic under
//! load (rack migration, server replacement): what it saw, answered and failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every load loop stops by then, whatever happens.
pub const LOAD_LIMIT: Duration = Duration::from_secs(600);

/// What one client saw: requests answered (counted by body), and every other outcome.
#[derive(Default, Debug)]
pub struct Seen {
    pub ok: u64,
    pub from: BTreeMap<String, u64>,
    pub failures: Vec<String>,
}

/// A client calling `probe` every 20 ms until stopped, or until `probe` says there is nothing
/// to ask (`None`); `Some(Ok(body))` is an answered request, `Some(Err(why))` a failed one.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Seen>,
}

impl Load {
    pub fn start(
        mut probe: impl FnMut() -> Option<Result<String, String>> + Send + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let until = stop.clone();
        let task = std::thread::spawn(move || {
            let started = Instant::now();
            let mut seen = Seen::default();
            while !until.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                match probe() {
                    None => break,
                    Some(Ok(body)) => {
                        seen.ok += 1;
                        *seen.from.entry(body).or_default() += 1;
                    }
                    Some(Err(why)) => seen
                        .failures
                        .push(format!("{:.1}s: {why}", started.elapsed().as_secs_f64())),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        Load { stop, task }
    }

    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.task.join().unwrap()
    }
}
