//! The LCs a peer holds: per layer, a buffer-map window and the LCs themselves,
//! aligned so that slot `i` holds sequence `start + i`. Bounded by the window limit.
//!
//! A slot is compact (24 bytes, not an `Option<Lc>`'s 56): the LC id is implied by
//! the slot's position, and the payload by its length when it is phantom (the
//! simulator's); a real payload waits in a side table keyed by sequence. The store is
//! the largest table a viewer holds (a window of ~600 slots per layer), so this sets
//! how many simulated viewers fit in memory. LCs are rebuilt exactly on the way out.

use crate::peer::fasthash::FastMap;
use bytes::Bytes;
use layerp2p_codec::{
    BufferMap, Insert, LayerId, LayerWindow, Lc, LcHeader, LcId, MediaTime, Seq, WindowError, is_phantom,
    phantom_payload,
};
use std::collections::VecDeque;

/// What a slot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    /// No LC.
    #[default]
    Empty,
    /// An LC with a phantom payload of `Slot::len` bytes.
    Phantom,
    /// An LC whose payload is in the store's side table.
    Real,
}

/// One slot of a layer's window: an LC without its id (implied by the position).
#[derive(Clone, Debug, Default)]
struct Slot {
    time: MediaTime,
    frame: u32,
    part: u16,
    parts: u16,
    len: u16,
    kind: Kind,
}

impl Slot {
    /// The slot for `lc`, and its payload when that is real (to keep aside).
    fn of(lc: Lc) -> (Slot, Option<Bytes>) {
        let h = lc.header;
        let phantom = is_phantom(&lc.payload);
        let kind = if phantom { Kind::Phantom } else { Kind::Real };
        let slot =
            Slot { time: h.time, frame: h.frame, part: h.part, parts: h.parts, len: lc.payload.len() as u16, kind };
        (slot, (!phantom).then_some(lc.payload))
    }

    fn is_held(&self) -> bool {
        self.kind != Kind::Empty
    }

    /// The LC in this slot, which holds sequence `seq` of `layer`; `real` is its
    /// payload from the side table when it is real.
    fn lc(&self, layer: LayerId, seq: Seq, real: Option<Bytes>) -> Option<Lc> {
        let payload = match self.kind {
            Kind::Empty => return None,
            Kind::Phantom => phantom_payload(self.len as usize),
            Kind::Real => real?,
        };
        let header = LcHeader {
            id: LcId { layer, seq },
            frame: self.frame,
            part: self.part,
            parts: self.parts,
            time: self.time,
        };
        Some(Lc { header, payload })
    }
}

/// Lengthens `slots` to `len` empty slots, growing its storage by a quarter rather
/// than doubling: a window is long-lived and stays near its peak length (lag x LC
/// rate), so doubling would leave up to half of the largest per-peer table unused.
fn grow_to(slots: &mut VecDeque<Slot>, len: usize) {
    if len > slots.capacity() {
        let target = len.max(slots.capacity() + slots.capacity() / 4);
        slots.reserve_exact(target - slots.len());
    }
    slots.resize_with(len, Slot::default);
}

/// The LCs one node holds, per layer, with the buffer map it advertises.
#[derive(Debug)]
pub struct Store {
    map: BufferMap,
    lcs: Vec<VecDeque<Slot>>,
    /// Per layer, the real payloads of held LCs by sequence (empty in a simulation
    /// with phantom payloads).
    real: Vec<FastMap<u32, Bytes>>,
    /// Per layer: has the window start been placed yet?
    placed: Vec<bool>,
    newest: MediaTime,
}

impl Store {
    /// An empty store of `layers` layers, no window placed yet.
    pub fn new(layers: usize) -> Store {
        Store {
            map: BufferMap::new(layers, Seq(0)),
            lcs: vec![VecDeque::new(); layers],
            real: vec![FastMap::default(); layers],
            placed: vec![false; layers],
            newest: MediaTime(0),
        }
    }

    /// The buffer map of what is held, as sent to neighbours.
    pub fn map(&self) -> &BufferMap {
        &self.map
    }

    /// The exchange window of `layer`.
    pub fn window(&self, layer: LayerId) -> &LayerWindow {
        &self.map.layers()[layer.index()]
    }

    /// Number of layers stored.
    pub fn layers(&self) -> usize {
        self.lcs.len()
    }

    /// Media time of the newest LC ever stored.
    pub fn newest(&self) -> MediaTime {
        self.newest
    }

    /// True once `layer`'s window start has been placed (by `place` or the first LC inserted).
    pub fn is_placed(&self, layer: LayerId) -> bool {
        self.placed[layer.index()]
    }

    /// Places the window start of a layer that holds nothing yet.
    pub fn place(&mut self, layer: LayerId, start: Seq) {
        let i = layer.index();
        if !self.placed[i] {
            self.placed[i] = true;
            if let Some(w) = self.map.layer_mut(layer) {
                *w = LayerWindow::new(start);
            }
            self.lcs[i].clear();
            self.real[i].clear();
        }
    }

    /// Stores an LC, placing its layer's window at it if none is placed yet; says whether it was new or a
    /// duplicate, or why the window refused it.
    pub fn insert(&mut self, lc: Lc) -> Result<Insert, WindowError> {
        let layer = lc.header.id.layer;
        let seq = lc.header.id.seq;
        if !self.is_placed(layer) {
            self.place(layer, seq);
        }
        let window = self.map.layer_mut(layer).expect("layer checked by caller");
        let start = window.start().0;
        let result = window.insert(seq)?;
        if result == Insert::New {
            let slots = &mut self.lcs[layer.index()];
            let idx = (seq.0 - start) as usize;
            if idx >= slots.len() {
                grow_to(slots, idx + 1);
            }
            self.newest = self.newest.max(lc.header.time);
            let (slot, real) = Slot::of(lc);
            slots[idx] = slot;
            if let Some(payload) = real {
                self.real[layer.index()].insert(seq.0, payload);
            }
        }
        Ok(result)
    }

    fn slot(&self, id: LcId) -> Option<&Slot> {
        let w = self.map.layer(id.layer)?;
        if !w.contains(id.seq) {
            return None;
        }
        self.lcs[id.layer.index()].get((id.seq.0 - w.start().0) as usize).filter(|s| s.is_held())
    }

    /// Is `id` held?
    pub fn holds(&self, id: LcId) -> bool {
        self.slot(id).is_some()
    }

    /// The LC `id`, if held.
    pub fn get(&self, id: LcId) -> Option<Lc> {
        let slot = self.slot(id)?;
        let real = (slot.kind == Kind::Real).then(|| self.real[id.layer.index()].get(&id.seq.0).cloned()).flatten();
        slot.lc(id.layer, id.seq, real)
    }

    /// Media time of the LC at the window start of `layer`, if held.
    pub fn front_time(&self, layer: LayerId) -> Option<MediaTime> {
        self.lcs[layer.index()].front().filter(|s| s.is_held()).map(|s| s.time)
    }

    /// Sequence and media time of the first held LC after the window start of `layer`.
    pub fn next_held_after_front(&self, layer: LayerId) -> Option<(Seq, MediaTime)> {
        let start = self.window(layer).start().0;
        self.lcs[layer.index()]
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, s)| s.is_held())
            .map(|(i, s)| (Seq(start + i as u32), s.time))
    }

    /// Drops every LC of `layer` below `to` (given up) in one step, however far `to` is.
    pub fn skip_to(&mut self, layer: LayerId, to: Seq) {
        let w = self.map.layer_mut(layer).expect("layer in plan");
        let start = w.start().0;
        let gap = to.0.saturating_sub(start) as usize;
        w.advance(to);
        let (slots, real) = (&mut self.lcs[layer.index()], &mut self.real[layer.index()]);
        for (k, slot) in slots.drain(..gap.min(slots.len())).enumerate() {
            if slot.kind == Kind::Real {
                real.remove(&start.wrapping_add(k as u32));
            }
        }
    }

    /// Drops the window start of `layer` (played or given up) and returns it.
    pub fn pop_front(&mut self, layer: LayerId) -> Option<Lc> {
        let w = self.map.layer_mut(layer).expect("layer in plan");
        let seq = w.start();
        w.advance(seq.next());
        let slot = self.lcs[layer.index()].pop_front()?;
        let real = if slot.kind == Kind::Real { self.real[layer.index()].remove(&seq.0) } else { None };
        slot.lc(layer, seq, real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::{LcHeader, phantom_payload};

    fn lc(layer: u8, seq: u32) -> Lc {
        let id = LcId { layer: LayerId::new(layer).expect("layer"), seq: Seq(seq) };
        Lc {
            header: LcHeader { id, frame: seq, part: 0, parts: 1, time: MediaTime(seq as u64 * 1000) },
            payload: phantom_payload(100),
        }
    }

    #[test]
    fn stores_aligned_and_pops_in_order() {
        let mut s = Store::new(2);
        let l1 = LayerId::BASE;
        s.place(l1, Seq(10));
        assert_eq!(s.insert(lc(1, 12)), Ok(Insert::New));
        assert_eq!(s.insert(lc(1, 12)), Ok(Insert::Duplicate));
        assert_eq!(s.insert(lc(1, 9)), Ok(Insert::Stale));
        assert_eq!(s.get(lc(1, 12).id()), Some(lc(1, 12)));
        assert!(s.holds(lc(1, 12).id()) && !s.holds(lc(1, 11).id()));
        assert!(s.front_time(l1).is_none());
        assert_eq!(s.next_held_after_front(l1), Some((Seq(12), MediaTime(12_000))));
        assert!(s.pop_front(l1).is_none());
        assert!(s.pop_front(l1).is_none());
        assert_eq!(s.front_time(l1), Some(MediaTime(12_000)));
        assert_eq!(s.pop_front(l1), Some(lc(1, 12)));
        assert_eq!(s.window(l1).start(), Seq(13));
        assert_eq!(s.newest(), MediaTime(12_000));
    }

    #[test]
    fn window_storage_grows_by_a_quarter() {
        let mut s = Store::new(1);
        for seq in 0..1000 {
            assert_eq!(s.insert(lc(1, seq)), Ok(Insert::New));
        }
        let cap = s.lcs[0].capacity();
        assert!((1000..1250).contains(&cap), "capacity {cap} for 1000 slots");
    }

    #[test]
    fn real_payloads_come_back_byte_for_byte_and_slots_are_compact() {
        let mut s = Store::new(1);
        let mut real = lc(1, 3);
        real.payload = Bytes::from(vec![0u8, 1, 2, 3]);
        let zeros = Lc { payload: Bytes::from(vec![0u8; 100]), ..lc(1, 4) };
        assert_eq!(s.insert(real.clone()), Ok(Insert::New));
        assert_eq!(s.insert(zeros.clone()), Ok(Insert::New));
        assert_eq!(s.get(real.id()), Some(real.clone()));
        // Zeros that are not the phantom buffer keep their own bytes.
        assert!(!is_phantom(&s.get(zeros.id()).expect("held").payload));
        assert_eq!(s.pop_front(LayerId::BASE), Some(real));
        assert!(std::mem::size_of::<Slot>() <= 24, "slot is {} bytes", std::mem::size_of::<Slot>());
        // What leaves the window leaves the side table: popped, skipped or replaced.
        assert_eq!(s.real[0].len(), 1, "only the zeros are still held");
        let later = Lc { payload: Bytes::from(vec![7u8; 9]), ..lc(1, 8) };
        assert_eq!(s.insert(later.clone()), Ok(Insert::New));
        s.skip_to(LayerId::BASE, Seq(6));
        assert_eq!(s.real[0].len(), 1, "the skipped zeros went with their slot");
        assert_eq!(s.get(later.id()), Some(later));
        s.skip_to(LayerId::BASE, Seq(100));
        assert!(s.real[0].is_empty());
    }

    #[test]
    fn first_insert_places_an_unplaced_layer() {
        let mut s = Store::new(3);
        let l3 = LayerId::new(3).expect("layer");
        assert_eq!(s.insert(lc(3, 500)), Ok(Insert::New));
        assert!(s.is_placed(l3));
        assert_eq!(s.window(l3).start(), Seq(500));
    }
}
