//! TEMPORARY minimal synthetic source (to be replaced by the full one).
use crate::chunk::{phantom_payload, Lc, MediaTime};
use crate::layer::{LayerId, LayerPlan};
use crate::packetize::{Frame, Packetizer};
use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateMode { Vbr, Cbr }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind { Phantom, Pattern }

#[derive(Clone, Debug)]
pub struct SyntheticConfig { pub plan: LayerPlan, pub fps: u32, pub gop: u32, pub mode: RateMode, pub payload: PayloadKind, pub seed: u64 }
impl SyntheticConfig {
    pub fn prototype() -> Self { SyntheticConfig { plan: LayerPlan::prototype(), fps: 30, gop: 64, mode: RateMode::Vbr, payload: PayloadKind::Pattern, seed: 1 } }
    pub fn simulation() -> Self { SyntheticConfig { plan: LayerPlan::simulation(), fps: 30, gop: 64, mode: RateMode::Cbr, payload: PayloadKind::Phantom, seed: 1 } }
}
#[derive(Debug, thiserror::Error)]
#[error("bad synthetic config")]
pub struct SyntheticError;

#[derive(Debug)]
pub struct SyntheticSource { cfg: SyntheticConfig, pk: Packetizer, n: u32 }
impl SyntheticSource {
    pub fn new(cfg: SyntheticConfig) -> Result<Self, SyntheticError> { Ok(SyntheticSource { pk: Packetizer::new(cfg.plan.layers()), cfg, n: 0 }) }
    pub fn plan(&self) -> &LayerPlan { &self.cfg.plan }
    fn layer_of(n: u32) -> u8 { match n % 4 { 0 => 1, 1 => 2, _ => 3 } }
    pub fn next_frame(&mut self) -> Frame {
        let n = self.n; self.n += 1;
        let l = LayerId::new(Self::layer_of(n)).expect("layer");
        let per = match l.get() { 1 | 2 => 7.5, _ => 15.0 };
        let bytes = (self.cfg.plan.rate(l).bytes_per_sec() as f64 / per) as usize;
        let t = MediaTime(n as u64 * 1_000_000 / self.cfg.fps as u64);
        let data = match self.cfg.payload { PayloadKind::Phantom => phantom_payload(bytes.min(1250)), PayloadKind::Pattern => Bytes::from(vec![n as u8; bytes]) };
        let units = if self.cfg.payload == PayloadKind::Phantom { let mut v = vec![]; let mut left = bytes; while left > 0 { let k = left.min(1250); v.push(phantom_payload(k)); left -= k; } v } else { vec![data] };
        Frame { number: n, layer: l, time: t, units }
    }
    pub fn lcs_until(&mut self, until: MediaTime, out: &mut Vec<Lc>) {
        while (self.n as u64) * 1_000_000 / (self.cfg.fps as u64) < until.0 {
            let f = self.next_frame();
            out.extend(self.pk.packetize(&f).expect("ok"));
        }
    }
}
