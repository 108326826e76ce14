//! The supplier-side scheduler (DESIGN.md §5): one FIFO request queue per receiver; when
//! upload capacity is free, pick a receiver with probability proportional to
//! `I(n,k) * (d(n,k) + eps)` (tit-for-tat) or in turn (round robin), and serve the
//! head of its queue. Requests older than their ttl are dropped silently.

use crate::policy::SupplierPolicy;
use crate::sampler::Sampler;
use crate::time::Time;
use layerp2p_codec::{LayerId, LcId, Seq};
use rand::Rng;
use std::collections::VecDeque;

/// A receiver's emptied queue keeps at most this many slots of capacity: a start-up
/// burst (a whole window requested at once) must not pin its peak for the session.
const KEPT_QUEUE_CAPACITY: usize = 32;

/// Requests of one receiver that arrived together: they share an arrival time and a
/// deadline, which are stored once per run rather than once per LC.
#[derive(Copy, Clone, Debug)]
struct Batch {
    len: u32,
    /// When the requests arrived (for the request-to-send latency).
    arrived: Time,
    expires: Time,
}

/// A queued request's LC in 5 bytes, not an `LcId`'s 8 (its padding): the queues
/// hold hundreds of requests per viewer in an overloaded swarm.
#[derive(Copy, Clone, Debug)]
struct QueuedId {
    layer: u8,
    seq: [u8; 4],
}

impl From<LcId> for QueuedId {
    fn from(id: LcId) -> QueuedId {
        QueuedId { layer: id.layer.index() as u8, seq: id.seq.0.to_le_bytes() }
    }
}

impl From<QueuedId> for LcId {
    fn from(q: QueuedId) -> LcId {
        LcId { layer: LayerId::from_index(usize::from(q.layer)), seq: Seq(u32::from_le_bytes(q.seq)) }
    }
}

/// One receiver's FIFO of requests: 5 bytes per LC plus one [`Batch`] per request
/// message, the time fields shared by the batch: in a busy swarm these queues are a
/// viewer's largest table.
#[derive(Debug, Default)]
struct Queue {
    ids: VecDeque<QueuedId>,
    batches: VecDeque<Batch>,
}

impl Queue {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Appends requests that arrived together, until the queue holds `limit`; true if
    /// they all fit. Their arrival and deadline are recorded once, in one batch.
    fn extend(&mut self, ids: impl IntoIterator<Item = LcId>, arrived: Time, expires: Time, limit: usize) -> bool {
        let before = self.ids.len();
        let mut fit = true;
        for id in ids {
            if self.ids.len() >= limit {
                fit = false;
                break;
            }
            grow_by_a_quarter(&mut self.ids);
            self.ids.push_back(id.into());
        }
        let added = (self.ids.len() - before) as u32;
        match self.batches.back_mut() {
            _ if added == 0 => {}
            Some(b) if b.arrived == arrived && b.expires == expires => b.len += added,
            _ => self.batches.push_back(Batch { len: added, arrived, expires }),
        }
        fit
    }

    /// Drops the requests at the head whose deadline passed before `now`; how many.
    /// A receiver's batches arrive one per round with nearly the same ttl, so the
    /// expired ones lead; one that expired behind a live batch goes when popped.
    fn drop_expired(&mut self, now: Time) -> usize {
        let mut dropped = 0;
        while let Some(b) = self.batches.front().filter(|b| b.expires < now) {
            let n = b.len as usize;
            self.ids.drain(..n);
            self.batches.pop_front();
            dropped += n;
        }
        dropped
    }

    /// The first request: its LC, arrival time and deadline.
    fn pop_front(&mut self) -> Option<(LcId, Time, Time)> {
        let id = self.ids.pop_front()?.into();
        let b = self.batches.front_mut()?;
        let (arrived, expires) = (b.arrived, b.expires);
        b.len -= 1;
        if b.len == 0 {
            self.batches.pop_front();
        }
        Some((id, arrived, expires))
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.batches.clear();
    }

    /// Gives storage back once the queue holds less than a sixteenth of it (down to
    /// twice what it holds, and never below [`KEPT_QUEUE_CAPACITY`]): a start-up burst
    /// must not pin its peak for the session, also in a queue that never empties.
    fn trim(&mut self) {
        shrink_unused(&mut self.ids);
        shrink_unused(&mut self.batches);
    }

    fn capacity(&self) -> usize {
        self.ids.capacity()
    }
}

/// Makes room for one more element, growing storage by a quarter rather than
/// doubling: a queue stays near its peak, so doubling left up to half of it unused.
fn grow_by_a_quarter<T>(q: &mut VecDeque<T>) {
    if q.len() == q.capacity() {
        q.reserve_exact((q.capacity() / 4).max(KEPT_QUEUE_CAPACITY / 4));
    }
}

/// Shrinks `q` to twice its length (at least [`KEPT_QUEUE_CAPACITY`]) once it uses
/// less than a sixteenth of its capacity. The wide margin is hysteresis: a queue
/// that swings by a round's requests each round keeps its storage, instead of
/// shrinking when served down and growing again at the next request message (that
/// realloc churn was ~4 % of a simulation's instructions).
fn shrink_unused<T>(q: &mut VecDeque<T>) {
    let keep = (2 * q.len()).max(KEPT_QUEUE_CAPACITY);
    if q.capacity() > 8 * keep {
        q.shrink_to(keep);
    }
}

/// The supplier scheduler: per-receiver request queues, indexed by neighbour slot, and the policy that picks which
/// receiver to serve next.
#[derive(Debug)]
pub struct Supplier {
    policy: SupplierPolicy,
    queues: Vec<Queue>,
    /// d(n,k) + eps per slot, whatever the queue state.
    weights: Vec<u64>,
    /// Holds `weights[k]` for non-empty queues and 0 for empty ones.
    sampler: Sampler,
    rr_next: usize,
    max_queue: usize,
    queued: usize,
    /// Requests dropped because their ttl ran out before they were served (running total).
    pub expired: u64,
    /// Request batches that found the receiver's queue full (running total; one per batch).
    pub overflowed: u64,
}

impl Supplier {
    /// An empty scheduler; `max_queue` bounds each receiver's queue.
    pub fn new(policy: SupplierPolicy, max_queue: usize) -> Supplier {
        Supplier {
            policy,
            queues: Vec::new(),
            weights: Vec::new(),
            sampler: Sampler::new(0),
            rr_next: 0,
            max_queue,
            queued: 0,
            expired: 0,
            overflowed: 0,
        }
    }

    fn ensure(&mut self, slot: usize) {
        if slot >= self.queues.len() {
            self.queues.resize_with(slot + 1, Queue::default);
            self.weights.resize(slot + 1, 1);
            self.sampler.grow(slot + 1);
        }
    }

    /// Queue slots allocated over all receivers (memory held, not requests waiting).
    pub fn capacity(&self) -> usize {
        self.queues.iter().map(Queue::capacity).sum()
    }

    /// Total requests waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// True if any request is waiting to be served.
    pub fn has_work(&self) -> bool {
        self.queued > 0
    }

    /// Sets receiver `slot`'s weight `d(n,k) + eps` (must be positive).
    pub fn set_weight(&mut self, slot: usize, weight: u64) {
        self.ensure(slot);
        self.weights[slot] = weight.max(1);
        if !self.queues[slot].is_empty() {
            self.sampler.set(slot, self.weights[slot]);
        }
    }

    /// Queues a request that arrived at `arrived`; false if the receiver's queue is full.
    pub fn enqueue(&mut self, slot: usize, id: LcId, arrived: Time, expires: Time) -> bool {
        self.enqueue_all(slot, [id], arrived, expires)
    }

    /// Queues requests that arrived together, in order, until the receiver's queue is
    /// full (the rest are dropped and one overflow counted); false if it filled.
    ///
    /// The receiver's requests that expired by now go first. They would be dropped
    /// unserved anyway (DESIGN.md §5), but left queued until this receiver is next picked
    /// (rarely, when it gives little back) they filled its queue to the bound: most
    /// of a viewer's memory in an overloaded swarm, and a full queue of dead requests
    /// refused live ones.
    pub fn enqueue_all(
        &mut self,
        slot: usize,
        ids: impl IntoIterator<Item = LcId>,
        arrived: Time,
        expires: Time,
    ) -> bool {
        self.ensure(slot);
        let q = &mut self.queues[slot];
        let dropped = q.drop_expired(arrived);
        self.expired += dropped as u64;
        self.queued -= dropped;
        let before = q.len();
        let fit = q.extend(ids, arrived, expires, self.max_queue);
        if !fit {
            self.overflowed += 1;
        }
        self.queued += q.len() - before;
        q.trim();
        if q.is_empty() {
            self.sampler.set(slot, 0);
        } else if before == 0 {
            self.sampler.set(slot, self.weights[slot]);
        }
        fit
    }

    /// Forgets everything queued for `slot` (the neighbour left).
    pub fn clear(&mut self, slot: usize) {
        if let Some(q) = self.queues.get_mut(slot) {
            self.queued -= q.len();
            q.clear();
            q.trim();
            self.sampler.set(slot, 0);
            self.weights[slot] = 1;
        }
    }

    fn choose(&mut self, rng: &mut impl Rng) -> Option<usize> {
        match self.policy {
            SupplierPolicy::TitForTat => self.sampler.pick(rng),
            SupplierPolicy::RoundRobin => {
                let n = self.queues.len();
                let slot = (0..n).map(|i| (self.rr_next + i) % n).find(|&s| !self.queues[s].is_empty())?;
                self.rr_next = (slot + 1) % n;
                Some(slot)
            }
        }
    }

    /// The next request to serve at `now`: picks a receiver, drops its expired
    /// requests, and pops the first live one: its slot, LC and arrival time.
    pub fn next(&mut self, now: Time, rng: &mut impl Rng) -> Option<(usize, LcId, Time)> {
        while self.queued > 0 {
            let slot = self.choose(rng)?;
            let q = &mut self.queues[slot];
            let mut found = None;
            while let Some((id, arrived, expires)) = q.pop_front() {
                self.queued -= 1;
                if expires >= now {
                    found = Some((id, arrived));
                    break;
                }
                self.expired += 1;
            }
            if q.is_empty() {
                q.trim();
                self.sampler.set(slot, 0);
            }
            if let Some((id, arrived)) = found {
                return Some((slot, id, arrived));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::{LayerId, Seq};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn id(seq: u32) -> LcId {
        LcId { layer: LayerId::BASE, seq: Seq(seq) }
    }

    #[test]
    fn queued_ids_are_five_bytes_and_round_trip() {
        assert_eq!(std::mem::size_of::<QueuedId>(), 5);
        for id in
            [id(0), id(u32::MAX), LcId { layer: LayerId::from_index(layerp2p_codec::MAX_LAYERS - 1), seq: Seq(7) }]
        {
            assert_eq!(LcId::from(QueuedId::from(id)), id);
        }
    }

    #[test]
    fn queues_are_fifo_and_expired_requests_are_dropped() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        s.enqueue(0, id(1), Time::ZERO, Time::from_secs(1));
        s.enqueue(0, id(2), Time::ZERO, Time::from_secs(5));
        s.enqueue(0, id(3), Time::ZERO, Time::from_secs(5));
        assert_eq!(s.next(Time::from_secs(2), &mut rng), Some((0, id(2), Time::ZERO)));
        assert_eq!(s.expired, 1);
        assert_eq!(s.next(Time::from_secs(2), &mut rng), Some((0, id(3), Time::ZERO)));
        assert_eq!(s.next(Time::from_secs(2), &mut rng), None);
        assert!(!s.has_work());
    }

    #[test]
    fn queue_bound_holds() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 2);
        assert!(s.enqueue(3, id(1), Time::ZERO, Time::ZERO));
        assert!(s.enqueue(3, id(2), Time::ZERO, Time::ZERO));
        assert!(!s.enqueue(3, id(3), Time::ZERO, Time::ZERO));
        assert_eq!(s.queued(), 2);
        assert_eq!(s.overflowed, 1);
        s.clear(3);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn batched_requests_keep_their_own_arrival_and_deadline() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (t1, t2) = (Time::from_secs(1), Time::from_secs(2));
        s.enqueue(0, id(1), t1, Time::from_secs(3));
        s.enqueue(0, id(2), t1, Time::from_secs(3));
        s.enqueue(0, id(3), t2, Time::from_secs(9));
        s.enqueue(0, id(4), t2, Time::from_secs(9));
        assert_eq!(s.next(t2, &mut rng), Some((0, id(1), t1)));
        // id 2 shares id 1's deadline, so at 4 s it has expired; ids 3 and 4 have not.
        assert_eq!(s.next(Time::from_secs(4), &mut rng), Some((0, id(3), t2)));
        assert_eq!(s.expired, 1);
        assert_eq!(s.next(Time::from_secs(4), &mut rng), Some((0, id(4), t2)));
        assert_eq!(s.next(Time::from_secs(4), &mut rng), None);
    }

    #[test]
    fn expired_requests_make_room_for_new_ones() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let round = |r: u64| (Time::from_secs(r), Time::from_secs(r) + std::time::Duration::from_millis(900));
        let (at, until) = round(0);
        assert!(s.enqueue_all(1, [id(1), id(2), id(3)], at, until));
        // A round later those three are dead: the new message replaces them instead of
        // overflowing, and they count as expired.
        let (at, until) = round(1);
        assert!(s.enqueue_all(1, [id(4), id(5)], at, until));
        assert_eq!((s.queued(), s.expired, s.overflowed), (2, 3, 0));
        assert_eq!(s.next(at, &mut rng), Some((1, id(4), at)));
        // A message of nothing this receiver's supplier holds still clears its dead
        // requests, and an emptied queue is no longer picked.
        let (at, until) = round(3);
        assert!(s.enqueue_all(1, [], at, until));
        assert_eq!((s.queued(), s.expired), (0, 4));
        assert!(!s.has_work());
        assert_eq!(s.next(at, &mut rng), None);
        assert!(until > at);
    }

    #[test]
    fn a_request_message_queues_in_order_up_to_the_bound() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        assert!(s.enqueue_all(2, [id(1)], Time::ZERO, Time::from_secs(1)));
        // Two of three fit; the third is dropped and counted once.
        assert!(!s.enqueue_all(2, [id(2), id(3), id(4)], Time::ZERO, Time::from_secs(1)));
        assert_eq!((s.queued(), s.overflowed), (3, 1));
        assert!(s.enqueue_all(2, [], Time::ZERO, Time::from_secs(1)), "nothing to queue always fits");
        let served: Vec<LcId> = std::iter::from_fn(|| s.next(Time::ZERO, &mut rng).map(|(_, id, _)| id)).collect();
        assert_eq!(served, vec![id(1), id(2), id(3)]);
        assert!(!s.has_work());
    }

    #[test]
    fn a_burst_gives_its_memory_back_in_a_queue_that_never_empties() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 4096);
        let (t0, t1) = (Time::ZERO, Time::from_secs(2));
        s.enqueue_all(0, (0..3000).map(id), t0, Time::from_secs(1));
        assert!(s.capacity() >= 3000);
        // The burst expires; the receiver goes on asking for ten LCs a round.
        s.enqueue_all(0, (0..10).map(id), t1, t1 + std::time::Duration::from_secs(1));
        assert_eq!(s.queued(), 10);
        assert!(s.capacity() <= 4 * KEPT_QUEUE_CAPACITY, "capacity {} for 10 requests", s.capacity());
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 4096);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for i in 0..2000 {
            s.enqueue(0, id(i), Time::ZERO, Time::from_secs(1));
        }
        assert!(s.capacity() >= 2000);
        while s.next(Time::ZERO, &mut rng).is_some() {}
        assert!(s.capacity() <= KEPT_QUEUE_CAPACITY, "capacity {} after draining", s.capacity());
    }

    #[test]
    fn tit_for_tat_serves_in_proportion_to_contribution() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 100_000);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        s.set_weight(0, 700_000);
        s.set_weight(1, 300_000);
        s.set_weight(2, 1_000); // a free-rider: only eps
        for k in 0..3 {
            for i in 0..20_000 {
                s.enqueue(k, id(i), Time::ZERO, Time::from_secs(100));
            }
        }
        let mut served = [0u32; 3];
        for _ in 0..10_000 {
            served[s.next(Time::ZERO, &mut rng).expect("work").0] += 1;
        }
        assert!((served[0] as f64 / 10_000.0 - 0.7).abs() < 0.02, "{served:?}");
        assert!(served[2] < 30, "free-rider got {}", served[2]);
    }

    #[test]
    fn work_conserving_serves_a_lone_low_contributor() {
        let mut s = Supplier::new(SupplierPolicy::TitForTat, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        s.set_weight(0, 1_000_000);
        s.set_weight(1, 1);
        s.enqueue(1, id(7), Time::ZERO, Time::from_secs(1));
        assert_eq!(s.next(Time::ZERO, &mut rng), Some((1, id(7), Time::ZERO)));
    }

    #[test]
    fn round_robin_alternates_regardless_of_weight() {
        let mut s = Supplier::new(SupplierPolicy::RoundRobin, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        s.set_weight(0, 1_000_000);
        s.set_weight(1, 1);
        for i in 0..3 {
            s.enqueue(0, id(i), Time::ZERO, Time::from_secs(1));
            s.enqueue(1, id(i), Time::ZERO, Time::from_secs(1));
        }
        let order: Vec<usize> = (0..6).map(|_| s.next(Time::ZERO, &mut rng).expect("work").0).collect();
        assert_eq!(order, vec![0, 1, 0, 1, 0, 1]);
    }
}
