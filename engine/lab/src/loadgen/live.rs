//! Counters the load generator's threads share with the reporting thread: plain
//! relaxed atomics, bumped on the data path and read once a second. Nothing else
//! crosses threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shard counters: one `Live` per run, shared by every shard and the target.
#[derive(Debug, Default)]
pub struct Live {
    pub peers_up: AtomicU64,
    /// Sum over peers of their neighbour count, refreshed by each shard every second
    /// (one slot per shard, summed by the reader).
    pub neighbours: Vec<AtomicU64>,
    /// Peers that have the target as a neighbour, per shard like `neighbours`.
    pub on_target: Vec<AtomicU64>,
    /// Data messages (LCs) received by synthetic peers, from anyone.
    pub lcs_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// LCs and their wire bytes received from the target: what the target achieved.
    pub target_lcs: AtomicU64,
    pub target_bytes: AtomicU64,
    /// Worst lateness of a timer in the last second, microseconds (saturation).
    pub timer_lag_us: AtomicU64,
}

impl Live {
    pub fn new(shards: usize) -> Live {
        let slots = || (0..shards).map(|_| AtomicU64::new(0)).collect();
        Live { neighbours: slots(), on_target: slots(), ..Live::default() }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn neighbours(&self) -> u64 {
        self.neighbours.iter().map(Live::get).sum()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            peers_up: Live::get(&self.peers_up),
            neighbours: self.neighbours(),
            on_target: self.on_target.iter().map(Live::get).sum(),
            lcs_in: Live::get(&self.lcs_in),
            bytes_in: Live::get(&self.bytes_in),
            target_lcs: Live::get(&self.target_lcs),
            target_bytes: Live::get(&self.target_bytes),
            timer_lag_us: self.timer_lag_us.swap(0, Ordering::Relaxed),
        }
    }
}

/// The counters at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub peers_up: u64,
    pub neighbours: u64,
    pub on_target: u64,
    pub lcs_in: u64,
    pub bytes_in: u64,
    pub target_lcs: u64,
    pub target_bytes: u64,
    pub timer_lag_us: u64,
}
