//! H.264 Annex B byte streams: splitting into NAL units, reading the few header fields
//! layering needs, grouping NAL units into access units (frames), and classifying each
//! frame's layer. Owns every byte-level check on untrusted H.264 input; never decodes
//! pictures.
//!
//! Layer of a frame (DESIGN.md §3), for `L` layers:
//! - with prefix NAL units (type 14, as OpenH264 and SVC encoders emit): `temporal_id + 1`;
//! - else (hierarchical B): I/P/SI/SP slices → 1, B slices with `nal_ref_idc != 0`
//!   (reference B) → 2, B slices with `nal_ref_idc == 0` → 3.
//!
//! Layers above `L` fold into layer `L`: a higher temporal level is never referenced
//! by a lower one, so the merged top layer is still droppable on its own.

use crate::layer::LayerId;
use bytes::Bytes;
use std::io::Read;

/// Largest NAL unit accepted (a 4K intra slice is well below this).
pub const MAX_NAL_LEN: usize = 4 << 20;
/// Most NAL units in one access unit.
pub const MAX_AU_NALS: usize = 4096;
/// Most bytes in one access unit.
pub const MAX_AU_LEN: usize = 16 << 20;

/// Parameter sets kept at most (H.264 allows 32 SPS and 256 PPS ids).
pub const MAX_PARAMETER_SETS: usize = 32 + 256;

/// The start code every NAL unit this crate emits begins with.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[derive(Debug, thiserror::Error)]
pub enum AnnexBError {
    #[error("not an H.264 Annex B stream: data at byte {0} before any start code (00 00 01)")]
    NoStartCode(usize),
    #[error("NAL unit {index}: forbidden_zero_bit is set (corrupt data)")]
    ForbiddenBit { index: u64 },
    #[error("NAL unit {index} is empty")]
    EmptyNal { index: u64 },
    #[error("NAL unit {index} is longer than {MAX_NAL_LEN} bytes")]
    NalTooLarge { index: u64 },
    #[error("access unit {frame} has more than {MAX_AU_NALS} NAL units or {MAX_AU_LEN} bytes")]
    AccessUnitTooLarge { frame: u64 },
    #[error("NAL unit {index} (type {nal_type}): header truncated or invalid ({what})")]
    BadHeader { index: u64, nal_type: u8, what: &'static str },
    #[error("reading the stream: {0}")]
    Io(#[from] std::io::Error),
}

/// The one-byte NAL unit header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NalHeader {
    pub ref_idc: u8,
    pub nal_type: NalType,
}

/// `nal_unit_type`, 0..=31.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NalType(pub u8);

impl NalType {
    pub const SLICE: NalType = NalType(1);
    pub const IDR: NalType = NalType(5);
    pub const SEI: NalType = NalType(6);
    pub const SPS: NalType = NalType(7);
    pub const PPS: NalType = NalType(8);
    pub const AUD: NalType = NalType(9);
    pub const PREFIX: NalType = NalType(14);

    /// A coded slice of the base (AVC) layer.
    pub fn is_vcl(self) -> bool {
        self == NalType::SLICE || self == NalType::IDR
    }

    /// NAL types that, after a slice, start the next access unit (H.264 7.4.1.2.3).
    fn starts_access_unit(self) -> bool {
        matches!(self.0, 6..=9 | 14..=18)
    }
}

/// Parses the NAL header byte; `nal` excludes the start code.
pub fn nal_header(nal: &[u8], index: u64) -> Result<NalHeader, AnnexBError> {
    let &b = nal.first().ok_or(AnnexBError::EmptyNal { index })?;
    if b & 0x80 != 0 {
        return Err(AnnexBError::ForbiddenBit { index });
    }
    Ok(NalHeader { ref_idc: (b >> 5) & 3, nal_type: NalType(b & 0x1F) })
}

/// Slice type, folded modulo 5.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SliceType {
    P,
    B,
    I,
    Sp,
    Si,
}

/// The start of a slice header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SliceStart {
    pub first_mb: u32,
    pub slice_type: SliceType,
}

/// Reads bits of an RBSP (emulation-prevention bytes removed on the fly).
struct BitReader<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u8,
    zeros: u8,
    current: u8,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, byte: 0, bit: 8, zeros: 0, current: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        if self.bit == 8 {
            let mut b = *self.data.get(self.byte)?;
            self.byte += 1;
            // 00 00 03 → the 03 is an emulation-prevention byte.
            if self.zeros >= 2 && b == 3 {
                b = *self.data.get(self.byte)?;
                self.byte += 1;
                self.zeros = 0;
            }
            self.zeros = if b == 0 { self.zeros.saturating_add(1) } else { 0 };
            self.current = b;
            self.bit = 0;
        }
        let v = (self.current >> (7 - self.bit)) & 1;
        self.bit += 1;
        Some(v as u32)
    }

    /// Exp-Golomb `ue(v)`, at most 32 bits of value.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut v: u64 = 1;
        for _ in 0..zeros {
            v = (v << 1) | self.bit()? as u64;
        }
        u32::try_from(v - 1).ok()
    }
}

/// `seq_parameter_set_id` of an SPS or `pic_parameter_set_id` of a PPS (`nal` without
/// its start code); `None` for another type, a truncated unit or an id out of range.
pub fn parameter_set_id(nal_type: NalType, nal: &[u8]) -> Option<u32> {
    let (skip, max) = match nal_type {
        // profile_idc, constraint flags and level_idc come before the SPS id.
        NalType::SPS => (4, 31),
        NalType::PPS => (1, 255),
        _ => return None,
    };
    BitReader::new(nal.get(skip..)?).ue().filter(|&id| id <= max)
}

/// Reads `first_mb_in_slice` and `slice_type` of a slice NAL (type 1 or 5).
pub fn slice_start(nal: &[u8], index: u64) -> Result<SliceStart, AnnexBError> {
    let h = nal_header(nal, index)?;
    let bad = |what| AnnexBError::BadHeader { index, nal_type: h.nal_type.0, what };
    let mut r = BitReader::new(&nal[1..]);
    let first_mb = r.ue().ok_or(bad("first_mb_in_slice"))?;
    let slice_type = match r.ue().ok_or(bad("slice_type"))? {
        t @ 0..=9 => [SliceType::P, SliceType::B, SliceType::I, SliceType::Sp, SliceType::Si][t as usize % 5],
        _ => return Err(bad("slice_type above 9")),
    };
    Ok(SliceStart { first_mb, slice_type })
}

/// `temporal_id` of a prefix NAL unit (type 14) with the SVC extension.
pub fn prefix_temporal_id(nal: &[u8], index: u64) -> Result<u8, AnnexBError> {
    let h = nal_header(nal, index)?;
    if nal.len() < 4 {
        return Err(AnnexBError::BadHeader { index, nal_type: h.nal_type.0, what: "NAL header extension truncated" });
    }
    if nal[1] & 0x80 == 0 {
        return Err(AnnexBError::BadHeader {
            index,
            nal_type: h.nal_type.0,
            what: "not an SVC extension (MVC is not supported)",
        });
    }
    Ok(nal[3] >> 5)
}

/// Splits a byte stream into NAL units (without start codes), reading as needed.
#[derive(Debug)]
pub struct NalReader<R> {
    input: R,
    buf: Vec<u8>,
    /// Start of the current NAL unit's payload in `buf`, once the first start code
    /// has been found.
    start: Option<usize>,
    /// Where the search for the next start code resumes.
    scan: usize,
    eof: bool,
    index: u64,
}

/// Finds `00 00 01` at or after `from`; returns its position.
fn find_start_code(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= buf.len() {
        match buf[i + 2] {
            1 if buf[i] == 0 && buf[i + 1] == 0 => return Some(i),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

const READ_CHUNK: usize = 64 * 1024;

impl<R: Read> NalReader<R> {
    pub fn new(input: R) -> NalReader<R> {
        NalReader { input, buf: Vec::new(), start: None, scan: 0, eof: false, index: 0 }
    }

    /// Offset of the first non-zero byte (before any start code has been found).
    fn first_data(&self) -> usize {
        self.buf.iter().position(|&b| b != 0).unwrap_or(0)
    }

    /// NAL units returned so far.
    pub fn count(&self) -> u64 {
        self.index
    }

    fn fill(&mut self) -> Result<(), AnnexBError> {
        // Drop what has been consumed before growing.
        let keep_from = self.start.unwrap_or(self.scan.saturating_sub(3)).min(self.scan.saturating_sub(3));
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.scan -= keep_from;
            self.start = self.start.map(|s| s - keep_from);
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let n = loop {
            match self.input.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e.into());
                }
            }
        };
        self.buf.truncate(old + n);
        self.eof = n == 0;
        Ok(())
    }

    /// The next NAL unit, without start code or trailing zero bytes; `None` at the end.
    pub fn next_nal(&mut self) -> Result<Option<Bytes>, AnnexBError> {
        loop {
            let Some(start) = self.start else {
                // Looking for the first start code; only zero bytes may precede it.
                match find_start_code(&self.buf, 0) {
                    Some(p) if self.buf[..p].iter().all(|&b| b == 0) => {
                        self.start = Some(p + 3);
                        self.scan = p + 3;
                        continue;
                    }
                    Some(_) => return Err(AnnexBError::NoStartCode(self.first_data())),
                    None if self.buf.iter().any(|&b| b != 0) && self.buf.len() >= 3 => {
                        return Err(AnnexBError::NoStartCode(self.first_data()));
                    }
                    None if self.eof => {
                        return if self.buf.iter().all(|&b| b == 0) {
                            Ok(None)
                        } else {
                            Err(AnnexBError::NoStartCode(self.first_data()))
                        };
                    }
                    None => {
                        self.fill()?;
                        continue;
                    }
                }
            };
            let end = match find_start_code(&self.buf, self.scan) {
                Some(p) => Some(p),
                None if self.eof => {
                    if start >= self.buf.len() {
                        return Ok(None);
                    }
                    Some(self.buf.len())
                }
                None => None,
            };
            let Some(end) = end else {
                if self.buf.len() - start > MAX_NAL_LEN {
                    return Err(AnnexBError::NalTooLarge { index: self.index });
                }
                self.scan = self.buf.len().saturating_sub(2).max(start);
                self.fill()?;
                continue;
            };
            let mut nal_end = end;
            while nal_end > start && self.buf[nal_end - 1] == 0 {
                nal_end -= 1;
            }
            if nal_end - start > MAX_NAL_LEN {
                return Err(AnnexBError::NalTooLarge { index: self.index });
            }
            let nal = Bytes::copy_from_slice(&self.buf[start..nal_end]);
            let at_end = end == self.buf.len();
            self.start = Some(if at_end { end } else { end + 3 });
            self.scan = self.start.unwrap_or(end);
            let index = self.index;
            self.index += 1;
            if nal.is_empty() {
                if at_end {
                    return Ok(None);
                }
                return Err(AnnexBError::EmptyNal { index });
            }
            nal_header(&nal, index)?;
            return Ok(Some(nal));
        }
    }
}

/// One coded frame (access unit) of a layered stream, in decode order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    pub layer: LayerId,
    /// Holds an IDR slice: decoding can start here (with the SPS/PPS before it).
    pub idr: bool,
    /// NAL units, each with a 4-byte start code. A prefix NAL unit is joined to the
    /// slice it describes, so that the two travel in one LC.
    pub units: Vec<Bytes>,
}

impl AccessUnit {
    pub fn len(&self) -> usize {
        self.units.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The frame as one Annex B byte string.
    pub fn to_annexb(&self) -> Vec<u8> {
        self.units.iter().flat_map(|u| u.iter().copied()).collect()
    }
}

/// Prepends the 4-byte start code to NAL units (each without one) and joins them.
pub fn with_start_codes<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Bytes::from(out)
}

/// Classifies one access unit from its NAL units (without start codes).
fn classify(nals: &[Bytes], first_index: u64, layers: usize) -> Result<Option<(LayerId, bool)>, AnnexBError> {
    let mut tid = None;
    let mut first_slice = None;
    let mut idr = false;
    for (i, nal) in nals.iter().enumerate() {
        let index = first_index + i as u64;
        let h = nal_header(nal, index)?;
        if h.nal_type == NalType::PREFIX && tid.is_none() {
            tid = Some(prefix_temporal_id(nal, index)?);
        }
        if h.nal_type.is_vcl() {
            idr |= h.nal_type == NalType::IDR;
            if first_slice.is_none() {
                first_slice = Some((h, slice_start(nal, index)?));
            }
        }
    }
    let Some((h, slice)) = first_slice else { return Ok(None) };
    let level = match (tid, slice.slice_type) {
        (Some(t), _) => t as usize,
        (None, SliceType::B) if h.ref_idc != 0 => 1,
        (None, SliceType::B) => 2,
        (None, _) => 0,
    };
    Ok(Some((LayerId::from_index(level.min(layers.max(1) - 1)), idr)))
}

/// Reads an Annex B stream as layered access units.
#[derive(Debug)]
pub struct AnnexBReader<R> {
    nals: NalReader<R>,
    layers: usize,
    /// NAL units already read that belong to the next access unit.
    pending: std::collections::VecDeque<Bytes>,
    frames: u64,
    /// Latest SPS and PPS by (type, id), with start codes: put before an IDR that
    /// comes without them (x264 writes them once, at the start), so a viewer that
    /// joins later can start at any IDR.
    parameter_sets: std::collections::BTreeMap<(u8, u32), Bytes>,
}

impl<R: Read> AnnexBReader<R> {
    /// Frames are classified into `layers` layers (`1..=MAX_LAYERS`).
    pub fn new(input: R, layers: usize) -> AnnexBReader<R> {
        AnnexBReader {
            nals: NalReader::new(input),
            layers: layers.clamp(1, crate::layer::MAX_LAYERS),
            pending: Default::default(),
            frames: 0,
            parameter_sets: Default::default(),
        }
    }

    fn next_nal(&mut self) -> Result<Option<Bytes>, AnnexBError> {
        match self.pending.pop_front() {
            Some(n) => Ok(Some(n)),
            None => self.nals.next_nal(),
        }
    }

    /// Is `nal` a slice that continues the current picture (first_mb_in_slice > 0)?
    fn continues_picture(nal: &[u8], index: u64) -> Result<bool, AnnexBError> {
        let h = nal_header(nal, index)?;
        Ok(h.nal_type.is_vcl() && slice_start(nal, index)?.first_mb != 0)
    }

    /// The next access unit, `None` at the end of the stream. Trailing NAL units
    /// without a slice are ignored.
    pub fn next_unit(&mut self) -> Result<Option<AccessUnit>, AnnexBError> {
        let mut nals: Vec<Bytes> = Vec::new();
        let mut bytes = 0;
        let first_index = self.nals.count().saturating_sub(self.pending.len() as u64);
        let mut has_vcl = false;
        while let Some(nal) = self.next_nal()? {
            // Error positions are approximate (NAL units read ahead are not counted).
            let index = self.nals.count().saturating_sub(1);
            let h = nal_header(&nal, index)?;
            let mut take = vec![nal];
            if has_vcl && h.nal_type == NalType::PREFIX {
                // A prefix NAL unit belongs to the slice after it: it starts a new
                // picture only if that slice does.
                match self.next_nal()? {
                    Some(next) if Self::continues_picture(&next, index + 1)? => take.push(next),
                    next => {
                        self.pending.extend(take.into_iter().chain(next));
                        break;
                    }
                }
            } else if has_vcl
                && (h.nal_type.starts_access_unit()
                    || (h.nal_type.is_vcl() && !Self::continues_picture(&take[0], index)?))
            {
                self.pending.extend(take);
                break;
            }
            for nal in take {
                has_vcl |= nal_header(&nal, index)?.nal_type.is_vcl();
                bytes += nal.len() + START_CODE.len();
                nals.push(nal);
            }
            if nals.len() > MAX_AU_NALS || bytes > MAX_AU_LEN {
                return Err(AnnexBError::AccessUnitTooLarge { frame: self.frames });
            }
        }
        let Some((layer, idr)) = classify(&nals, first_index, self.layers)? else { return Ok(None) };
        self.frames += 1;
        // Keep each prefix NAL with the slice after it.
        let mut units = Vec::with_capacity(nals.len());
        let mut i = 0;
        while i < nals.len() {
            let is_prefix = nals[i].first().is_some_and(|b| b & 0x1F == NalType::PREFIX.0);
            if is_prefix && i + 1 < nals.len() {
                units.push(with_start_codes([&nals[i][..], &nals[i + 1][..]]));
                i += 2;
            } else {
                units.push(with_start_codes([&nals[i][..]]));
                i += 1;
            }
        }
        let carries = |t: NalType| nals.iter().any(|n| NalType(n[0] & 0x1F) == t);
        let missing: Vec<u8> = [NalType::SPS, NalType::PPS].into_iter().filter(|&t| !carries(t)).map(|t| t.0).collect();
        for nal in &nals {
            let t = NalType(nal[0] & 0x1F);
            if let Some(id) = parameter_set_id(t, nal)
                && (self.parameter_sets.len() < MAX_PARAMETER_SETS || self.parameter_sets.contains_key(&(t.0, id)))
            {
                self.parameter_sets.insert((t.0, id), with_start_codes([&nal[..]]));
            }
        }
        if idr {
            let known = self.parameter_sets.iter().filter(|((t, _), _)| missing.contains(t)).map(|(_, n)| n.clone());
            units.splice(0..0, known);
        }
        Ok(Some(AccessUnit { layer, idr, units }))
    }
}

/// Splits a whole in-memory Annex B stream into NAL units (without start codes).
pub fn split_nals(data: &[u8]) -> Result<Vec<Bytes>, AnnexBError> {
    let mut r = NalReader::new(data);
    let mut out = Vec::new();
    while let Some(n) = r.next_nal()? {
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes `ue(v)` values MSB-first, then the stop bit, padded.
    fn ue_bits(values: &[u32]) -> Vec<u8> {
        let mut bits = Vec::new();
        for &v in values {
            let x = v as u64 + 1;
            let n = 64 - x.leading_zeros();
            bits.extend(std::iter::repeat_n(0u8, n as usize - 1));
            for i in (0..n).rev() {
                bits.push(((x >> i) & 1) as u8);
            }
        }
        bits.push(1);
        while bits.len() % 8 != 0 {
            bits.push(0);
        }
        bits.chunks(8).map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | b)).collect()
    }

    fn slice(ref_idc: u8, nal_type: u8, first_mb: u32, slice_type: u32) -> Vec<u8> {
        let mut v = vec![(ref_idc << 5) | nal_type];
        v.extend(ue_bits(&[first_mb, slice_type, 0]));
        v.extend_from_slice(&[0x88, 0x44]);
        v
    }

    fn stream(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter().flat_map(|n| START_CODE.iter().copied().chain(n.iter().copied())).collect()
    }

    fn read_all(data: &[u8], layers: usize) -> Result<Vec<AccessUnit>, AnnexBError> {
        let mut r = AnnexBReader::new(data, layers);
        let mut out = Vec::new();
        while let Some(au) = r.next_unit()? {
            out.push(au);
        }
        Ok(out)
    }

    #[test]
    fn splits_three_and_four_byte_start_codes_and_strips_trailing_zeros() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 9];
        let nals = split_nals(&data).expect("valid");
        assert_eq!(
            nals,
            vec![Bytes::from_static(&[0x67, 1, 2]), Bytes::from_static(&[0x68, 3]), Bytes::from_static(&[0x65, 9])]
        );
    }

    #[test]
    fn reads_across_small_chunks() {
        // A reader that hands out one byte at a time still finds every NAL unit.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let data = stream(&[vec![0x67, 1], slice(3, 5, 0, 7), vec![0x41, 0x9a, 0, 0, 3, 1, 2]]);
        let mut r = NalReader::new(Trickle(&data));
        let mut n = Vec::new();
        while let Some(x) = r.next_nal().expect("valid") {
            n.push(x);
        }
        assert_eq!(n.len(), 3);
        assert_eq!(&n[2][..], &[0x41, 0x9a, 0, 0, 3, 1, 2]);
    }

    #[test]
    fn hierarchical_b_layers_from_ref_idc_and_slice_type() {
        // I (idr), P, B-ref, b-nonref, b-nonref: one slice each, first_mb 0.
        let data = stream(&[
            vec![0x67, 0x42],
            vec![0x68, 0xce],
            slice(3, 5, 0, 7),
            slice(2, 1, 0, 5),
            slice(2, 1, 0, 6),
            slice(0, 1, 0, 6),
            slice(0, 1, 0, 1),
        ]);
        let aus = read_all(&data, 3).expect("valid");
        let layers: Vec<u8> = aus.iter().map(|a| a.layer.get()).collect();
        assert_eq!(layers, vec![1, 1, 2, 3, 3]);
        assert!(aus[0].idr && !aus[1].idr);
        assert_eq!(aus[0].units.len(), 3, "SPS and PPS belong to the IDR frame");
        // Two layers: non-reference B folds into layer 2.
        let two: Vec<u8> = read_all(&data, 2).expect("valid").iter().map(|a| a.layer.get()).collect();
        assert_eq!(two, vec![1, 1, 2, 2, 2]);
    }

    #[test]
    fn an_idr_without_parameter_sets_gets_the_latest_ones() {
        // x264 writes SPS/PPS once: the second IDR must carry them for a late joiner.
        let (sps, pps) = (vec![0x67, 0x42, 0, 0x1E, 0x80], vec![0x68, 0xCE]);
        let data = stream(&[
            sps.clone(),
            pps.clone(),
            slice(3, 5, 0, 7),
            slice(2, 1, 0, 5),
            slice(3, 5, 0, 7),
            slice(2, 1, 0, 5),
        ]);
        let aus = read_all(&data, 3).expect("valid");
        let with_codes = |n: &[u8]| with_start_codes([n]);
        assert_eq!(aus[0].units[..2], [with_codes(&sps), with_codes(&pps)]);
        assert_eq!(aus[2].units.len(), 3, "SPS and PPS put before the second IDR");
        assert_eq!(aus[2].units[..2], [with_codes(&sps), with_codes(&pps)]);
        assert_eq!(aus[3].units.len(), 1, "a P frame gets nothing");
    }

    #[test]
    fn prefix_nal_temporal_id_decides_layer_and_travels_with_its_slice() {
        // Header extension, then rbsp trailing bits (a NAL unit never ends in 0x00).
        let prefix = |tid: u8| vec![0x6e, 0x80 | 0x40, 0x00, tid << 5, 0x80];
        let data = stream(&[
            prefix(0),
            slice(3, 5, 0, 7),
            prefix(2),
            slice(0, 1, 0, 5),
            prefix(1),
            slice(2, 1, 0, 5),
            prefix(1),
            slice(2, 1, 40, 5),
        ]);
        let aus = read_all(&data, 3).expect("valid");
        assert_eq!(aus.iter().map(|a| a.layer.get()).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert_eq!(aus[2].units.len(), 2, "second slice (first_mb 40) stays in its frame");
        assert_eq!(&aus[1].units[0][..9], &[0, 0, 0, 1, 0x6e, 0xc0, 0, 0x40, 0x80]);
    }

    #[test]
    fn multi_slice_frames_split_on_first_mb_zero() {
        let data = stream(&[slice(3, 5, 0, 7), slice(3, 5, 50, 7), slice(2, 1, 0, 5), slice(2, 1, 50, 5)]);
        let aus = read_all(&data, 3).expect("valid");
        assert_eq!(aus.len(), 2);
        assert!(aus.iter().all(|a| a.units.len() == 2));
    }

    #[test]
    fn emulation_prevention_is_skipped_in_headers() {
        // first_mb_in_slice = 0 → bit 1; then 00 00 03 inside the header bits.
        // Build: ue(0)=1, ue(65534) = 15 zeros + 16 bits → contains 00 00 runs.
        let mut raw = ue_bits(&[0, 0x7FFF, 2]);
        // Insert emulation prevention where two zero bytes are followed by <= 3.
        let mut escaped = vec![0x41];
        let mut zeros = 0;
        for b in raw.drain(..) {
            if zeros >= 2 && b <= 3 {
                escaped.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            escaped.push(b);
        }
        let mut r = BitReader::new(&escaped[1..]);
        assert_eq!((r.ue(), r.ue(), r.ue()), (Some(0), Some(0x7FFF), Some(2)));
    }

    #[test]
    fn malformed_streams_give_typed_errors() {
        assert!(matches!(read_all(b"garbage!", 3), Err(AnnexBError::NoStartCode(_))));
        assert!(matches!(read_all(&[0, 0, 1, 0x85, 1], 3), Err(AnnexBError::ForbiddenBit { .. })));
        assert!(matches!(read_all(&[0, 0, 1, 0, 0, 1, 0x65], 3), Err(AnnexBError::EmptyNal { .. })));
        // A slice whose header ends before slice_type.
        assert!(matches!(read_all(&[0, 0, 1, 0x65, 0x80], 3), Err(AnnexBError::BadHeader { .. })));
        // slice_type 12 does not exist.
        let bad_type = stream(&[{
            let mut v = vec![0x65];
            v.extend(ue_bits(&[0, 12]));
            v
        }]);
        assert!(matches!(read_all(&bad_type, 3), Err(AnnexBError::BadHeader { what: "slice_type above 9", .. })));
        // Truncated prefix NAL.
        assert!(matches!(
            read_all(&stream(&[vec![0x6e, 0x80], slice(3, 5, 0, 7)]), 3),
            Err(AnnexBError::BadHeader { .. })
        ));
        // Empty input and input of zeros are empty streams, not errors.
        assert_eq!(read_all(&[], 3).expect("empty").len(), 0);
        assert_eq!(read_all(&[0, 0], 3).expect("zeros").len(), 0);
        // Parameter sets without any slice: no frame.
        assert_eq!(read_all(&stream(&[vec![0x67, 1]]), 3).expect("no slice").len(), 0);
    }

    #[test]
    fn oversized_nal_is_refused_without_reading_everything_into_one_unit() {
        let mut data = vec![0, 0, 1, 0x65];
        data.extend(std::iter::repeat_n(0xAB, MAX_NAL_LEN + 10));
        assert!(matches!(read_all(&data, 3), Err(AnnexBError::NalTooLarge { .. })));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_all(&data, 3);
        }

        #[test]
        fn random_nal_payloads_after_start_codes_never_panic(
            nals in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..20)
        ) {
            let _ = read_all(&stream(&nals), 3);
        }
    }
}
