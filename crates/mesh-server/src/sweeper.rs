//! The lost-server sweeper: a small periodic task that marks lost the servers whose heartbeats
//! stopped (`domain::servers::sweep`), so the store, the instances' states and the log say so
//! even when nobody lists the servers, and agents' watch streams recompute (cron moves). Several control planes may run it on one database.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::domain::servers;

/// The sweeper's floor: often enough for short thresholds in tests, rare enough to cost nothing.
const MIN_EVERY: Duration = Duration::from_millis(250);
/// Its ceiling: a lost server shows within this much of its threshold even with long ones.
const MAX_EVERY: Duration = Duration::from_secs(10);

/// How often to sweep for a threshold of `lost_after`: a third of it, within bounds.
fn every(lost_after: Duration) -> Duration {
    (lost_after / 3).clamp(MIN_EVERY, MAX_EVERY)
}

pub(crate) fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let lost_after = Duration::from_millis(state.server_lost_after().max(0) as u64);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(every(lost_after)) => {}
            }
            match servers::sweep(state.store(), state.liveness()).await {
                // Work that runs once (cron) moves off a lost server's rack: agents' watch
                // streams recompute now rather than at their next poll.
                Ok(marked) if !marked.is_empty() => state.notify_change(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check servers' heartbeats; trying again")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_a_third_of_the_threshold_within_bounds() {
        assert_eq!(every(Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(every(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(every(Duration::from_millis(100)), MIN_EVERY);
        assert_eq!(every(Duration::from_secs(3600)), MAX_EVERY);
    }
}
