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

use super::annexb::{MAX_PARAMETER_SETS, NalType, START_CODE, nal_header, parameter_set_id};
use crate::chunk::{Lc, MAX_LC_PAYLOAD, MediaTime, Seq};
use crate::layer::{LayerId, MAX_LAYERS};
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
    /// The lowest layer the frame may be of: its layer; for a lost frame, the lowest
    /// layer whose LC numbering leaves room for it (`Reassembler`), `None` if none
    /// does (no frame had that number).
    pub lowest_layer: Option<LayerId>,
    pub state: FrameState,
    /// Media time of the frame (its decode time); unknown for a lost frame.
    pub time: Option<MediaTime>,
    /// Annex B bytes of the NAL units that arrived whole (empty when lost).
    pub data: Vec<u8>,
}

impl ReadyFrame {
    /// Holds an IDR slice: a decoder can start here.
    pub fn has_idr(&self) -> bool {
        nal_spans(&self.data).any(|r| nal_type(&self.data[r]) == Some(NalType::IDR))
    }
}

/// The NAL units of Annex B `data`, each as the range of its bytes after the start
/// code (`00 00 01`; a zero before it is taken as part of a 4-byte start code).
/// Bytes before the first start code belong to no range.
pub fn nal_spans(data: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut starts = start_codes(data).peekable();
    std::iter::from_fn(move || {
        let (_, body) = starts.next()?;
        let end = starts.peek().map_or(data.len(), |&(code, _)| code);
        Some(body..end)
    })
}

/// `(offset of the start code, offset just past it)` of every start code in `data`.
fn start_codes(data: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    data.windows(3)
        .enumerate()
        .filter(|(_, w)| w == &[0, 0, 1])
        .map(|(i, _)| (i.saturating_sub(usize::from(i > 0 && data[i - 1] == 0)), i + 3))
}

/// The type of a NAL unit given without its start code.
fn nal_type(nal: &[u8]) -> Option<NalType> {
    nal_header(nal, 0).ok().map(|h| h.nal_type)
}

#[derive(Debug)]
struct Pending {
    layer: LayerId,
    time: MediaTime,
    parts: u16,
    /// Sequence number of its layer's LC that carries part 0.
    first_seq: Seq,
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

    /// The NAL units that arrived whole, as Annex B with 4-byte start codes.
    ///
    /// The packetizer puts whole NAL units in an LC, or cuts one NAL unit that is
    /// larger than an LC into full LCs and a last, shorter one. So across the parts
    /// in order, a NAL unit ends at the next start code, at the end of the frame, or
    /// at the end of an LC shorter than `MAX_LC_PAYLOAD`; one that runs into a missing
    /// LC (from a full LC) is dropped whole, and bytes after a gap up to the next
    /// start code are the tail of a lost head and are dropped too. A prefix NAL unit
    /// whose slice did not survive is dropped with it.
    fn assemble(&self) -> Vec<u8> {
        // Whole NAL units in order; `None` where a gap lies between two of them.
        let mut whole: Vec<Option<Vec<u8>>> = Vec::new();
        // The NAL unit being read: its bytes so far, not yet known to be complete.
        let mut open: Option<Vec<u8>> = None;
        let mut last_was_short = false;
        for part in 0..self.parts {
            let Some(payload) = self.got.get(&part) else {
                // A NAL unit left open by a short LC had ended there; one left open
                // by a full LC may continue in the missing one.
                if let Some(nal) = open.take().filter(|_| last_was_short) {
                    whole.push(Some(nal));
                }
                whole.push(None);
                last_was_short = false;
                continue;
            };
            let first_code = start_codes(payload).next().map_or(payload.len(), |(code, _)| code);
            if let Some(nal) = open.as_mut() {
                nal.extend_from_slice(&payload[..first_code]);
            }
            for span in nal_spans(payload) {
                whole.extend(open.take().map(Some));
                open = Some(payload[span].to_vec());
            }
            last_was_short = payload.len() < MAX_LC_PAYLOAD;
        }
        whole.extend(open.map(Some));
        let mut out = Vec::new();
        for (i, nal) in whole.iter().enumerate() {
            let Some(nal) = nal.as_ref().filter(|n| !n.is_empty()) else { continue };
            // A prefix NAL unit describes the slice right after it: without that
            // slice (lost in a gap) it would describe the next one.
            let next_is_slice =
                whole.get(i + 1).and_then(|n| n.as_deref()).and_then(nal_type).is_some_and(NalType::is_vcl);
            if nal_type(nal) == Some(NalType::PREFIX) && !next_is_slice {
                continue;
            }
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
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
    /// Per layer, the sequence number right after the LCs of its last released frame.
    seq_end: [Option<Seq>; MAX_LAYERS],
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
            seq_end: [None; MAX_LAYERS],
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
            first_seq: Seq(h.id.seq.0.wrapping_sub(u32::from(h.part))),
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
            return Some(ReadyFrame {
                number: next,
                layer: None,
                lowest_layer: self.lowest_layer_lost(),
                state: FrameState::Lost,
                time: None,
                data: Vec::new(),
            });
        }
        let (_, frame) = self.pending.pop_first()?;
        self.next = Some(number.wrapping_add(1));
        self.seq_end[frame.layer.index()] = Some(Seq(frame.first_seq.0.wrapping_add(u32::from(frame.parts))));
        let state = frame.state();
        match state {
            FrameState::Complete => self.stats.complete += 1,
            _ => self.stats.partial += 1,
        }
        Some(ReadyFrame {
            number,
            layer: Some(frame.layer),
            lowest_layer: Some(frame.layer),
            state,
            time: Some(frame.time),
            data: frame.assemble(),
        })
    }

    /// The lowest layer a frame lost now (every frame before it released, every held
    /// one after it) may have been of. The packetizer numbers each layer's LCs in
    /// decode order without gaps, from 0, so a layer whose last released frame (or 0)
    /// ends right where its next held frame begins had no frame in between. A layer
    /// with no held frame to compare may have had.
    fn lowest_layer_lost(&self) -> Option<LayerId> {
        (0..MAX_LAYERS).map(LayerId::from_index).find(|layer| {
            let next = self.pending.values().find(|p| p.layer == *layer).map(|p| p.first_seq);
            // Each layer's numbering starts at 0.
            next.is_none_or(|next| self.seq_end[layer.index()].unwrap_or(Seq(0)) != next)
        })
    }
}

/// An access unit delimiter NAL unit (type 9) saying "any slice type", with its
/// start code: it marks where a frame begins, so a decoder never merges a frame whose
/// first slice was lost into the frame before it.
pub const ACCESS_UNIT_DELIMITER: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];

/// One access unit of the output stream, ready for a player: led by an access unit
/// delimiter, with the SPS/PPS before every IDR, whole NAL units only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputUnit {
    /// Frame number in decode order.
    pub number: u32,
    /// Media time of the frame (decode time).
    pub time: MediaTime,
    /// Starts with parameter sets and an IDR: a player can join here.
    pub idr: bool,
    /// Annex B bytes.
    pub data: Vec<u8>,
}

/// Frames that held a slice but were not written: a decoder could not decode them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SkippedFrames {
    /// Before the first IDR whose parameter sets had arrived.
    pub before_start: u64,
    /// Predicted from a frame that was lost (see `OutputUnits`).
    pub reference_lost: u64,
}

/// Turns released frames into the access units of a stream a player can open: from
/// the first IDR whose parameter sets are known, every frame that holds a slice and
/// whose reference frames arrived, each led by an access unit delimiter; the SPS/PPS
/// seen so far before every IDR and again before the first frame after any of them
/// changed; whole NAL units only (frames come from the reassembler, which keeps only
/// those).
///
/// A frame is skipped when a frame it may be predicted from was lost (no slice of it
/// arrived): a decoder would drop it or decode it from the wrong picture, and a player
/// shows the last picture instead, frozen rather than broken. Layers are temporal
/// (DESIGN.md §3): a frame of layer k is predicted only from frames of layers <= k,
/// the base layer from the base layer back to its IDR, and an upper layer only from
/// frames since the last base-layer frame (hierarchical P or B). So after a lost
/// frame of layer k, frames of layers >= k are skipped until the next IDR (k = 1), or
/// until a frame of a layer below k is written (k > 1). A layer whose frames all had
/// `nal_ref_idc` 0 is never predicted from, and its losses skip nothing. A frame that
/// arrived in part is written: the decoder conceals its missing slices.
#[derive(Debug, Default)]
pub struct OutputUnits {
    started: bool,
    /// Latest SPS and PPS by (type, id), as NAL units without start codes.
    parameter_sets: BTreeMap<(u8, u32), Bytes>,
    /// A parameter set changed since they were last written.
    parameters_changed: bool,
    /// Frames that held at least one slice.
    frames_with_slices: u64,
    /// Lowest layer a lost frame left without its references: frames of this layer
    /// and above are skipped.
    broken_from: Option<LayerId>,
    /// Per layer: a frame of it was seen, and one was a reference (`nal_ref_idc` != 0).
    layer_seen: [bool; MAX_LAYERS],
    layer_referenced: [bool; MAX_LAYERS],
    skipped: SkippedFrames,
}

impl OutputUnits {
    pub fn new() -> OutputUnits {
        OutputUnits::default()
    }

    /// The access unit of `frame`, if the stream has started, it holds a slice and a
    /// decoder can decode it.
    pub fn unit(&mut self, frame: &ReadyFrame) -> Option<OutputUnit> {
        let data = &frame.data;
        let (mut slices, mut idr, mut reference) = (false, false, false);
        for span in nal_spans(data) {
            let nal = &data[span];
            match nal_header(nal, 0).map(|h| (h.nal_type, h.ref_idc)) {
                Ok((t @ (NalType::SPS | NalType::PPS), _)) => self.keep_parameter_set(t, nal),
                Ok((t, ref_idc)) if t.is_vcl() => {
                    slices = true;
                    idr |= t == NalType::IDR;
                    reference |= ref_idc != 0;
                }
                _ => {}
            }
        }
        self.frames_with_slices += u64::from(slices);
        if let Some(layer) = frame.layer.filter(|_| slices) {
            self.layer_seen[layer.index()] = true;
            self.layer_referenced[layer.index()] |= reference;
        }
        let has = |t: NalType| self.parameter_sets.keys().any(|&(k, _)| k == t.0);
        if idr && has(NalType::SPS) && has(NalType::PPS) {
            self.started = true;
            self.broken_from = None;
        }
        if !slices {
            self.lost(frame.lowest_layer);
            return None;
        }
        if !self.started {
            self.skipped.before_start += 1;
            return None;
        }
        if !idr {
            // Slices arrived, so the layer is the LC header's.
            let layer = frame.layer.unwrap_or(LayerId::BASE);
            match self.broken_from {
                Some(broken) if layer >= broken => {
                    self.skipped.reference_lost += 1;
                    return None;
                }
                // A layer below the broken one: frames above it are predicted from this one on.
                Some(_) => self.broken_from = None,
                None => {}
            }
        }
        let mut au = ACCESS_UNIT_DELIMITER.to_vec();
        if idr || self.parameters_changed {
            for nal in self.parameter_sets.values() {
                au.extend_from_slice(&START_CODE);
                au.extend_from_slice(nal);
            }
            self.parameters_changed = false;
        }
        for span in nal_spans(data) {
            let nal = &data[span];
            // Delimiters and parameter sets are the writer's own, written above.
            if nal.is_empty() || matches!(nal_type(nal), Some(NalType::AUD | NalType::SPS | NalType::PPS)) {
                continue;
            }
            au.extend_from_slice(&START_CODE);
            au.extend_from_slice(nal);
        }
        Some(OutputUnit { number: frame.number, time: frame.time.unwrap_or_default(), idr, data: au })
    }

    fn keep_parameter_set(&mut self, t: NalType, nal: &[u8]) {
        let Some(id) = parameter_set_id(t, nal) else { return };
        if self.parameter_sets.get(&(t.0, id)).is_some_and(|known| known[..] == *nal) {
            return;
        }
        if self.parameter_sets.len() >= MAX_PARAMETER_SETS && !self.parameter_sets.contains_key(&(t.0, id)) {
            return;
        }
        self.parameter_sets.insert((t.0, id), Bytes::copy_from_slice(nal));
        self.parameters_changed = true;
    }

    /// A frame with no slice, of `layer` at the lowest: frames predicted from it lose
    /// their reference, unless its layer is known to hold none.
    fn lost(&mut self, layer: Option<LayerId>) {
        let Some(layer) = layer.filter(|_| self.started) else { return };
        let (seen, referenced) = (self.layer_seen[layer.index()], self.layer_referenced[layer.index()]);
        if referenced || !seen {
            self.broken_from = Some(self.broken_from.map_or(layer, |b| b.min(layer)));
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// Frames that held a slice and were not written.
    pub fn skipped(&self) -> SkippedFrames {
        self.skipped
    }

    /// Frames seen so far that held an H.264 slice (none: the stream is not H.264).
    pub fn frames_with_slices(&self) -> u64 {
        self.frames_with_slices
    }
}

/// Writes released frames as an Annex B stream a player can open (see `OutputUnits`).
#[derive(Debug)]
pub struct AnnexBWriter<W> {
    out: W,
    units: OutputUnits,
    pub frames_written: u64,
}

impl<W: Write> AnnexBWriter<W> {
    pub fn new(out: W) -> AnnexBWriter<W> {
        AnnexBWriter { out, units: OutputUnits::new(), frames_written: 0 }
    }

    /// Writes `frame` if the stream has started; returns whether it was written.
    pub fn write(&mut self, frame: &ReadyFrame) -> std::io::Result<bool> {
        let Some(unit) = self.units.unit(frame) else { return Ok(false) };
        self.out.write_all(&unit.data)?;
        self.out.flush()?;
        self.frames_written += 1;
        Ok(true)
    }

    pub fn started(&self) -> bool {
        self.units.started()
    }

    /// Frames that held a slice and were not written.
    pub fn skipped(&self) -> SkippedFrames {
        self.units.skipped()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// How long the output waits for a frame's stragglers: several play ticks.
pub const OUTPUT_HOLD: std::time::Duration = std::time::Duration::from_millis(500);

/// Played LCs in, the access units of a playable stream out, in decode order: what a
/// viewer's outputs (`--output`, `--http`) are made of. Feed it every `Event::Played`
/// LC as it comes; call `finish` when playback stops.
#[derive(Debug)]
pub struct PlayedUnits {
    reassembler: Reassembler,
    units: OutputUnits,
}

impl Default for PlayedUnits {
    fn default() -> PlayedUnits {
        PlayedUnits { reassembler: Reassembler::new(OUTPUT_HOLD), units: OutputUnits::new() }
    }
}

impl PlayedUnits {
    pub fn new() -> PlayedUnits {
        PlayedUnits::default()
    }

    /// One played LC; hands `emit` every access unit that became ready.
    pub fn played<E>(&mut self, lc: &Lc, mut emit: impl FnMut(OutputUnit) -> Result<(), E>) -> Result<(), E> {
        self.reassembler.push(lc);
        while let Some(f) = self.reassembler.pop() {
            if let Some(unit) = self.units.unit(&f) {
                emit(unit)?;
            }
        }
        Ok(())
    }

    /// Hands `emit` what is still held.
    pub fn finish<E>(&mut self, mut emit: impl FnMut(OutputUnit) -> Result<(), E>) -> Result<(), E> {
        for f in self.reassembler.flush() {
            if let Some(unit) = self.units.unit(&f) {
                emit(unit)?;
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> &ReassemblyStats {
        self.reassembler.stats()
    }

    /// Frames released so far, whatever they held.
    pub fn frames_released(&self) -> u64 {
        let s = self.reassembler.stats();
        s.complete + s.partial + s.lost
    }

    pub fn frames_with_slices(&self) -> u64 {
        self.units.frames_with_slices()
    }

    /// Frames that held a slice and were not written.
    pub fn skipped(&self) -> SkippedFrames {
        self.units.skipped()
    }
}

/// A viewer's `--output` as one Annex B stream: played LCs in, bytes to `out`.
#[derive(Debug)]
pub struct StreamOutput<W> {
    units: PlayedUnits,
    out: W,
    frames_written: u64,
}

impl<W: Write> StreamOutput<W> {
    pub fn new(out: W) -> StreamOutput<W> {
        StreamOutput { units: PlayedUnits::new(), out, frames_written: 0 }
    }

    /// One played LC; writes every frame that became ready.
    pub fn played(&mut self, lc: &Lc) -> std::io::Result<()> {
        let (out, n) = (&mut self.out, &mut self.frames_written);
        self.units.played(lc, |u| write_unit(out, n, &u))
    }

    /// Writes what is still held; returns the output and the frames written in all.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        let (out, n) = (&mut self.out, &mut self.frames_written);
        self.units.finish(|u| write_unit(out, n, &u))?;
        Ok((self.out, self.frames_written))
    }

    pub fn stats(&self) -> &ReassemblyStats {
        self.units.stats()
    }

    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// Frames that held a slice and were not written.
    pub fn skipped(&self) -> SkippedFrames {
        self.units.skipped()
    }
}

/// Writes `unit` to `out` and counts it in `written`.
pub fn write_unit(out: &mut impl Write, written: &mut u64, unit: &OutputUnit) -> std::io::Result<()> {
    out.write_all(&unit.data)?;
    out.flush()?;
    *written += 1;
    Ok(())
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

    /// A NAL unit of type `t` whose bytes after the header (at least one, never zero)
    /// are `body` repeated to `len` bytes in all, start code included.
    fn nal_with(t: u8, body: &[u8], len: usize) -> Bytes {
        let mut v = vec![0, 0, 0, 1, 0x60 | t];
        v.extend(body.iter().copied().cycle().take(len.saturating_sub(5).max(1)));
        Bytes::from(v)
    }

    /// What `w` wrote, as (type, first body byte) per NAL unit.
    fn written(out: &[u8]) -> Vec<(u8, u8)> {
        nal_spans(out).map(|r| (out[r.start] & 0x1F, out.get(r.start + 1).copied().unwrap_or(0))).collect()
    }

    #[test]
    fn writer_delimits_every_frame_and_sends_parameter_sets_before_each_idr() {
        let (sps, pps) = (nal_with(7, &[0x42, 0, 0x1E, 0x80], 9), nal_with(8, &[0xCE], 6));
        let sps2 = nal_with(7, &[0x4D, 0, 0x1E, 0x80], 9);
        let frames: Vec<(u8, Vec<Bytes>)> = vec![
            (1, vec![nal(1, 40, 1)]),                           // before any IDR: skipped
            (1, vec![nal(5, 40, 2)]),                           // IDR, parameter sets unknown: skipped
            (1, vec![sps.clone(), pps.clone(), nal(5, 40, 3)]), // starts the stream
            (3, vec![nal(1, 40, 4)]),
            (3, vec![sps2.clone()]), // slices lost: not a frame, but kept; layer 2 does not need it
            (2, vec![nal(1, 40, 5)]), // written after the changed SPS
            (1, vec![nal(5, 40, 6)]), // IDR without its SPS/PPS: re-sent
        ];
        let mut r = Reassembler::new(Duration::ZERO);
        for lc in lcs(&frames) {
            r.push(&lc);
        }
        let mut w = AnnexBWriter::new(Vec::new());
        let done: Vec<bool> = r.flush().iter().map(|f| w.write(f).expect("write")).collect();
        assert_eq!(done, vec![false, false, true, true, false, true, true]);
        assert_eq!(w.frames_written, 4);
        let out = w.into_inner();
        assert!(out.starts_with(&ACCESS_UNIT_DELIMITER));
        let (aud, sps_t, pps_t) = ((9, 0xF0), (7, 0x42), (8, 0xCE));
        assert_eq!(
            written(&out),
            vec![aud, sps_t, pps_t, (5, 3), aud, (1, 4), aud, (7, 0x4D), pps_t, (1, 5), aud, (7, 0x4D), pps_t, (5, 6),]
        );
    }

    /// `frames` frames of a 3-layer hierarchical GOP (`L1 L3 L2 L3`, layer 3 not a
    /// reference), an IDR with SPS/PPS every 16, as LCs; frame n's slice body is n.
    fn gop_lcs(frames: u32) -> Vec<Lc> {
        let (sps, pps) = (nal_with(7, &[0x42, 0, 0x1E, 0x80], 9), nal_with(8, &[0xCE], 6));
        let list: Vec<(u8, Vec<Bytes>)> = (0..frames)
            .map(|n| {
                let layer = [1, 3, 2, 3][n as usize % 4];
                let slice = |t: u8, ref_idc: u8| {
                    let mut v = nal_with(t, &[n as u8], 40).to_vec();
                    v[4] = (ref_idc << 5) | t;
                    Bytes::from(v)
                };
                match (n % 16, layer) {
                    (0, _) => (1, vec![sps.clone(), pps.clone(), slice(5, 3)]),
                    (_, 3) => (3, vec![slice(1, 0)]),
                    (_, layer) => (layer, vec![slice(1, 2)]),
                }
            })
            .collect();
        lcs(&list)
    }

    /// The frame numbers `OutputUnits` writes of `gop_lcs(49)` when the LCs for which
    /// `lost` holds are lost, and what it skipped.
    fn written_frames(lost: impl Fn(&Lc) -> bool) -> (Vec<u32>, SkippedFrames) {
        let mut r = Reassembler::new(Duration::ZERO);
        gop_lcs(49).iter().filter(|lc| !lost(lc)).for_each(|lc| r.push(lc));
        let mut units = OutputUnits::new();
        let written = r.flush().iter().filter_map(|f| units.unit(f)).map(|u| u.number).collect();
        (written, units.skipped())
    }

    /// Frames 0 to 48 but those of `gone`.
    fn except(gone: std::ops::Range<u32>) -> Vec<u32> {
        (0..49).filter(|n| !gone.contains(n)).collect()
    }

    #[test]
    fn a_lost_idr_writes_nothing_until_the_next_idr() {
        let (written, skipped) = written_frames(|lc| lc.header.frame == 16);
        assert_eq!(written, except(16..32));
        assert_eq!(skipped, SkippedFrames { before_start: 0, reference_lost: 15 });
        // The same when only its slice is lost and its parameter sets arrive.
        let (written, _) = written_frames(|lc| lc.header.frame == 16 && lc.payload.len() > 30);
        assert_eq!(written, except(16..32));
    }

    #[test]
    fn a_lost_base_frame_skips_every_layer_until_the_next_idr() {
        let (written, skipped) = written_frames(|lc| lc.header.frame == 20);
        assert_eq!(written, except(20..32));
        assert_eq!(skipped.reference_lost, 11);
    }

    #[test]
    fn a_lost_reference_of_an_upper_layer_skips_that_layer_and_above_until_a_lower_frame() {
        // Frame 22 (layer 2) is the reference of frame 23 (layer 3); frame 24 (layer 1)
        // renews the references of both layers.
        let (written, skipped) = written_frames(|lc| lc.header.frame == 22);
        assert_eq!(written, except(22..24));
        assert_eq!(skipped.reference_lost, 1);
        // A lost layer-3 frame is nobody's reference.
        let (written, skipped) = written_frames(|lc| lc.header.frame == 21);
        assert_eq!(written, except(21..22));
        assert_eq!(skipped.reference_lost, 0);
    }

    #[test]
    fn a_base_layer_only_viewer_writes_every_base_frame() {
        let (written, skipped) = written_frames(|lc| lc.header.id.layer > LayerId::BASE);
        assert_eq!(written, (0..49).step_by(4).collect::<Vec<_>>());
        assert_eq!(skipped, SkippedFrames::default());
        // And with layer 2 too: the layer-3 frames go, nothing else.
        let (written, _) = written_frames(|lc| lc.header.id.layer == l(3));
        assert_eq!(written, (0..49).step_by(2).collect::<Vec<_>>());
    }

    #[test]
    fn a_viewer_joining_mid_gop_starts_at_the_next_idr_and_counts_what_it_skipped() {
        let (written, skipped) = written_frames(|lc| lc.header.frame < 5);
        assert_eq!(written, except(0..16));
        assert_eq!(skipped, SkippedFrames { before_start: 11, reference_lost: 0 });
    }

    #[test]
    fn a_lost_frame_is_placed_in_the_lowest_layer_whose_numbering_has_room_for_it() {
        let mut r = Reassembler::new(Duration::ZERO);
        gop_lcs(28).iter().filter(|lc| ![6, 11, 20].contains(&lc.header.frame)).for_each(|lc| r.push(lc));
        let lowest: Vec<(u32, Option<u8>)> = r
            .flush()
            .iter()
            .filter(|f| f.state == FrameState::Lost)
            .map(|f| (f.number, f.lowest_layer.map(LayerId::get)))
            .collect();
        // Frame 6 lies between base frames 4 and 8, numbered without a gap, and
        // between layer-2 frames 2 and 10, with one; frame 11 fits only layer 3.
        assert_eq!(lowest, vec![(6, Some(2)), (11, Some(3)), (20, Some(1))]);
    }

    /// With OpenH264's own layers: after any loss, every frame written decodes to the
    /// very picture it decodes to without loss.
    #[cfg(feature = "h264")]
    #[test]
    fn every_frame_written_after_a_loss_decodes_as_without_it() {
        use crate::video::decoder::Decoder;
        use crate::video::droptest::TestClip;
        use crate::video::encoder::EncoderConfig;
        use crate::video::{FrameRate, Picture, Resolution};

        let rate = FrameRate::per_second(30).expect("fps");
        let cfg = EncoderConfig { intra_period: 16, ..EncoderConfig::new(Resolution::QCIF, rate) };
        let clip = TestClip::encode(cfg, 49).expect("encodes");
        let layers: Vec<u8> = clip.units.iter().map(|u| u.layer.get()).collect();
        assert_eq!(layers[..8], [1, 3, 2, 3, 1, 3, 2, 3]);
        let all = clip.lcs();
        // (frame number, picture) of every frame written and decoded.
        let decode = |lost: &dyn Fn(&Lc) -> bool| -> Vec<(u32, Option<Picture>)> {
            let mut r = Reassembler::new(Duration::ZERO);
            all.iter().filter(|lc| !lost(lc)).for_each(|lc| r.push(lc));
            let (mut units, mut decoder) = (OutputUnits::new(), Decoder::new().expect("decoder"));
            let frames = r.flush();
            let written = frames.iter().filter_map(|f| units.unit(f));
            written.map(|u| (u.number, decoder.decode(&u.data).expect("decodes"))).collect()
        };
        let clean: BTreeMap<u32, Picture> =
            decode(&|_| false).into_iter().map(|(n, p)| (n, p.expect("a picture"))).collect();
        assert_eq!(clean.len(), 49);
        let frame = |n: u32| move |lc: &Lc| lc.header.frame == n;
        type Lost<'a> = &'a dyn Fn(&Lc) -> bool;
        let cases: [(&str, Lost, usize); 5] = [
            ("IDR 16 lost", &frame(16), 49 - 16),
            ("base frame 20 lost", &frame(20), 49 - 12),
            ("layer-2 frame 22 lost", &frame(22), 49 - 2),
            ("layer-3 frame 21 lost", &frame(21), 49 - 1),
            ("base layer only", &|lc: &Lc| lc.header.id.layer > LayerId::BASE, 13),
        ];
        for (case, lost, expect) in cases {
            let got = decode(lost);
            assert_eq!(got.len(), expect, "{case}: frames written");
            for (n, picture) in got {
                assert!(picture.as_ref() == clean.get(&n), "{case}: frame {n} decodes as without loss");
            }
        }
    }

    #[test]
    fn a_nal_unit_over_three_lcs_with_any_part_lost_is_dropped_whole() {
        // A 3000-byte slice (LCs 0, 1 and 2) and a small one in LC 3.
        let units = vec![nal_with(5, &[1, 2, 3], 3000), nal_with(5, &[9], 200)];
        let all = lcs(&[(1, units.clone())]);
        assert_eq!(all.len(), 4);
        for lost in 0..3 {
            let mut r = Reassembler::new(Duration::ZERO);
            all.iter().enumerate().filter(|&(i, _)| i != lost).for_each(|(_, lc)| r.push(lc));
            let f = r.flush().pop().expect("frame");
            assert_eq!(f.data, units[1].to_vec(), "LC {lost} lost: only the small slice is whole");
        }
    }

    /// A frame's units of the given sizes, each NAL body a byte unique to it; every
    /// third unit is a prefix NAL unit joined to its slice, as ingest joins them.
    fn numbered_units(sizes: &[usize]) -> Vec<Bytes> {
        let id = |i: usize, k: u8| (i as u8).wrapping_mul(2).wrapping_add(k);
        let unit = |(i, &len): (usize, &usize)| match i % 3 {
            0 => Bytes::from([nal_with(14, &[id(i, 1)], 6), nal_with(1, &[id(i, 2)], len)].concat()),
            _ => nal_with(1, &[id(i, 2)], len),
        };
        sizes.iter().enumerate().map(unit).collect()
    }

    proptest! {
        #[test]
        fn reassembly_emits_only_whole_nal_units_in_order(
            sizes in prop::collection::vec(6usize..4000, 1..12),
            lost in prop::collection::vec(any::<bool>(), 40),
        ) {
            let frame = numbered_units(&sizes);
            let all = lcs(&[(1, frame.clone())]);
            let joined: Vec<u8> = frame.concat();
            let units: Vec<&[u8]> = nal_spans(&joined).map(|r| &joined[r]).collect();
            let mut r = Reassembler::new(Duration::ZERO);
            for (i, lc) in all.iter().enumerate() {
                if !lost[i % lost.len()] {
                    r.push(lc);
                }
            }
            let f = r.flush().into_iter().find(|f| f.state != FrameState::Lost);
            let data = f.map(|f| f.data).unwrap_or_default();
            // Every NAL unit out is one of the units in, whole, in order; a prefix unit
            // (type 14) only right before the slice it came with.
            let mut next = 0;
            let spans: Vec<_> = nal_spans(&data).collect();
            for (k, span) in spans.iter().enumerate() {
                let body = &data[span.clone()];
                let at = units[next..].iter().position(|u| *u == body);
                prop_assert!(at.is_some(), "NAL unit {k} out ({} bytes) is cut or spliced", body.len());
                let i = next + at.unwrap_or(0);
                if body[0] & 0x1F == 14 {
                    let following = spans.get(k + 1).map(|s| &data[s.clone()]);
                    prop_assert!(units.get(i + 1).is_some_and(|u| Some(*u) == following));
                }
                next = i + 1;
            }
            if (0..all.len()).all(|i| !lost[i % lost.len()]) {
                prop_assert_eq!(spans.len(), units.len(), "nothing lost, everything out");
            }
        }
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
