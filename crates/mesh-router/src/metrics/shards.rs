//! Route counters and latency histograms sharded by worker thread: each worker records into its
//! own cache-line-aligned shard, so recording never contends; a scrape adds the shards up.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// At most this many shards; workers beyond it share.
pub(crate) const MAX: usize = 64;

/// Upper bounds of the latency buckets, seconds: 1 ms .. ~65 s, then +Inf.
const BOUNDS: [f64; 17] = {
    let mut b = [0.0; 17];
    let mut i = 0;
    let mut v = 0.001;
    while i < 17 {
        b[i] = v;
        v *= 2.0;
        i += 1;
    }
    b
};

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes this thread record into shard `index` (modulo the shard count). Worker threads call it
/// once; other threads use shard 0.
pub(crate) fn set_thread_shard(index: usize) {
    SHARD.with(|s| s.set(index));
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    classes: [AtomicU64; 5],
    /// One more than `BOUNDS`: the last is +Inf.
    buckets: [AtomicU64; 18],
    count: AtomicU64,
    nanos: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Shards(Box<[Shard]>);

/// The shards added up, as the encoder wants them.
pub(crate) struct Sum {
    pub classes: [u64; 5],
    /// (upper bound, count in this bucket alone); the last bound is `f64::MAX` (+Inf).
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub seconds: f64,
}

impl Shards {
    pub(crate) fn new(n: usize) -> Self {
        Shards((0..n.max(1)).map(|_| Shard::default()).collect())
    }

    pub(crate) fn record(&self, class: usize, elapsed: Duration) {
        let shard = &self.0[SHARD.with(Cell::get) % self.0.len()];
        let secs = elapsed.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        shard.classes[class].fetch_add(1, Ordering::Relaxed);
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        shard.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> Sum {
        let mut sum = Sum {
            classes: [0; 5],
            buckets: BOUNDS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .map(|b| (b, 0))
                .collect(),
            count: 0,
            seconds: 0.0,
        };
        let mut nanos: u128 = 0;
        for shard in self.0.iter() {
            for (total, c) in sum.classes.iter_mut().zip(&shard.classes) {
                *total += c.load(Ordering::Relaxed);
            }
            for ((_, total), c) in sum.buckets.iter_mut().zip(&shard.buckets) {
                *total += c.load(Ordering::Relaxed);
            }
            sum.count += shard.count.load(Ordering::Relaxed);
            nanos += u128::from(shard.nanos.load(Ordering::Relaxed));
        }
        sum.seconds = nanos as f64 / 1e9;
        sum
    }
}
