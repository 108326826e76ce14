//! Conservative parallel simulation: the nodes are split over partitions (node `i`
//! runs in partition `i % threads`), each with its own event queue and thread. Every
//! message takes at least the link latency, so within a time window no longer than
//! the latency (the lookahead) no partition can affect another: each runs its window
//! alone, then the events its nodes scheduled for other partitions' nodes are
//! exchanged at a barrier.
//!
//! The run does not depend on the number of threads: events of one instant run in
//! the order (node that scheduled them, how many it had scheduled before), which each
//! node decides on its own, so every node sees the same events in the same order
//! however the nodes are split; outcomes are reported in (time, node) order. That
//! order is not the sequential driver's (`Swarm::run`, events of one instant in the
//! order they were scheduled swarm-wide), so a run here differs from a `Swarm` run
//! of the same configuration, and equals itself at any thread count.

use crate::{Routed, SimError, Swarm, SwarmConfig};
use layerp2p_codec::synthetic::SyntheticSource;
use layerp2p_proto::swarm::SwarmReport;
use layerp2p_proto::time::Time;
use std::sync::{Barrier, Mutex, PoisonError};
use std::time::Duration;

/// Shortest lookahead (link latency) with more than one thread: shorter windows
/// would cost more in barriers than they save.
pub const MIN_LOOKAHEAD: Duration = Duration::from_millis(1);

/// Why a parallel swarm cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    #[error(
        "{threads} threads need a link latency of at least 1 ms (the lookahead of the time windows), not {latency:?}; \
         set --latency-ms 1 or more, or run on one thread"
    )]
    NoLookahead { threads: usize, latency: Duration },
    #[error("at least one thread is needed")]
    NoThreads,
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// A simulated run split over threads; the same configuration gives the same run at
/// any thread count.
pub struct ParallelSwarm {
    parts: Vec<Swarm>,
    /// Every event at or before this time has run (`None`: none has).
    done_through: Option<Time>,
}

impl std::fmt::Debug for ParallelSwarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelSwarm").field("threads", &self.parts.len()).field("now", &self.now()).finish()
    }
}

impl ParallelSwarm {
    /// `cfg` run on `threads` threads; more than one needs `cfg.latency >= MIN_LOOKAHEAD`.
    pub fn new(cfg: SwarmConfig, threads: usize) -> Result<ParallelSwarm, ParallelError> {
        if threads == 0 {
            return Err(ParallelError::NoThreads);
        }
        if threads > 1 && cfg.latency < MIN_LOOKAHEAD {
            return Err(ParallelError::NoLookahead { threads, latency: cfg.latency });
        }
        let parts = (0..threads)
            .map(|part| {
                let source = SyntheticSource::new(cfg.source.clone()).map_err(SimError::from)?;
                Ok(Swarm::partition(cfg.clone(), Box::new(source), part, threads)?)
            })
            .collect::<Result<Vec<_>, ParallelError>>()?;
        let mut swarm = ParallelSwarm { parts, done_through: None };
        // Construction scheduled events (first sends) for other partitions' nodes.
        swarm.exchange_all();
        Ok(swarm)
    }

    pub fn now(&self) -> Time {
        self.parts[0].now()
    }

    /// Nodes alive now (tracker and seed included).
    pub fn alive(&self) -> usize {
        self.parts.iter().map(Swarm::alive).sum()
    }

    /// LCs delivered so far.
    pub fn lc_deliveries(&self) -> u64 {
        self.parts.iter().map(|p| p.lc_deliveries).sum()
    }

    /// LCs lost at full capped downlinks so far.
    pub fn downlink_drops(&self) -> u64 {
        self.parts.iter().map(|p| p.downlink_drops).sum()
    }

    /// Runs events up to and including `until`.
    pub fn run_until(&mut self, until: Time) {
        if self.parts.len() == 1 {
            self.parts[0].run_until(until);
            self.done_through = Some(until);
            return;
        }
        let first = self.done_through.map_or(0, |t| t.0 + 1);
        if first > until.0 {
            return;
        }
        let step = (self.parts[0].cfg.latency.as_micros() as u64).max(1);
        let mailboxes: Vec<Mutex<Vec<Routed>>> = self.parts.iter().map(|_| Mutex::default()).collect();
        let barrier = Barrier::new(self.parts.len());
        std::thread::scope(|s| {
            for part in self.parts.iter_mut() {
                let (mailboxes, barrier) = (&mailboxes, &barrier);
                s.spawn(move || {
                    // Window [lo, hi]: an event run at or after `lo` schedules events
                    // for other partitions at `lo + latency` or later, after `hi`.
                    let mut lo = first;
                    while lo <= until.0 {
                        let hi = (lo + step - 1).min(until.0);
                        part.run_until(Time(hi));
                        part.post(mailboxes);
                        barrier.wait();
                        // A faster partition may already have posted its next window's
                        // events: taking them early is harmless (they are later).
                        part.collect(&mailboxes[part.part]);
                        lo = hi + 1;
                    }
                });
            }
        });
        self.done_through = Some(until);
    }

    /// Moves every outbox to its partition's queue (single-threaded).
    fn exchange_all(&mut self) {
        let mailboxes: Vec<Mutex<Vec<Routed>>> = self.parts.iter().map(|_| Mutex::default()).collect();
        for p in &mut self.parts {
            p.post(&mailboxes);
        }
        for p in &mut self.parts {
            p.collect(&mailboxes[p.part]);
        }
    }

    /// Records every viewer still present and builds the report.
    pub fn finish(mut self) -> SwarmReport {
        let lc_deliveries = self.lc_deliveries();
        let mut outcomes: Vec<_> = self.parts.iter_mut().flat_map(|p| p.finish_outcomes()).collect();
        outcomes.sort_by_key(|&(at, node, _)| (at, node));
        let p = &self.parts[0];
        SwarmReport::new(
            p.cfg.classes.clone(),
            p.plan.clone(),
            outcomes.into_iter().map(|(_, _, o)| o).collect(),
            lc_deliveries,
        )
    }
}

impl Swarm {
    /// Hands this partition's events for other partitions to their mailboxes.
    fn post(&mut self, mailboxes: &[Mutex<Vec<Routed>>]) {
        for (q, out) in self.outbox.iter_mut().enumerate() {
            if !out.is_empty() {
                mailboxes[q].lock().unwrap_or_else(PoisonError::into_inner).append(out);
            }
        }
    }

    /// Queues the events other partitions posted for this one's nodes.
    fn collect(&mut self, mailbox: &Mutex<Vec<Routed>>) {
        let events = std::mem::take(&mut *mailbox.lock().unwrap_or_else(PoisonError::into_inner));
        for (at, order, event) in events {
            self.queue.push_ordered(at, order, event);
        }
    }
}
