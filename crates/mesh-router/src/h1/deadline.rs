//! One timer per client connection for every timeout it arms (head, body, instance, client).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A deadline kept on one timer that is only moved earlier, never later: the timer fires at
/// or before the deadline and is re-armed then if the deadline moved on. Arming it for every
/// request costs a clock read instead of a timer-wheel update.
pub(super) struct Deadline {
    pub(super) sleep: Pin<Box<Sleep>>,
    at: Instant,
    /// The shortest timeout the connection arms: a timer re-armed no later than this from now
    /// is never ahead of the next deadline, so arming does not move it.
    shortest: Duration,
}

impl Deadline {
    pub(super) fn new(shortest: Duration) -> Self {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Self {
            sleep: Box::pin(tokio::time::sleep_until(far)),
            at: far,
            shortest,
        }
    }

    pub(super) fn arm(&mut self, at: Instant) {
        self.at = at;
        if self.sleep.deadline() > at {
            self.sleep.as_mut().reset(at);
        }
    }

    pub(super) fn arm_sooner(&mut self, at: Instant) {
        if at < self.at {
            self.arm(at);
        }
    }

    pub(super) async fn passed(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let now = Instant::now();
            if now >= self.at {
                return;
            }
            let next = self.at.min(now + self.shortest);
            self.sleep.as_mut().reset(next);
        }
    }
}

/// `fut`, unless `deadline` passes first (a `TimedOut` error).
pub(super) async fn within<T>(
    deadline: &mut Deadline,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::select! {
        biased;
        r = fut => r,
        () = deadline.passed() => Err(io::Error::new(io::ErrorKind::TimedOut, "no progress in time")),
    }
}
