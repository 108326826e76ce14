//! The built-in layered video source: a synthetic stream with the structure of
//! H.264 temporal scalability (hierarchical B, DESIGN.md §3) and the rates of a layer plan.
//!
//! Frames follow dyadic mini-GOPs of `M = 2^(L-1)` frames. With 3 layers (M = 4) the
//! display order is I0 b1 B2 b3 P4 b5 B6 b7 P8 … and the decode order I0 P4 B2 b1 b3
//! P8 B6 b5 b7 …: I/P frames are layer 1, reference B frames layer 2, non-reference b
//! frames layer 3. In general a frame at display index d is layer 1 when `d % M == 0`
//! and layer `L - trailing_zeros(d % M)` otherwise. Frames are numbered in decode
//! order and emitted at their decode timestamp (`n / fps`); an LC's media time is its
//! frame's display time, up to `M - 1` frame intervals later.
//!
//! VBR: each layer's frame sizes vary (I frames four times a P frame, ±20 % jitter)
//! around the mean that makes the layer's long-run rate equal the plan. CBR (the
//! simulator's video): a per-layer byte credit makes every LC exactly 1250 bytes and
//! every layer's rate exact; a frame whose credit is below one LC carries no data.

use crate::chunk::{Lc, MAX_LC_PAYLOAD, MediaTime, phantom_payload};
use crate::layer::{LayerId, LayerPlan};
use crate::packetize::{Frame, Packetizer};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RateMode {
    Vbr,
    Cbr,
}

/// What LC payloads hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// Zero bytes that allocate nothing: the simulator only needs sizes.
    Phantom,
    /// Deterministic bytes derived from frame number and offset, checkable end to end.
    Pattern,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    pub plan: LayerPlan,
    pub fps: u32,
    /// Frames per GOP (one I frame each); a multiple of the mini-GOP.
    pub gop: u32,
    pub mode: RateMode,
    pub payload: PayloadKind,
    pub seed: u64,
}

impl SyntheticConfig {
    /// The paper's prototype video: 290/230/100 kbps VBR, 30 fps, 64-frame GOPs.
    pub fn prototype() -> SyntheticConfig {
        SyntheticConfig {
            plan: LayerPlan::prototype(),
            fps: 30,
            gop: 64,
            mode: RateMode::Vbr,
            payload: PayloadKind::Pattern,
            seed: 1,
        }
    }

    /// The paper's simulated video: 3 x 200 kbps CBR in 1250-byte LCs.
    pub fn simulation() -> SyntheticConfig {
        SyntheticConfig {
            plan: LayerPlan::simulation(),
            fps: 30,
            gop: 64,
            mode: RateMode::Cbr,
            payload: PayloadKind::Phantom,
            seed: 1,
        }
    }

    /// Frames per mini-GOP: 2^(L-1).
    pub fn mini_gop(&self) -> u32 {
        1 << (self.plan.layers() - 1)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyntheticError {
    #[error("frame rate must be 1 to 1000 fps, got {0}")]
    Fps(u32),
    #[error("GOP of {gop} frames is not a positive multiple of the {mini}-frame mini-GOP")]
    Gop { gop: u32, mini: u32 },
    #[error(
        "layer {layer}'s frames would need up to {lcs} LCs each (at most {max}): lower its rate or raise the frame rate"
    )]
    FrameTooLarge { layer: u8, lcs: u64, max: u64 },
}

/// Most LCs one frame may be cut into (the LC header's part count is 16 bits).
const MAX_FRAME_LCS: u64 = u16::MAX as u64;

/// An endless layered stream.
#[derive(Debug)]
pub struct SyntheticSource {
    cfg: SyntheticConfig,
    rng: ChaCha8Rng,
    packetizer: Packetizer,
    /// Next frame in decode order.
    next: u32,
    /// CBR byte credit per layer, in units of 1 / (fps * frames-per-mini-GOP(l)) bytes.
    credit: Vec<u64>,
}

impl SyntheticSource {
    pub fn new(cfg: SyntheticConfig) -> Result<SyntheticSource, SyntheticError> {
        if cfg.fps == 0 || cfg.fps > 1000 {
            return Err(SyntheticError::Fps(cfg.fps));
        }
        let mini = cfg.mini_gop();
        if cfg.gop == 0 || !cfg.gop.is_multiple_of(mini) {
            return Err(SyntheticError::Gop { gop: cfg.gop, mini });
        }
        for li in 0..cfg.plan.layers() {
            let layer = LayerId::from_index(li);
            let per_mini = if li == 0 { 1 } else { 1u64 << (li - 1) };
            let bytes_per_sec = cfg.plan.rate(layer).bits_per_sec() / 8;
            // The largest frame: an I frame (4x a P frame's share) with +20 % jitter.
            let mean = bytes_per_sec * u64::from(mini) / (u64::from(cfg.fps) * per_mini);
            let lcs = (mean * 5).div_ceil(MAX_LC_PAYLOAD as u64) + 1;
            if lcs > MAX_FRAME_LCS {
                return Err(SyntheticError::FrameTooLarge { layer: layer.get(), lcs, max: MAX_FRAME_LCS });
            }
        }
        Ok(SyntheticSource {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            packetizer: Packetizer::new(cfg.plan.layers()),
            next: 0,
            credit: vec![0; cfg.plan.layers()],
            cfg,
        })
    }

    pub fn plan(&self) -> &LayerPlan {
        &self.cfg.plan
    }

    pub fn frames_per_second(&self) -> u32 {
        self.cfg.fps
    }

    /// Display index of the frame at decode position `n`.
    fn display_index(&self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let m = self.cfg.mini_gop();
        let k = n - 1;
        let (group, pos) = (k / m, k % m);
        // pos 0 is the anchor (I/P) at the end of the mini-GOP; the rest walk the
        // hierarchy level by level: M/2, then M/4 and 3M/4, then …
        let offset = if pos == 0 {
            m
        } else {
            let level = 31 - pos.leading_zeros(); // pos in [2^level, 2^(level+1))
            let step = m >> level;
            step / 2 + (pos - (1 << level)) * step
        };
        group * m + offset
    }

    /// Layer of the frame at display index `d`.
    fn layer_of(&self, d: u32) -> LayerId {
        let m = self.cfg.mini_gop();
        let r = d % m;
        let layers = self.cfg.plan.layers() as u32;
        LayerId::from_index(if r == 0 { 0 } else { (layers - 1 - r.trailing_zeros()) as usize })
    }

    /// Layer-l frames in one mini-GOP.
    fn frames_per_mini(&self, layer: LayerId) -> u32 {
        if layer.index() == 0 { 1 } else { 1 << (layer.index() - 1) }
    }

    fn frame_bytes(&mut self, d: u32, layer: LayerId) -> usize {
        let per_mini = self.frames_per_mini(layer) as u64;
        let m = self.cfg.mini_gop() as u64;
        let fps = self.cfg.fps as u64;
        let layer_bytes_per_sec = self.cfg.plan.rate(layer).bits_per_sec() / 8;
        match self.cfg.mode {
            RateMode::Cbr => {
                // Exact integer accounting: a frame adds rate*M units, an LC costs
                // MAX_LC_PAYLOAD * fps * per_mini units.
                let lc_units = MAX_LC_PAYLOAD as u64 * fps * per_mini;
                let c = &mut self.credit[layer.index()];
                *c += layer_bytes_per_sec * m;
                let lcs = *c / lc_units;
                *c -= lcs * lc_units;
                lcs as usize * MAX_LC_PAYLOAD
            }
            RateMode::Vbr => {
                let mean = layer_bytes_per_sec as f64 * m as f64 / (fps * per_mini) as f64;
                let base = if layer.index() == 0 {
                    // One I (4 units) and gop/M - 1 P frames (1 unit) per GOP.
                    let anchors = (self.cfg.gop / self.cfg.mini_gop()) as f64;
                    let p = mean * anchors / (anchors - 1.0 + 4.0);
                    if d.is_multiple_of(self.cfg.gop) { 4.0 * p } else { p }
                } else {
                    mean
                };
                let jitter = 1.0 + 0.2 * self.rng.random_range(-1.0..1.0);
                (base * jitter).round().max(1.0) as usize
            }
        }
    }

    fn payload(&self, n: u32, bytes: usize) -> Vec<Bytes> {
        match self.cfg.payload {
            PayloadKind::Phantom => {
                let mut units = Vec::with_capacity(bytes.div_ceil(MAX_LC_PAYLOAD));
                let mut left = bytes;
                while left > 0 {
                    let k = left.min(MAX_LC_PAYLOAD);
                    units.push(phantom_payload(k));
                    left -= k;
                }
                units
            }
            PayloadKind::Pattern => vec![Bytes::from((0..bytes).map(|i| pattern_byte(n, i)).collect::<Vec<u8>>())],
        }
    }

    /// The next frame in decode order (never ends). A CBR frame may have no units.
    pub fn next_frame(&mut self) -> Frame {
        let n = self.next;
        self.next += 1;
        let d = self.display_index(n);
        let layer = self.layer_of(d);
        let bytes = self.frame_bytes(d, layer);
        let time = MediaTime(d as u64 * 1_000_000 / self.cfg.fps as u64);
        Frame { number: n, layer, time, units: self.payload(n, bytes) }
    }

    /// Decode timestamp of the next frame.
    fn next_decode_time(&self) -> MediaTime {
        MediaTime(self.next as u64 * 1_000_000 / self.cfg.fps as u64)
    }

    /// Appends the LCs of every frame whose decode timestamp is before `until`.
    pub fn lcs_until(&mut self, until: MediaTime, out: &mut Vec<Lc>) {
        while self.next_decode_time() < until {
            let frame = self.next_frame();
            out.extend(self.packetizer.packetize(&frame).expect("source layers match the packetizer"));
        }
    }
}

/// Byte `i` of frame `n` in `Pattern` payloads.
pub fn pattern_byte(n: u32, i: usize) -> u8 {
    (n.wrapping_mul(31) as usize + i.wrapping_mul(7)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Kbps;

    #[test]
    fn oversized_frames_are_refused() {
        let mut cfg = SyntheticConfig::prototype();
        cfg.plan = LayerPlan::new(vec![Kbps(50_000), Kbps(30_000), Kbps(20_000)]).expect("at the plan bound");
        cfg.fps = 1;
        cfg.gop = 4;
        assert!(matches!(SyntheticSource::new(cfg.clone()), Err(SyntheticError::FrameTooLarge { layer: 1, .. })));
        cfg.fps = 30;
        let mut source = SyntheticSource::new(cfg).expect("30 fps keeps frames small enough");
        let mut out = Vec::new();
        source.lcs_until(MediaTime(100_000), &mut out);
        assert!(!out.is_empty());
    }

    /// Display index of a 30 fps media time.
    fn display_of(micros: u64) -> u64 {
        (micros * 30 + 500_000) / 1_000_000
    }

    fn rates_over(cfg: SyntheticConfig, secs: u64) -> Vec<f64> {
        let layers = cfg.plan.layers();
        let mut s = SyntheticSource::new(cfg).expect("valid");
        let mut lcs = vec![];
        s.lcs_until(MediaTime(secs * 1_000_000), &mut lcs);
        let mut bytes = vec![0u64; layers];
        for lc in &lcs {
            bytes[lc.header.id.layer.index()] += lc.payload.len() as u64;
        }
        bytes.iter().map(|b| *b as f64 * 8.0 / secs as f64 / 1000.0).collect()
    }

    #[test]
    fn vbr_rates_within_five_percent_of_plan_over_60s() {
        for seed in [1, 2, 3, 42] {
            let cfg = SyntheticConfig { seed, ..SyntheticConfig::prototype() };
            let plan = cfg.plan.clone();
            for (got, want) in rates_over(cfg, 60).iter().zip(plan.rates()) {
                let rel = (got - want.0 as f64).abs() / want.0 as f64;
                assert!(rel < 0.05, "seed {seed}: {got:.1} vs {} kbps", want.0);
            }
        }
    }

    #[test]
    fn cbr_gives_exactly_twenty_full_lcs_per_second_per_layer() {
        let mut s = SyntheticSource::new(SyntheticConfig::simulation()).expect("valid");
        let mut lcs = vec![];
        s.lcs_until(MediaTime(60_000_000), &mut lcs);
        assert!(lcs.iter().all(|lc| lc.payload.len() == MAX_LC_PAYLOAD));
        // 20 LC/s exactly; decode order puts a mini-GOP's anchor first, so a cut
        // may include up to one extra frame (at most 3 LCs) of a layer.
        for l in 0..3 {
            let n = lcs.iter().filter(|lc| lc.header.id.layer.index() == l).count() as i64;
            assert!((n - 1200).abs() <= 3, "layer {}: {n} LCs in 60 s", l + 1);
        }
    }

    #[test]
    fn hierarchical_b_layers_in_decode_order() {
        let mut s = SyntheticSource::new(SyntheticConfig::prototype()).expect("valid");
        let frames: Vec<(u32, u8, u64)> = (0..9)
            .map(|_| {
                let f = s.next_frame();
                (f.number, f.layer.get(), f.time.0)
            })
            .collect();
        let display: Vec<u64> = frames.iter().map(|f| display_of(f.2)).collect();
        assert_eq!(display, vec![0, 4, 2, 1, 3, 8, 6, 5, 7]);
        let layers: Vec<u8> = frames.iter().map(|f| f.1).collect();
        assert_eq!(layers, vec![1, 1, 2, 3, 3, 1, 2, 3, 3]);
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn i_frames_are_larger_and_start_each_gop() {
        let cfg = SyntheticConfig { gop: 8, ..SyntheticConfig::prototype() };
        let mut s = SyntheticSource::new(cfg).expect("valid");
        let frames: Vec<Frame> = (0..40).map(|_| s.next_frame()).collect();
        let size = |d: u64| frames.iter().find(|f| display_of(f.time.0) == d).map(Frame::len).expect("present");
        assert!(size(8) > 2 * size(4), "I frame at 8 should dwarf P frame at 4");
        assert!(size(16) > 2 * size(12));
    }

    #[test]
    fn other_layer_counts_generalise() {
        let one =
            SyntheticConfig { plan: LayerPlan::new(vec![Kbps(500)]).expect("plan"), ..SyntheticConfig::prototype() };
        let mut s = SyntheticSource::new(one).expect("valid");
        assert!((0..10).all(|_| s.next_frame().layer == LayerId::BASE));
        let four =
            SyntheticConfig { plan: LayerPlan::new(vec![Kbps(200); 4]).expect("plan"), ..SyntheticConfig::prototype() };
        let mut s = SyntheticSource::new(four).expect("valid");
        let layers: Vec<u8> = (0..9).map(|_| s.next_frame().layer.get()).collect();
        // Display order of the first mini-GOP of 8: I0, P8, B4, B2, B6, b1, b3, b5, b7.
        assert_eq!(layers, vec![1, 1, 2, 3, 3, 4, 4, 4, 4]);
    }

    #[test]
    fn lcs_are_bounded_and_never_span_frames() {
        let mut s = SyntheticSource::new(SyntheticConfig::prototype()).expect("valid");
        let mut lcs = vec![];
        s.lcs_until(MediaTime(5_000_000), &mut lcs);
        assert!(lcs.iter().all(|lc| !lc.payload.is_empty() && lc.payload.len() <= MAX_LC_PAYLOAD));
        for lc in &lcs {
            let n = lc.header.frame;
            let offset: usize = lcs
                .iter()
                .filter(|o| o.header.frame == n && o.header.part < lc.header.part)
                .map(|o| o.payload.len())
                .sum();
            assert!(lc.payload.iter().enumerate().all(|(i, &b)| b == pattern_byte(n, offset + i)));
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let run = |seed| {
            let mut s = SyntheticSource::new(SyntheticConfig { seed, ..SyntheticConfig::prototype() }).expect("valid");
            (0..100).map(|_| s.next_frame().len()).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn phantom_payloads_do_not_allocate() {
        let mut s = SyntheticSource::new(SyntheticConfig::simulation()).expect("valid");
        let mut lcs = vec![];
        s.lcs_until(MediaTime(1_000_000), &mut lcs);
        assert!(lcs.iter().all(|lc| lc.payload.as_ptr() == phantom_payload(1).as_ptr()));
    }

    #[test]
    fn invalid_configs_are_errors() {
        let bad_fps = SyntheticConfig { fps: 0, ..SyntheticConfig::prototype() };
        assert_eq!(SyntheticSource::new(bad_fps).err(), Some(SyntheticError::Fps(0)));
        let bad_gop = SyntheticConfig { gop: 6, ..SyntheticConfig::prototype() };
        assert_eq!(SyntheticSource::new(bad_gop).err(), Some(SyntheticError::Gop { gop: 6, mini: 4 }));
    }
}
