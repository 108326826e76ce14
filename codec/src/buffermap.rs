//! Buffer maps: per layer, which LCs of the exchange window a peer holds.
//!
//! A [`LayerWindow`] is a bitmap over sequence numbers `start..` that slides forward
//! as playback consumes LCs. Storage is word-aligned to absolute sequence numbers, so
//! two windows with different starts compare word by word (the receiver scheduler's
//! inner loop). Its size is bounded by [`MAX_WINDOW_LCS`]; an LC beyond that is
//! refused, never stored.

use crate::chunk::{LcId, Seq};
use crate::layer::{LayerId, MAX_LAYERS};
use std::collections::VecDeque;

/// Most LCs one layer's window may span (2 KiB of bits). At 30 s of lag this allows
/// about 546 LC/s, i.e. 5.4 Mbps of 1250-byte LCs in one layer.
pub const MAX_WINDOW_LCS: u32 = 16_384;

const WORD: u32 = 64;

/// Highest sequence a window may hold: keeps `seq + MAX_WINDOW_LCS` and word
/// arithmetic far from u32 overflow. A stream reaching it must restart its channel.
pub const MAX_SEQ: u32 = u32::MAX - 4 * MAX_WINDOW_LCS;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("sequence {seq} is {ahead} LCs ahead of the window start; the limit is {MAX_WINDOW_LCS}")]
    TooFarAhead { seq: u32, ahead: u32 },
    #[error("bitmap of {0} bits exceeds the window limit of {MAX_WINDOW_LCS}")]
    TooLong(u32),
    #[error("bitmap needs {needed} bytes for {bits} bits, got {got}")]
    Truncated { bits: u32, needed: usize, got: usize },
    #[error("sequence {0} is beyond the sequence limit {MAX_SEQ}")]
    SeqLimit(u32),
}

/// Result of [`LayerWindow::insert`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Newly marked as held.
    New,
    /// Already held.
    Duplicate,
    /// Below the window start: already played or given up.
    Stale,
}

/// The set of held LCs of one layer at or after `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerWindow {
    start: u32,
    /// `start` rounded down to a multiple of 64: absolute bit position of `words[0]`.
    base: u32,
    words: VecDeque<u64>,
}

impl LayerWindow {
    pub fn new(start: Seq) -> LayerWindow {
        LayerWindow { start: start.0, base: start.0 & !(WORD - 1), words: VecDeque::new() }
    }

    /// First sequence still in the window (the playback cursor).
    pub fn start(&self) -> Seq {
        Seq(self.start)
    }

    /// One past the highest held sequence, or `start` when empty.
    pub fn head(&self) -> Seq {
        for (i, w) in self.words.iter().enumerate().rev() {
            if *w != 0 {
                return Seq(self.base + i as u32 * WORD + (WORD - w.leading_zeros()));
            }
        }
        Seq(self.start)
    }

    pub fn contains(&self, seq: Seq) -> bool {
        seq.0 >= self.start && self.word_at(seq.0 / WORD) & (1 << (seq.0 % WORD)) != 0
    }

    /// Marks `seq` as held.
    pub fn insert(&mut self, seq: Seq) -> Result<Insert, WindowError> {
        if seq.0 < self.start {
            return Ok(Insert::Stale);
        }
        if seq.0 > MAX_SEQ {
            return Err(WindowError::SeqLimit(seq.0));
        }
        let ahead = seq.0 - self.start;
        if ahead >= MAX_WINDOW_LCS {
            return Err(WindowError::TooFarAhead { seq: seq.0, ahead });
        }
        let idx = ((seq.0 - self.base) / WORD) as usize;
        if idx >= self.words.len() {
            self.words.resize(idx + 1, 0);
        }
        let bit = 1u64 << (seq.0 % WORD);
        let word = &mut self.words[idx];
        if *word & bit != 0 {
            return Ok(Insert::Duplicate);
        }
        *word |= bit;
        Ok(Insert::New)
    }

    /// Unmarks `seq`; returns whether it was held.
    pub fn remove(&mut self, seq: Seq) -> bool {
        if !self.contains(seq) {
            return false;
        }
        self.words[((seq.0 - self.base) / WORD) as usize] &= !(1u64 << (seq.0 % WORD));
        // Keep storage canonical (no trailing empty words) so equal sets compare equal.
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
        true
    }

    /// Slides the window so that it starts at `to`, forgetting everything below.
    /// Moving backwards is ignored.
    pub fn advance(&mut self, to: Seq) {
        if to.0 <= self.start {
            return;
        }
        self.start = to.0;
        let new_base = to.0 & !(WORD - 1);
        let drop = ((new_base - self.base) / WORD) as usize;
        if drop >= self.words.len() {
            self.words.clear();
        } else {
            self.words.drain(..drop);
        }
        self.base = new_base;
        if let Some(first) = self.words.front_mut() {
            *first &= !0u64 << (self.start % WORD);
        }
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
    }

    /// How many LCs are held.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Held sequences in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Seq> + '_ {
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            let at = self.base + i as u32 * WORD;
            BitIter(w).map(move |b| Seq(at + b))
        })
    }

    /// The word of bits for absolute word index `abs` (sequences `abs*64 ..`); 0 outside.
    #[inline]
    pub fn word_at(&self, abs: u32) -> u64 {
        let first = self.base / WORD;
        if abs < first {
            return 0;
        }
        self.words.get((abs - first) as usize).copied().unwrap_or(0)
    }

    /// Absolute word index range `[first, end)` that may hold set bits.
    pub fn word_range(&self) -> std::ops::Range<u32> {
        let first = self.base / WORD;
        first..first + self.words.len() as u32
    }

    /// Sequences `other` holds that `self` lacks, at or after `self.start()`: what a
    /// receiver could request from the neighbour whose map is `other`.
    pub fn wanted_from<'a>(&'a self, other: &'a LayerWindow) -> impl Iterator<Item = Seq> + 'a {
        let from = self.start / WORD;
        let range = other.word_range();
        (range.start.max(from)..range.end).flat_map(move |abs| {
            let mut w = other.word_at(abs) & !self.word_at(abs);
            if abs == from {
                w &= !0u64 << (self.start % WORD);
            }
            BitIter(w).map(move |b| Seq(abs * WORD + b))
        })
    }

    /// The window as wire bits: bit `i` (LSB first in byte `i / 8`) is sequence
    /// `start + i`. Returns the bit count; trailing unheld LCs are not sent.
    pub fn to_bits(&self, out: &mut Vec<u8>) -> u32 {
        let nbits = self.head().0 - self.start;
        let first = out.len();
        out.resize(first + nbits.div_ceil(8) as usize, 0);
        for seq in self.iter() {
            let i = seq.0 - self.start;
            out[first + (i / 8) as usize] |= 1 << (i % 8);
        }
        nbits
    }

    /// Inverse of [`LayerWindow::to_bits`]. `bits` must hold exactly
    /// `ceil(nbits / 8)` bytes; padding bits past `nbits` are ignored.
    pub fn from_bits(start: Seq, nbits: u32, bits: &[u8]) -> Result<LayerWindow, WindowError> {
        if nbits > MAX_WINDOW_LCS {
            return Err(WindowError::TooLong(nbits));
        }
        if start.0 > MAX_SEQ {
            return Err(WindowError::SeqLimit(start.0));
        }
        let needed = nbits.div_ceil(8) as usize;
        if bits.len() != needed {
            return Err(WindowError::Truncated { bits: nbits, needed, got: bits.len() });
        }
        let mut w = LayerWindow::new(start);
        for i in 0..nbits {
            if bits[(i / 8) as usize] & (1 << (i % 8)) != 0 {
                w.insert(Seq(start.0 + i))?;
            }
        }
        Ok(w)
    }
}

/// Iterates the set bit positions of a word, lowest first.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = u32;
    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(b)
    }
}

/// A peer's buffer map: one window per layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferMap {
    layers: Vec<LayerWindow>,
}

impl BufferMap {
    /// Empty windows for `layers` layers (at most [`MAX_LAYERS`]) starting at `start`.
    pub fn new(layers: usize, start: Seq) -> BufferMap {
        assert!((1..=MAX_LAYERS).contains(&layers), "layer count {layers} out of range");
        BufferMap { layers: vec![LayerWindow::new(start); layers] }
    }

    pub fn from_layers(layers: Vec<LayerWindow>) -> BufferMap {
        BufferMap { layers }
    }

    pub fn layers(&self) -> &[LayerWindow] {
        &self.layers
    }

    pub fn layer(&self, l: LayerId) -> Option<&LayerWindow> {
        self.layers.get(l.index())
    }

    pub fn layer_mut(&mut self, l: LayerId) -> Option<&mut LayerWindow> {
        self.layers.get_mut(l.index())
    }

    pub fn contains(&self, id: LcId) -> bool {
        self.layer(id.layer).is_some_and(|w| w.contains(id.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn window(start: u32, seqs: &[u32]) -> LayerWindow {
        let mut w = LayerWindow::new(Seq(start));
        for &s in seqs {
            w.insert(Seq(s)).expect("in range");
        }
        w
    }

    #[test]
    fn insert_reports_new_duplicate_and_stale() {
        let mut w = LayerWindow::new(Seq(100));
        assert_eq!(w.insert(Seq(100)), Ok(Insert::New));
        assert_eq!(w.insert(Seq(100)), Ok(Insert::Duplicate));
        assert_eq!(w.insert(Seq(99)), Ok(Insert::Stale));
        assert!(matches!(w.insert(Seq(100 + MAX_WINDOW_LCS)), Err(WindowError::TooFarAhead { .. })));
        assert_eq!(w.count(), 1);
    }

    #[test]
    fn window_slides_and_forgets_played_lcs() {
        let mut w = window(10, &[10, 11, 63, 64, 65, 130, 200]);
        w.advance(Seq(64));
        assert_eq!(w.start(), Seq(64));
        assert_eq!(w.iter().map(|s| s.0).collect::<Vec<_>>(), vec![64, 65, 130, 200]);
        assert!(!w.contains(Seq(63)));
        w.advance(Seq(131));
        assert_eq!(w.iter().map(|s| s.0).collect::<Vec<_>>(), vec![200]);
        assert_eq!(w.insert(Seq(130)), Ok(Insert::Stale));
        w.advance(Seq(100)); // backwards: ignored
        assert_eq!(w.start(), Seq(131));
        w.advance(Seq(5000));
        assert!(w.is_empty());
        assert_eq!(w.head(), Seq(5000));
        // The limit is relative to the new start.
        assert_eq!(w.insert(Seq(5000 + MAX_WINDOW_LCS - 1)), Ok(Insert::New));
    }

    #[test]
    fn head_is_one_past_highest() {
        assert_eq!(window(0, &[]).head(), Seq(0));
        assert_eq!(window(3, &[3, 70]).head(), Seq(71));
        assert_eq!(window(0, &[63]).head(), Seq(64));
    }

    #[test]
    fn wanted_from_lists_what_neighbour_has_and_we_lack() {
        let me = window(50, &[50, 52, 100]);
        let nb = window(10, &[10, 49, 50, 51, 52, 53, 100, 101, 300]);
        let want: Vec<u32> = me.wanted_from(&nb).map(|s| s.0).collect();
        assert_eq!(want, vec![51, 53, 101, 300]);
    }

    #[test]
    fn bits_round_trip_and_reject_bad_lengths() {
        let w = window(1000, &[1000, 1003, 1064, 1100]);
        let mut buf = vec![];
        let n = w.to_bits(&mut buf);
        assert_eq!(n, 101);
        assert_eq!(LayerWindow::from_bits(Seq(1000), n, &buf), Ok(w));
        assert!(matches!(LayerWindow::from_bits(Seq(0), 9, &[1]), Err(WindowError::Truncated { .. })));
        assert!(LayerWindow::from_bits(Seq(0), MAX_WINDOW_LCS + 1, &[]).is_err());
        assert_eq!(LayerWindow::from_bits(Seq(u32::MAX), 8, &[0xFF]), Err(WindowError::SeqLimit(u32::MAX)));
        assert_eq!(LayerWindow::new(Seq(MAX_SEQ)).insert(Seq(MAX_SEQ + 1)), Err(WindowError::SeqLimit(MAX_SEQ + 1)));
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(start in 0u32..10_000, ops in prop::collection::vec((0u8..3, 0u32..3000), 0..200)) {
            let mut w = LayerWindow::new(Seq(start));
            let mut model = BTreeSet::new();
            let mut lo = start;
            for (op, x) in ops {
                let seq = lo.saturating_sub(100) + x;
                match op {
                    0 => {
                        let r = w.insert(Seq(seq)).expect("within limit");
                        let expect = if seq < lo { Insert::Stale } else if model.insert(seq) { Insert::New } else { Insert::Duplicate };
                        prop_assert_eq!(r, expect);
                    }
                    1 => prop_assert_eq!(w.remove(Seq(seq)), model.remove(&seq)),
                    _ => {
                        w.advance(Seq(seq));
                        lo = lo.max(seq);
                        model = model.split_off(&lo);
                    }
                }
                prop_assert_eq!(w.iter().map(|s| s.0).collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                let mut buf = vec![];
                let n = w.to_bits(&mut buf);
                let back = LayerWindow::from_bits(w.start(), n, &buf).expect("round trip");
                prop_assert_eq!(&back, &w, "equal sets compare equal after a round trip");
            }
        }
    }
}
