//! The LCs a peer holds: per layer, a buffer-map window and the LCs themselves,
//! aligned so that slot `i` holds sequence `start + i`. Bounded by the window limit.

use layerp2p_codec::{BufferMap, Insert, LayerId, LayerWindow, Lc, LcId, MediaTime, Seq, WindowError};
use std::collections::VecDeque;

/// Lengthens `slots` to `len` empty-padded slots, growing its storage by a quarter
/// rather than doubling: a window is long-lived and stays near its peak length (lag x
/// LC rate), so doubling would leave up to half of the largest per-peer table unused.
fn grow_to(slots: &mut VecDeque<Option<Lc>>, len: usize) {
    if len > slots.capacity() {
        let target = len.max(slots.capacity() + slots.capacity() / 4);
        slots.reserve_exact(target - slots.len());
    }
    slots.resize(len, None);
}

#[derive(Debug)]
pub struct Store {
    map: BufferMap,
    lcs: Vec<VecDeque<Option<Lc>>>,
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
            slots[idx] = Some(lc);
        }
        Ok(result)
    }

    pub fn get(&self, id: LcId) -> Option<&Lc> {
        let w = self.map.layer(id.layer)?;
        if !w.contains(id.seq) {
            return None;
        }
        self.lcs[id.layer.index()].get((id.seq.0 - w.start().0) as usize)?.as_ref()
    }

    /// The LC at the window start of `layer`, if held.
    pub fn front(&self, layer: LayerId) -> Option<&Lc> {
        self.lcs[layer.index()].front()?.as_ref()
    }

    /// The first held LC after the window start of `layer`.
    pub fn next_held_after_front(&self, layer: LayerId) -> Option<&Lc> {
        self.lcs[layer.index()].iter().skip(1).find_map(Option::as_ref)
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
        let next = w.start().next();
        w.advance(next);
        self.lcs[layer.index()].pop_front().flatten()
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
        assert_eq!(s.get(lc(1, 12).id()).map(|l| l.header.frame), Some(12));
        assert!(s.front(l1).is_none());
        assert_eq!(s.next_held_after_front(l1).map(|l| l.header.id.seq), Some(Seq(12)));
        assert!(s.pop_front(l1).is_none());
        assert!(s.pop_front(l1).is_none());
        assert_eq!(s.front(l1).map(|l| l.header.id.seq), Some(Seq(12)));
        assert_eq!(s.pop_front(l1).map(|l| l.header.id.seq), Some(Seq(12)));
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
    fn first_insert_places_an_unplaced_layer() {
        let mut s = Store::new(3);
        let l3 = LayerId::new(3).expect("layer");
        assert_eq!(s.insert(lc(3, 500)), Ok(Insert::New));
        assert!(s.is_placed(l3));
        assert_eq!(s.window(l3).start(), Seq(500));
    }
}
