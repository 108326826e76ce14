//! The simulator's event queue, ordered by (time, insertion order), so events at the
//! same instant run in the order they were scheduled (determinism).
//!
//! A calendar queue: keys within the next `BUCKETS` x `BUCKET_WIDTH` of the current
//! bucket wait unsorted in a ring of per-millisecond buckets (a push is an append);
//! a bucket is sorted once, when it becomes current, and popped from its end. Keys
//! further out wait in a binary heap and join the calendar when their bucket comes
//! up. Most events of a run (an LC crossing a link, a pacing wake) fall within a
//! second, so the heap's log-depth sift per push and pop is gone from the hot path
//! (a pop was ~600 instructions with ~10^4 pending events). The order is exactly the
//! heap's, so runs are unchanged. The events themselves wait in a slab: keys move
//! 24 bytes, not an event with its packet.

use layerp2p_proto::time::Time;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Width of one calendar bucket, in µs.
const BUCKET_WIDTH: u64 = 1_000;
/// Buckets in the ring: the calendar spans about a second ahead of the current bucket.
const BUCKETS: usize = 1_024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    at: Time,
    order: u64,
    /// Where the event waits in `EventQueue::slab`.
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first; a sorted
    // bucket is then in descending time order and pops from its end. `order` is
    // unique, so `slot` never decides.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

#[derive(Debug)]
pub struct EventQueue<E> {
    /// Start (µs, a multiple of `BUCKET_WIDTH`) of the current bucket.
    current_start: u64,
    /// The current bucket's keys, latest first (pops from the end); also every key
    /// earlier than the current bucket's end.
    current: Vec<Key>,
    /// Ring of later buckets: bucket `b` holds keys of `[b, b + 1) x BUCKET_WIDTH`
    /// modulo the ring, unsorted, for the `BUCKETS - 1` buckets after the current one.
    ring: Vec<Vec<Key>>,
    /// Keys waiting in `ring`.
    in_ring: usize,
    /// Keys beyond the ring's span.
    far: BinaryHeap<Key>,
    slab: Vec<Option<E>>,
    /// Empty slab slots, reused last-in first-out (the warmest first).
    free: Vec<u32>,
    next_order: u64,
    len: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            current_start: 0,
            current: Vec::new(),
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_ring: 0,
            far: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            next_order: 0,
            len: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Queues `event` at `at`, after every event already queued for the same instant.
    pub fn push(&mut self, at: Time, event: E) {
        let order = self.next_order;
        self.next_order += 1;
        self.push_ordered(at, order, event);
    }

    /// Queues `event` at `at`, ordered among events of the same instant by `order`
    /// (lowest first); the caller keeps orders unique. The parallel driver orders by
    /// who scheduled an event, which does not depend on how nodes share threads.
    /// Not to be mixed with `push` in one queue.
    pub fn push_ordered(&mut self, at: Time, order: u64, event: E) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(event);
                s
            }
            None => {
                self.slab.push(Some(event));
                // More than 4 billion pending events would not fit in memory anyway.
                u32::try_from(self.slab.len() - 1).unwrap_or_else(|_| unreachable!("event slab beyond u32"))
            }
        };
        let key = Key { at, order, slot };
        self.len += 1;
        if at.0 < self.current_start + BUCKET_WIDTH {
            // Keys are in descending order (`Key`'s reversed `Ord`): the new one goes
            // after every key that comes later than it.
            let i = self.current.partition_point(|k| *k < key);
            self.current.insert(i, key);
        } else if at.0 < self.current_start + BUCKET_WIDTH * BUCKETS as u64 {
            self.ring[bucket_of(at.0)].push(key);
            self.in_ring += 1;
        } else {
            self.far.push(key);
        }
    }

    /// The earliest event if it is due at or before `until`.
    pub fn pop_until(&mut self, until: Time) -> Option<(Time, E)> {
        loop {
            if let Some(&key) = self.current.last() {
                if key.at > until {
                    return None;
                }
                self.current.pop();
                self.len -= 1;
                self.free.push(key.slot);
                let event = self.slab[key.slot as usize].take()?;
                return Some((key.at, event));
            }
            // Move on to the next bucket, but never past `until`: later pushes are at
            // or after the driver's clock, which stops at `until`.
            let mut next = self.current_start + BUCKET_WIDTH;
            if self.in_ring == 0
                && let Some(k) = self.far.peek()
            {
                // Nothing within the ring: jump to the first far key's bucket.
                next = next.max(k.at.0 - k.at.0 % BUCKET_WIDTH);
            }
            if self.len == 0 || next > until.0 {
                return None;
            }
            self.advance(next);
        }
    }

    /// Makes the bucket starting at `start` current (the current one is empty).
    fn advance(&mut self, start: u64) {
        self.current_start = start;
        let end = start + BUCKET_WIDTH;
        std::mem::swap(&mut self.current, &mut self.ring[bucket_of(start)]);
        self.in_ring -= self.current.len();
        // The ring's span moved one bucket on: far keys of the new bucket join it.
        while self.far.peek().is_some_and(|k| k.at.0 < end) {
            if let Some(k) = self.far.pop() {
                self.current.push(k);
            }
        }
        self.current.sort_unstable();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn bucket_of(at_us: u64) -> usize {
    (at_us / BUCKET_WIDTH) as usize % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(Time(5), "c");
        q.push(Time(1), "a");
        q.push(Time(5), "d");
        q.push(Time(3), "b");
        assert_eq!(q.pop_until(Time(4)), Some((Time(1), "a")));
        assert_eq!(q.pop_until(Time(4)), Some((Time(3), "b")));
        assert_eq!(q.pop_until(Time(4)), None);
        assert_eq!(q.pop_until(Time(9)), Some((Time(5), "c")));
        assert_eq!(q.pop_until(Time(9)), Some((Time(5), "d")));
        assert!(q.is_empty());
    }

    #[test]
    fn reused_slots_keep_time_and_insertion_order() {
        let mut q = EventQueue::default();
        q.push(Time(2), "b");
        q.push(Time(1), "a");
        assert_eq!(q.pop_until(Time(9)), Some((Time(1), "a")));
        // "c" takes "a"'s slot yet comes before "b" (earlier), "d" after "b" (same
        // time, scheduled later) although its slot number is lower than "b"'s.
        q.push(Time(1), "c");
        assert_eq!(q.pop_until(Time(9)), Some((Time(1), "c")));
        q.push(Time(2), "d");
        assert_eq!(q.pop_until(Time(9)), Some((Time(2), "b")));
        assert_eq!(q.pop_until(Time(9)), Some((Time(2), "d")));
        assert_eq!(q.slab.len(), 2, "slots are reused, not grown");
        assert!(q.is_empty());
    }

    /// Pops everything due by `until`, as (time, event) pairs.
    fn drain(q: &mut EventQueue<u64>, until: Time) -> Vec<(Time, u64)> {
        std::iter::from_fn(|| q.pop_until(until)).collect()
    }

    #[test]
    fn matches_a_sorted_order_across_buckets_the_ring_and_far_keys() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut q = EventQueue::default();
        let mut expect = Vec::new();
        let mut now = 0u64;
        // Pushes at or after the clock (as the driver makes them), some at the same
        // instant, some within a bucket, some beyond the ring's span; pops interleaved.
        for step in 0..20_000u64 {
            let at = now
                + match rng.random_range(0..10) {
                    0 => 0,
                    1..=6 => rng.random_range(0..5_000),
                    7 | 8 => rng.random_range(0..2_000_000),
                    _ => rng.random_range(0..60_000_000),
                };
            // The step number names the event.
            q.push(Time(at), step);
            expect.push((Time(at), step));
            if step % 3 == 0 {
                now += rng.random_range(0..3_000);
                let got = drain(&mut q, Time(now));
                let mut due: Vec<_> = expect.iter().copied().filter(|(t, _)| t.0 <= now).collect();
                expect.retain(|(t, _)| t.0 > now);
                due.sort_by_key(|&(t, i)| (t, i));
                assert_eq!(got, due, "step {step}");
            }
        }
        assert_eq!(q.len(), expect.len());
        expect.sort_by_key(|&(t, i)| (t, i));
        assert_eq!(drain(&mut q, Time(u64::MAX)), expect);
        assert!(q.is_empty());
    }

    #[test]
    fn a_push_before_the_current_bucket_still_pops_first() {
        let mut q = EventQueue::default();
        q.push(Time(5_500), "later");
        assert_eq!(q.pop_until(Time(5_000)), None);
        // The queue has moved on to the bucket of 5 ms; an event at 4.9 ms still comes first.
        q.push(Time(4_900), "earlier");
        assert_eq!(q.pop_until(Time(9_000)), Some((Time(4_900), "earlier")));
        assert_eq!(q.pop_until(Time(9_000)), Some((Time(5_500), "later")));
    }
}
