//! The simulator's event queue: a binary heap ordered by (time, insertion order), so
//! events at the same instant run in the order they were scheduled (determinism).
//! The heap holds small keys and the events wait in a slab: a sift moves 24 bytes,
//! not a whole event with its packet (a heap pop was ~390 instructions before).

use layerp2p_proto::time::Time;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, PartialEq, Eq)]
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
    // Reversed: BinaryHeap is a max-heap and we want the earliest first. `order` is
    // unique, so `slot` never decides.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Key>,
    slab: Vec<Option<E>>,
    /// Empty slab slots, reused last-in first-out (the warmest first).
    free: Vec<u32>,
    next_order: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), slab: Vec::new(), free: Vec::new(), next_order: 0 }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Time, event: E) {
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
        self.heap.push(Key { at, order: self.next_order, slot });
        self.next_order += 1;
    }

    /// The earliest event if it is due at or before `until`.
    pub fn pop_until(&mut self, until: Time) -> Option<(Time, E)> {
        if self.heap.peek()?.at > until {
            return None;
        }
        let key = self.heap.pop()?;
        self.free.push(key.slot);
        let event = self.slab[key.slot as usize].take()?;
        Some((key.at, event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
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
}
