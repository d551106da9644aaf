use std::time::{SystemTime, UNIX_EPOCH};

use mesh_types::UnixMs;

/// Time, behind a trait so tests can hold it still.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> UnixMs;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
