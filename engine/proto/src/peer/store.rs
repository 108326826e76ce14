//! The LCs a peer holds: per layer, a buffer-map window and the LCs themselves,
//! aligned so that slot `i` holds sequence `start + i`. Bounded by the window limit.
//!
//! A slot is compact (12 bytes, not an `Option<Lc>`'s 56): the LC id is implied by
//! the slot's position, the payload by its length when it is phantom (the
//! simulator's), and the media time and frame are offsets from a per-layer base (a
//! window spans seconds, so they fit in 32 and 16 bits). A real payload, and the
//! time and frame of an LC too far from the base, wait in side tables keyed by
//! sequence. The store is the largest table a viewer holds (a window of ~600 slots
//! per layer), so this sets how many simulated viewers fit in memory. LCs are rebuilt
//! exactly on the way out.

use crate::peer::fasthash::FastMap;
use bytes::Bytes;
use layerp2p_codec::{
    BufferMap, Insert, LayerId, LayerWindow, Lc, LcHeader, LcId, MediaTime, Seq, WindowError, is_phantom,
    phantom_payload,
};
use std::collections::VecDeque;

/// What a slot holds (two bits of `Slot::meta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No LC.
    Empty = 0,
    /// An LC with a phantom payload of `Slot::len()` bytes.
    Phantom = 1,
    /// An LC whose payload is in the store's side table.
    Real = 2,
}

/// `Slot::meta`: the phantom payload's length in the low bits (a phantom payload is
/// at most `MAX_LC_PAYLOAD` bytes), the kind above it, and the wide flag on top.
const LEN_BITS: u16 = 0x1FFF;
const KIND_SHIFT: u16 = 13;
/// The slot's time and frame are in the wide side table, not offsets.
const WIDE: u16 = 0x8000;

/// Time and frame of an LC whose offsets from its layer's base do not fit a slot.
#[derive(Clone, Copy, Debug)]
struct Wide {
    time: MediaTime,
    frame: u32,
}

/// One slot of a layer's window: an LC without its id (implied by the position),
/// its time and frame as offsets from the layer's [`Base`].
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    time: u32,
    frame: u16,
    part: u16,
    parts: u16,
    meta: u16,
}

/// What slot offsets of one layer count from.
#[derive(Clone, Copy, Debug, Default)]
struct Base {
    time: u64,
    frame: u32,
}

impl Base {
    /// The offsets of `(time, frame)` from this base, if they fit a slot.
    fn offsets(&self, time: MediaTime, frame: u32) -> Option<(u32, u16)> {
        let t = u32::try_from(time.0.checked_sub(self.time)?).ok()?;
        let f = u16::try_from(frame.checked_sub(self.frame)?).ok()?;
        Some((t, f))
    }
}

impl Slot {
    fn kind(&self) -> Kind {
        match (self.meta >> KIND_SHIFT) & 3 {
            1 => Kind::Phantom,
            2 => Kind::Real,
            _ => Kind::Empty,
        }
    }

    fn is_held(&self) -> bool {
        self.kind() != Kind::Empty
    }

    fn is_wide(&self) -> bool {
        self.meta & WIDE != 0
    }

    fn len(&self) -> usize {
        usize::from(self.meta & LEN_BITS)
    }

    /// Media time and frame of this (held) slot; `wide` is its side-table entry when
    /// it is wide.
    fn time_frame(&self, base: Base, wide: Option<&Wide>) -> Option<(MediaTime, u32)> {
        if self.is_wide() {
            return wide.map(|w| (w.time, w.frame));
        }
        Some((MediaTime(base.time + u64::from(self.time)), base.frame + u32::from(self.frame)))
    }

    /// The LC in this slot, which holds sequence `seq` of `layer`; `real` is its
    /// payload from the side table when it is real.
    fn lc(&self, layer: LayerId, seq: Seq, (time, frame): (MediaTime, u32), real: Option<Bytes>) -> Option<Lc> {
        let payload = match self.kind() {
            Kind::Empty => return None,
            Kind::Phantom => phantom_payload(self.len()),
            Kind::Real => real?,
        };
        let header = LcHeader { id: LcId { layer, seq }, frame, part: self.part, parts: self.parts, time };
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

/// The held LCs of one layer.
#[derive(Debug, Default)]
struct LayerStore {
    slots: VecDeque<Slot>,
    /// Real payloads of held LCs by sequence (empty in a simulation with phantom payloads).
    real: FastMap<u32, Bytes>,
    /// Time and frame of held LCs by sequence, where they do not fit a slot's offsets.
    wide: FastMap<u32, Wide>,
    base: Base,
    /// Has the window start been placed yet?
    placed: bool,
}

impl LayerStore {
    fn clear(&mut self) {
        self.slots.clear();
        self.real.clear();
        self.wide.clear();
    }

    /// Time and frame of `slot`, which holds sequence `seq`.
    fn time_frame(&self, slot: &Slot, seq: u32) -> Option<(MediaTime, u32)> {
        let wide = if slot.is_wide() { self.wide.get(&seq) } else { None };
        slot.time_frame(self.base, wide)
    }

    /// Forgets the side-table entries of `slot`, which held sequence `seq` and left.
    fn forget(&mut self, slot: &Slot, seq: u32) {
        if slot.kind() == Kind::Real {
            self.real.remove(&seq);
        }
        if slot.is_wide() {
            self.wide.remove(&seq);
        }
    }

    /// Moves the base to the least time and frame held (with `time` and `frame`
    /// among them) and gives the offsets of `time` and `frame` from it; `None`, the
    /// base unchanged, when the held LCs span more than a slot's offsets reach. Runs
    /// when an LC falls outside the current base's reach: about once an hour of media.
    fn rebase(&mut self, time: MediaTime, frame: u32) -> Option<(u32, u16)> {
        let (mut lo, mut hi) = ((time.0, frame), (time.0, frame));
        for s in self.slots.iter().filter(|s| s.is_held() && !s.is_wide()) {
            let (t, f) = s.time_frame(self.base, None)?;
            lo = (lo.0.min(t.0), lo.1.min(f));
            hi = (hi.0.max(t.0), hi.1.max(f));
        }
        if hi.0 - lo.0 > u64::from(u32::MAX) || hi.1 - lo.1 > u32::from(u16::MAX) {
            return None;
        }
        let (old, new) = (self.base, Base { time: lo.0, frame: lo.1 });
        for s in self.slots.iter_mut().filter(|s| s.is_held() && !s.is_wide()) {
            let (t, f) = s.time_frame(old, None)?;
            (s.time, s.frame) = new.offsets(t, f)?;
        }
        self.base = new;
        new.offsets(time, frame)
    }
}

/// The LCs one node holds, per layer, with the buffer map it advertises.
#[derive(Debug)]
pub struct Store {
    map: BufferMap,
    layers: Vec<LayerStore>,
    newest: MediaTime,
}

impl Store {
    /// An empty store of `layers` layers, no window placed yet.
    pub fn new(layers: usize) -> Store {
        Store {
            map: BufferMap::new(layers, Seq(0)),
            layers: (0..layers).map(|_| LayerStore::default()).collect(),
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
        self.layers.len()
    }

    /// Media time of the newest LC ever stored.
    pub fn newest(&self) -> MediaTime {
        self.newest
    }

    /// True once `layer`'s window start has been placed (by `place` or the first LC inserted).
    pub fn is_placed(&self, layer: LayerId) -> bool {
        self.layers[layer.index()].placed
    }

    /// Places the window start of a layer that holds nothing yet.
    pub fn place(&mut self, layer: LayerId, start: Seq) {
        let l = &mut self.layers[layer.index()];
        if !l.placed {
            l.placed = true;
            if let Some(w) = self.map.layer_mut(layer) {
                *w = LayerWindow::new(start);
            }
            l.clear();
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
            let l = &mut self.layers[layer.index()];
            let idx = (seq.0 - start) as usize;
            if idx >= l.slots.len() {
                grow_to(&mut l.slots, idx + 1);
            }
            let h = lc.header;
            self.newest = self.newest.max(h.time);
            let (time, frame, wide) = match l.base.offsets(h.time, h.frame).or_else(|| l.rebase(h.time, h.frame)) {
                Some((time, frame)) => (time, frame, 0),
                None => {
                    l.wide.insert(seq.0, Wide { time: h.time, frame: h.frame });
                    (0, 0, WIDE)
                }
            };
            let phantom = is_phantom(&lc.payload);
            let (kind, len) =
                if phantom { (Kind::Phantom, lc.payload.len() as u16 & LEN_BITS) } else { (Kind::Real, 0) };
            let meta = len | (kind as u16) << KIND_SHIFT | wide;
            l.slots[idx] = Slot { time, frame, part: h.part, parts: h.parts, meta };
            if !phantom {
                l.real.insert(seq.0, lc.payload);
            }
        }
        Ok(result)
    }

    /// The layer of `id` and its slot, if `id` is held.
    fn slot(&self, id: LcId) -> Option<(&LayerStore, &Slot)> {
        let w = self.map.layer(id.layer)?;
        if !w.contains(id.seq) {
            return None;
        }
        let l = &self.layers[id.layer.index()];
        l.slots.get((id.seq.0 - w.start().0) as usize).filter(|s| s.is_held()).map(|s| (l, s))
    }

    /// Is `id` held?
    pub fn holds(&self, id: LcId) -> bool {
        self.slot(id).is_some()
    }

    /// The LC `id`, if held.
    pub fn get(&self, id: LcId) -> Option<Lc> {
        let (l, slot) = self.slot(id)?;
        let real = (slot.kind() == Kind::Real).then(|| l.real.get(&id.seq.0).cloned()).flatten();
        slot.lc(id.layer, id.seq, l.time_frame(slot, id.seq.0)?, real)
    }

    /// Media time of the LC at the window start of `layer`, if held.
    pub fn front_time(&self, layer: LayerId) -> Option<MediaTime> {
        let l = &self.layers[layer.index()];
        let start = self.window(layer).start().0;
        l.slots.front().filter(|s| s.is_held()).and_then(|s| l.time_frame(s, start)).map(|(t, _)| t)
    }

    /// Sequence and media time of the first held LC after the window start of `layer`.
    pub fn next_held_after_front(&self, layer: LayerId) -> Option<(Seq, MediaTime)> {
        let l = &self.layers[layer.index()];
        let start = self.window(layer).start().0;
        let (i, s) = l.slots.iter().enumerate().skip(1).find(|(_, s)| s.is_held())?;
        let seq = start.wrapping_add(i as u32);
        l.time_frame(s, seq).map(|(t, _)| (Seq(seq), t))
    }

    /// Drops every LC of `layer` below `to` (given up) in one step, however far `to` is.
    pub fn skip_to(&mut self, layer: LayerId, to: Seq) {
        let w = self.map.layer_mut(layer).expect("layer in plan");
        let start = w.start().0;
        let gap = to.0.saturating_sub(start) as usize;
        w.advance(to);
        let l = &mut self.layers[layer.index()];
        let mut gone = std::mem::take(&mut l.slots);
        for (k, slot) in gone.drain(..gap.min(gone.len())).enumerate() {
            l.forget(&slot, start.wrapping_add(k as u32));
        }
        l.slots = gone;
    }

    /// Drops the window start of `layer` (played or given up) and returns it.
    pub fn pop_front(&mut self, layer: LayerId) -> Option<Lc> {
        let w = self.map.layer_mut(layer).expect("layer in plan");
        let seq = w.start();
        w.advance(seq.next());
        let l = &mut self.layers[layer.index()];
        let slot = l.slots.pop_front()?;
        let time_frame = l.time_frame(&slot, seq.0);
        let real = if slot.kind() == Kind::Real { l.real.remove(&seq.0) } else { None };
        if slot.is_wide() {
            l.wide.remove(&seq.0);
        }
        slot.lc(layer, seq, time_frame?, real)
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
        let cap = s.layers[0].slots.capacity();
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
        assert!(std::mem::size_of::<Slot>() <= 12, "slot is {} bytes", std::mem::size_of::<Slot>());
        // What leaves the window leaves the side table: popped, skipped or replaced.
        assert_eq!(s.layers[0].real.len(), 1, "only the zeros are still held");
        let later = Lc { payload: Bytes::from(vec![7u8; 9]), ..lc(1, 8) };
        assert_eq!(s.insert(later.clone()), Ok(Insert::New));
        s.skip_to(LayerId::BASE, Seq(6));
        assert_eq!(s.layers[0].real.len(), 1, "the skipped zeros went with their slot");
        assert_eq!(s.get(later.id()), Some(later));
        s.skip_to(LayerId::BASE, Seq(100));
        assert!(s.layers[0].real.is_empty());
    }

    #[test]
    fn times_and_frames_far_from_the_base_come_back_exactly() {
        let mut s = Store::new(1);
        let at = |seq: u32, time: u64, frame: u32| Lc {
            header: LcHeader { time: MediaTime(time), frame, ..lc(1, seq).header },
            ..lc(1, seq)
        };
        let hour = 3_600_000_000;
        let lcs = [
            at(0, 10 * hour, 500),
            at(1, 12 * hour, 501),      // 2 h after the held one: wide
            at(2, 10 * hour - 7, 499),  // below the base: rebased down
            at(3, 10 * hour, u32::MAX), // frame beyond 16 bits of the others: wide
        ];
        for l in &lcs {
            assert_eq!(s.insert(l.clone()), Ok(Insert::New));
        }
        assert_eq!(s.layers[0].wide.len(), 2);
        for l in &lcs {
            assert_eq!(s.get(l.id()), Some(l.clone()));
        }
        assert_eq!(s.pop_front(LayerId::BASE), Some(lcs[0].clone()));
        // Once the old LCs have left, an LC hours later moves the base rather than going wide.
        s.skip_to(LayerId::BASE, Seq(3));
        assert_eq!(s.layers[0].wide.len(), 1);
        let later = at(4, 12 * hour, 600);
        assert_eq!(s.insert(later.clone()), Ok(Insert::New));
        assert_eq!(s.layers[0].wide.len(), 1, "rebased, not wide");
        assert_eq!(s.layers[0].base.time, 12 * hour);
        assert_eq!(s.get(later.id()), Some(later.clone()));
        assert_eq!(s.front_time(LayerId::BASE), Some(MediaTime(10 * hour)));
        assert_eq!(s.pop_front(LayerId::BASE), Some(lcs[3].clone()));
        assert_eq!(s.next_held_after_front(LayerId::BASE), None);
        assert_eq!(s.pop_front(LayerId::BASE), Some(later));
        assert!(s.layers[0].wide.is_empty(), "wide entries leave with their slots");
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
