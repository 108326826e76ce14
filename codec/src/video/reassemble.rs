//! Reassembly at the viewer: the LCs that met their playback deadline, in whatever
//! order playback hands them over, back into frames in decode order, and those into
//! an Annex B stream a player can read. Owns frame completeness and ordering; never
//! decodes.
//!
//! A frame is released when every frame before it has been released and it is
//! complete, or when playback has moved `hold` past its media time (its LCs that
//! have not come by then never will: they missed their deadline). Frame numbers that
//! never showed up are released as lost. A partly received frame keeps the NAL
//! units of the LCs that arrived: an LC holds whole NAL units unless one NAL unit is
//! larger than an LC, and a NAL unit cut by a missing LC is dropped, so what is
//! released always parses. Playback must give LCs of each frame no later than `hold`
//! after LCs of any later frame; the engine plays by media time, and with sources
//! whose media time is the decode time (ours) that is a play tick.

use super::annexb::{NalType, nal_header};
use crate::chunk::{Lc, MAX_LC_PAYLOAD, MediaTime};
use crate::layer::LayerId;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::Write;

/// Most frames held waiting for their LCs; beyond it the oldest are released.
pub const MAX_PENDING_FRAMES: usize = 2048;

/// What arrived of a frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameState {
    Complete,
    /// Some of its LCs missed their deadline.
    Partial {
        got: u16,
        parts: u16,
    },
    /// None of its LCs arrived.
    Lost,
}

/// A frame released in decode order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyFrame {
    pub number: u32,
    /// Unknown for a lost frame.
    pub layer: Option<LayerId>,
    pub state: FrameState,
    /// Annex B bytes of the NAL units that arrived whole (empty when lost).
    pub data: Vec<u8>,
}

impl ReadyFrame {
    /// Holds an IDR slice: a decoder can start here.
    pub fn has_idr(&self) -> bool {
        nal_types(&self.data).any(|t| t == NalType::IDR)
    }
}

/// NAL types in Annex B `data` (units start with `00 00 01` or `00 00 00 01`).
fn nal_types(data: &[u8]) -> impl Iterator<Item = NalType> + '_ {
    starts(data).filter_map(|at| data.get(at).and_then(|_| nal_header(&data[at..], 0).ok()).map(|h| h.nal_type))
}

/// Offsets just past every `00 00 01` in `data`.
fn starts(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    data.windows(3).enumerate().filter(|(_, w)| w == &[0, 0, 1]).map(|(i, _)| i + 3)
}

#[derive(Debug)]
struct Pending {
    layer: LayerId,
    time: MediaTime,
    parts: u16,
    got: BTreeMap<u16, Bytes>,
}

impl Pending {
    fn state(&self) -> FrameState {
        if self.got.len() == self.parts as usize {
            FrameState::Complete
        } else {
            FrameState::Partial { got: self.got.len() as u16, parts: self.parts }
        }
    }

    /// The bytes of every NAL unit that arrived whole.
    fn assemble(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev: Option<u16> = None;
        for (&part, payload) in &self.got {
            let mut p = &payload[..];
            let continues_run = prev.is_some_and(|q| q + 1 == part);
            if !continues_run && part > 0 {
                // The run starts after a gap: skip the tail of a NAL unit cut by it.
                let start_code_at = p
                    .windows(3)
                    .position(|w| w == [0, 0, 1])
                    .map(|i| i.saturating_sub(usize::from(i > 0 && p[i - 1] == 0)));
                p = start_code_at.map_or(&[][..], |i| &p[i..]);
            }
            let next_missing = part + 1 < self.parts && !self.got.contains_key(&(part + 1));
            if next_missing && payload.len() == MAX_LC_PAYLOAD {
                // A full LC before a gap may end in a NAL unit that continues in the
                // lost LC: drop its last NAL unit.
                let last = p
                    .windows(3)
                    .rposition(|w| w == [0, 0, 1])
                    .map(|i| i.saturating_sub(usize::from(i > 0 && p[i - 1] == 0)));
                p = &p[..last.unwrap_or(0)];
            }
            out.extend_from_slice(p);
            prev = Some(part);
        }
        out
    }
}

/// Counters of a reassembler.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReassemblyStats {
    pub complete: u64,
    pub partial: u64,
    pub lost: u64,
    /// LCs for frames already released, duplicates, or with a bad header.
    pub dropped_lcs: u64,
}

/// LCs → frames in decode order.
#[derive(Debug)]
pub struct Reassembler {
    pending: BTreeMap<u32, Pending>,
    /// Every frame below this has been released.
    next: Option<u32>,
    hold_us: u64,
    newest: MediaTime,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// `hold`: how long past a frame's media time its stragglers are waited for.
    pub fn new(hold: std::time::Duration) -> Reassembler {
        Reassembler {
            pending: BTreeMap::new(),
            next: None,
            hold_us: hold.as_micros() as u64,
            newest: MediaTime(0),
            stats: Default::default(),
        }
    }

    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// An LC that met its deadline.
    pub fn push(&mut self, lc: &Lc) {
        let h = &lc.header;
        let late = self.next.is_some_and(|n| h.frame < n);
        if late || h.part >= h.parts || lc.payload.is_empty() {
            self.stats.dropped_lcs += 1;
            return;
        }
        self.newest = self.newest.max(h.time);
        let frame = self.pending.entry(h.frame).or_insert_with(|| Pending {
            layer: h.id.layer,
            time: h.time,
            parts: h.parts,
            got: BTreeMap::new(),
        });
        if frame.parts != h.parts || frame.layer != h.id.layer || frame.got.contains_key(&h.part) {
            self.stats.dropped_lcs += 1;
            return;
        }
        frame.got.insert(h.part, lc.payload.clone());
    }

    /// The next frame in decode order, if it can be released.
    pub fn pop(&mut self) -> Option<ReadyFrame> {
        self.release(false)
    }

    /// Releases everything still held (end of stream).
    pub fn flush(&mut self) -> Vec<ReadyFrame> {
        std::iter::from_fn(|| self.release(true)).collect()
    }

    fn release(&mut self, force: bool) -> Option<ReadyFrame> {
        let (&number, first) = self.pending.first_key_value()?;
        let expired = self.newest.0 >= first.time.0.saturating_add(self.hold_us);
        let in_order = self.next == Some(number);
        let full = self.pending.len() > MAX_PENDING_FRAMES;
        if !(force || expired || full || (in_order && first.state() == FrameState::Complete)) {
            return None;
        }
        // Frame numbers skipped before this one were lost entirely.
        if let Some(next) = self.next.filter(|&n| n < number) {
            self.next = Some(next + 1);
            self.stats.lost += 1;
            return Some(ReadyFrame { number: next, layer: None, state: FrameState::Lost, data: Vec::new() });
        }
        let (_, frame) = self.pending.pop_first()?;
        self.next = Some(number.wrapping_add(1));
        let state = frame.state();
        match state {
            FrameState::Complete => self.stats.complete += 1,
            _ => self.stats.partial += 1,
        }
        Some(ReadyFrame { number, layer: Some(frame.layer), state, data: frame.assemble() })
    }
}

/// Writes released frames as an Annex B stream a player can open: nothing before the
/// first IDR (a decoder cannot start elsewhere), then every frame that has bytes.
#[derive(Debug)]
pub struct AnnexBWriter<W> {
    out: W,
    started: bool,
    pub frames_written: u64,
}

impl<W: Write> AnnexBWriter<W> {
    pub fn new(out: W) -> AnnexBWriter<W> {
        AnnexBWriter { out, started: false, frames_written: 0 }
    }

    /// Writes `frame` if the stream has started; returns whether it was written.
    pub fn write(&mut self, frame: &ReadyFrame) -> std::io::Result<bool> {
        self.started |= frame.has_idr();
        if !self.started || frame.data.is_empty() {
            return Ok(false);
        }
        self.out.write_all(&frame.data)?;
        self.out.flush()?;
        self.frames_written += 1;
        Ok(true)
    }

    pub fn started(&self) -> bool {
        self.started
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A viewer's `--output`: played LCs in, a playable Annex B stream out. Feed it every
/// `Event::Played` LC as it comes; call `finish` when playback stops.
#[derive(Debug)]
pub struct StreamOutput<W> {
    reassembler: Reassembler,
    writer: AnnexBWriter<W>,
}

/// How long the output waits for a frame's stragglers: several play ticks.
pub const OUTPUT_HOLD: std::time::Duration = std::time::Duration::from_millis(500);

impl<W: Write> StreamOutput<W> {
    pub fn new(out: W) -> StreamOutput<W> {
        StreamOutput { reassembler: Reassembler::new(OUTPUT_HOLD), writer: AnnexBWriter::new(out) }
    }

    /// One played LC; writes every frame that became ready.
    pub fn played(&mut self, lc: &Lc) -> std::io::Result<()> {
        self.reassembler.push(lc);
        while let Some(f) = self.reassembler.pop() {
            self.writer.write(&f)?;
        }
        Ok(())
    }

    /// Writes what is still held and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        for f in self.reassembler.flush() {
            self.writer.write(&f)?;
        }
        Ok(self.writer.into_inner())
    }

    pub fn stats(&self) -> &ReassemblyStats {
        self.reassembler.stats()
    }

    pub fn frames_written(&self) -> u64 {
        self.writer.frames_written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{LcHeader, LcId, Seq};
    use crate::packetize::{Frame, Packetizer};
    use proptest::prelude::*;
    use std::time::Duration;

    fn l(n: u8) -> LayerId {
        LayerId::new(n).expect("layer")
    }

    /// A NAL unit of `len` bytes (start code included) with type `t`.
    fn nal(t: u8, len: usize, fill: u8) -> Bytes {
        let mut v = vec![0, 0, 0, 1, 0x60 | t];
        v.resize(len, fill);
        Bytes::from(v)
    }

    fn lcs(frames: &[(u8, Vec<Bytes>)]) -> Vec<Lc> {
        let mut p = Packetizer::new(3);
        frames
            .iter()
            .enumerate()
            .flat_map(|(n, (layer, units))| {
                let f = Frame {
                    number: n as u32,
                    layer: l(*layer),
                    time: MediaTime(n as u64 * 33_333),
                    units: units.clone(),
                };
                p.packetize(&f).expect("packetize")
            })
            .collect()
    }

    #[test]
    fn out_of_order_lcs_come_out_in_decode_order() {
        let frames: Vec<(u8, Vec<Bytes>)> = vec![
            (1, vec![nal(5, 900, 1), nal(5, 900, 2)]),
            (3, vec![nal(1, 300, 3)]),
            (2, vec![nal(1, 700, 4)]),
            (1, vec![nal(1, 100, 5)]),
        ];
        let mut all = lcs(&frames);
        // Playback hands over layer by layer: layer 3 and 2 after the later layer 1.
        all.sort_by_key(|lc| lc.header.id.layer);
        let mut r = Reassembler::new(Duration::from_millis(200));
        let mut out = Vec::new();
        for lc in &all {
            r.push(lc);
            out.extend(std::iter::from_fn(|| r.pop()));
        }
        out.extend(r.flush());
        assert_eq!(out.iter().map(|f| f.number).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        for (f, (_, units)) in out.iter().zip(&frames) {
            assert_eq!(f.state, FrameState::Complete);
            assert_eq!(f.data, units.iter().flat_map(|u| u.iter().copied()).collect::<Vec<_>>());
        }
        assert!(out[0].has_idr() && !out[1].has_idr());
    }

    #[test]
    fn waits_for_earlier_frames_until_hold_expires() {
        let frames: Vec<(u8, Vec<Bytes>)> = (0..12).map(|i| (1, vec![nal(1, 50, i as u8)])).collect();
        let all = lcs(&frames);
        let mut r = Reassembler::new(Duration::from_millis(100));
        r.push(&all[0]);
        // Frame 0 is complete, but nothing precedes it yet: it waits for the hold.
        assert_eq!(r.pop(), None);
        for lc in &all[2..] {
            r.push(lc);
        }
        // Frame 1 missing; frame 0 released (expired), then frame 1 declared lost once
        // frame 2 expired.
        let got: Vec<ReadyFrame> = std::iter::from_fn(|| r.pop()).collect();
        assert_eq!(got[0].number, 0);
        assert_eq!((got[1].number, got[1].state), (1, FrameState::Lost));
        assert_eq!(got[2].number, 2);
        // Frames within the hold of the newest stay, unless in order and complete.
        assert!(got.iter().all(|f| f.number < 12));
        assert_eq!(r.stats().lost, 1);
        // An LC for a released frame is dropped.
        r.push(&all[1]);
        assert_eq!(r.stats().dropped_lcs, 1);
    }

    #[test]
    fn partial_frame_keeps_whole_nal_units_only() {
        // Frame: a 3000-byte NAL (split over 3 LCs) then two small ones in one LC.
        let units = vec![nal(5, 3000, 7), nal(5, 200, 8), nal(5, 200, 9)];
        let all = lcs(&[(1, units.clone())]);
        assert_eq!(all.len(), 4);
        let mut r = Reassembler::new(Duration::ZERO);
        // Lose the middle piece of the big NAL unit.
        for (i, lc) in all.iter().enumerate() {
            if i != 1 {
                r.push(lc);
            }
        }
        let f = r.flush().pop().expect("frame");
        assert_eq!(f.state, FrameState::Partial { got: 3, parts: 4 });
        let expect: Vec<u8> = units[1..].iter().flat_map(|u| u.iter().copied()).collect();
        assert_eq!(f.data, expect);
    }

    #[test]
    fn writer_starts_at_first_idr() {
        let frames: Vec<(u8, Vec<Bytes>)> =
            vec![(1, vec![nal(1, 40, 1)]), (1, vec![nal(5, 40, 2)]), (1, vec![nal(1, 40, 3)])];
        let mut r = Reassembler::new(Duration::ZERO);
        for lc in lcs(&frames) {
            r.push(&lc);
        }
        let mut w = AnnexBWriter::new(Vec::new());
        let written: Vec<bool> = r.flush().iter().map(|f| w.write(f).expect("write")).collect();
        assert_eq!(written, vec![false, true, true]);
        assert_eq!(w.into_inner().len(), 80);
    }

    #[test]
    fn hostile_headers_are_dropped_not_trusted() {
        let mut r = Reassembler::new(Duration::ZERO);
        let lc = |frame, part, parts, layer| Lc {
            header: LcHeader { id: LcId { layer: l(layer), seq: Seq(0) }, frame, part, parts, time: MediaTime(0) },
            payload: Bytes::from_static(&[0, 0, 1, 0x65, 1]),
        };
        r.push(&lc(0, 3, 2, 1)); // part beyond parts
        r.push(&lc(0, 0, 2, 1));
        r.push(&lc(0, 0, 2, 1)); // duplicate
        r.push(&lc(0, 1, 3, 1)); // disagrees on parts
        r.push(&lc(0, 1, 2, 2)); // disagrees on layer
        assert_eq!(r.stats().dropped_lcs, 4);
        let f = r.flush();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].state, FrameState::Partial { got: 1, parts: 2 });
    }

    proptest! {
        #[test]
        fn any_lc_stream_yields_increasing_frames_without_panic(
            hdrs in prop::collection::vec((0u32..40, 0u16..5, 1u16..5, 1u8..=3, 0u64..2_000_000, prop::collection::vec(any::<u8>(), 1..1250)), 0..60)
        ) {
            let mut r = Reassembler::new(Duration::from_millis(100));
            let mut out = Vec::new();
            for (frame, part, parts, layer, time, payload) in hdrs {
                r.push(&Lc { header: LcHeader { id: LcId { layer: l(layer), seq: Seq(0) }, frame, part, parts, time: MediaTime(time) }, payload: Bytes::from(payload) });
                out.extend(std::iter::from_fn(|| r.pop()).map(|f| f.number));
            }
            out.extend(r.flush().into_iter().map(|f| f.number));
            prop_assert!(out.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
