//! The LCs a peer holds: per layer, a buffer-map window and the LCs themselves,
//! aligned so that slot `i` holds sequence `start + i`. Bounded by the window limit.
//!
//! A slot is compact (32 bytes, not an `Option<Lc>`'s 56): the LC id is implied by
//! the slot's position, and a phantom payload (the simulator's) is kept as its length
//! alone; a real payload is kept behind one pointer. The store is the largest table a
//! viewer holds (a window of ~600 slots per layer), so this sets how many simulated
//! viewers fit in memory. LCs are rebuilt exactly on the way out.

use bytes::Bytes;
use layerp2p_codec::{
    is_phantom, phantom_payload, BufferMap, Insert, LayerId, LayerWindow, Lc, LcHeader, LcId, MediaTime, Seq, WindowError,
};
use std::collections::VecDeque;

/// An LC's payload as stored.
#[derive(Clone, Debug, Default)]
enum Payload {
    /// The slot holds no LC.
    #[default]
    Empty,
    /// A phantom payload of this many bytes.
    Phantom(u16),
    Real(Box<Bytes>),
}

/// One slot of a layer's window: an LC without its id (implied by the position).
#[derive(Clone, Debug, Default)]
struct Slot {
    time: MediaTime,
    frame: u32,
    part: u16,
    parts: u16,
    payload: Payload,
}

impl Slot {
    fn of(lc: Lc) -> Slot {
        let payload = if is_phantom(&lc.payload) {
            Payload::Phantom(lc.payload.len() as u16)
        } else {
            Payload::Real(Box::new(lc.payload))
        };
        let h = lc.header;
        Slot { time: h.time, frame: h.frame, part: h.part, parts: h.parts, payload }
    }

    fn is_held(&self) -> bool {
        !matches!(self.payload, Payload::Empty)
    }

    /// The LC in this slot, which holds sequence `seq` of `layer`.
    fn lc(&self, layer: LayerId, seq: Seq) -> Option<Lc> {
        let payload = match &self.payload {
            Payload::Empty => return None,
            Payload::Phantom(len) => phantom_payload(*len as usize),
            Payload::Real(b) => Bytes::clone(b),
        };
        let header = LcHeader { id: LcId { layer, seq }, frame: self.frame, part: self.part, parts: self.parts, time: self.time };
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

#[derive(Debug)]
pub struct Store {
    map: BufferMap,
    lcs: Vec<VecDeque<Slot>>,
    /// Per layer: has the window start been placed yet?
    placed: Vec<bool>,
    newest: MediaTime,
}

impl Store {
    pub fn new(layers: usize) -> Store {
        Store {
            map: BufferMap::new(layers, Seq(0)),
            lcs: vec![VecDeque::new(); layers],
            placed: vec![false; layers],
            newest: MediaTime(0),
        }
    }

    pub fn map(&self) -> &BufferMap {
        &self.map
    }

    pub fn window(&self, layer: LayerId) -> &LayerWindow {
        &self.map.layers()[layer.index()]
    }

    pub fn layers(&self) -> usize {
        self.lcs.len()
    }

    /// Media time of the newest LC ever stored.
    pub fn newest(&self) -> MediaTime {
        self.newest
    }

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
        }
    }

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
            slots[idx] = Slot::of(lc);
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
        self.slot(id)?.lc(id.layer, id.seq)
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
        let gap = to.0.saturating_sub(w.start().0) as usize;
        w.advance(to);
        let slots = &mut self.lcs[layer.index()];
        slots.drain(..gap.min(slots.len()));
    }

    /// Drops the window start of `layer` (played or given up) and returns it.
    pub fn pop_front(&mut self, layer: LayerId) -> Option<Lc> {
        let w = self.map.layer_mut(layer).expect("layer in plan");
        let seq = w.start();
        w.advance(seq.next());
        self.lcs[layer.index()].pop_front()?.lc(layer, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::{phantom_payload, LcHeader};

    fn lc(layer: u8, seq: u32) -> Lc {
        let id = LcId { layer: LayerId::new(layer).expect("layer"), seq: Seq(seq) };
        Lc { header: LcHeader { id, frame: seq, part: 0, parts: 1, time: MediaTime(seq as u64 * 1000) }, payload: phantom_payload(100) }
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
        assert!(std::mem::size_of::<Slot>() <= 32, "slot is {} bytes", std::mem::size_of::<Slot>());
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
