//! `table.exec.state.ttl` for state kept per key (groups, Top-N partitions): a key not
//! touched for the TTL (processing time) is forgotten, as Flink's idle state retention does.
//! A later row for it starts afresh. Keys are swept at most every quarter of the TTL.

use std::time::{Duration, Instant};

pub struct StateTtl {
    ttl: Duration,
    last_sweep: Instant,
}

impl StateTtl {
    /// None when `ttl` is unset or zero (keep state for as long as the query runs).
    pub fn new(ttl: Option<Duration>) -> Option<StateTtl> {
        ttl.filter(|t| !t.is_zero()).map(|ttl| StateTtl {
            ttl,
            last_sweep: Instant::now(),
        })
    }

    /// True when a sweep is due now; then `expired` tells which keys to drop.
    pub fn sweep_due(&mut self) -> bool {
        if self.last_sweep.elapsed() < self.ttl / 4 {
            return false;
        }
        self.last_sweep = Instant::now();
        true
    }

    pub fn expired(&self, last_touched: Instant) -> bool {
        last_touched.elapsed() >= self.ttl
    }
}
