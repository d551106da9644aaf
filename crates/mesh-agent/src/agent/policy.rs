//! When the runner looks again: after a reconcile (sooner while an instance is starting, since a
//! rollout waits on its first health check), and after the watch stream failed (backing off).
//! Pure, so the timing is pinned by tests.

use std::time::Duration;

use mesh_types::UnixMs;

use crate::supervise::Record;

/// The reconcile interval while an instance is starting.
pub const STARTING_TICK: Duration = Duration::from_millis(100);
/// How long after its start an unhealthy instance keeps the reconcile interval short.
pub const STARTING_WINDOW_MS: i64 = 30_000;
/// The first reconnect to the control plane waits this long, each next one twice as long.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between reconnects: an agent cut off should notice the control plane back
/// soon.
pub const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// How long the runner waits for a change before reconciling again: `tick`, or
/// [`STARTING_TICK`] if shorter while a long-running instance started in the last
/// [`STARTING_WINDOW_MS`] and is neither healthy nor ended. A failed reconcile waits the same:
/// it is level-triggered, so the next pass simply tries again.
pub fn requeue_after<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    now: UnixMs,
    tick: Duration,
) -> Duration {
    let starting = records.into_iter().any(|r| {
        !r.run
            && !r.healthy
            && r.restart_at.is_none()
            && r.started_at.is_some_and(|s| now - s < STARTING_WINDOW_MS)
    });
    if starting {
        tick.min(STARTING_TICK)
    } else {
        tick
    }
}

/// The wait before the next reconnect, after one that waited `last` (`None`: the first).
pub fn reconnect_after(last: Option<Duration>) -> Duration {
    match last {
        None => RECONNECT_FIRST,
        Some(d) => (d * 2).min(RECONNECT_MAX),
    }
}

#[cfg(test)]
mod tests;
