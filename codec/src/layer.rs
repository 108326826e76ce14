//! Layer identities and the layer plan: per-layer rates and cumulative rates R(l).
//!
//! Owns the arithmetic the receiver scheduler needs (threshold layer l_n); knows
//! nothing about networks.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Most layers a stream may have. Bounds every per-layer table and wire field.
pub const MAX_LAYERS: usize = 8;

/// A layer number, 1-based: layer 1 is the base layer, higher layers refine lower ones.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LayerId(u8);

impl LayerId {
    pub const BASE: LayerId = LayerId(1);

    /// `n` in `1..=MAX_LAYERS`, else `None`.
    pub const fn new(n: u8) -> Option<LayerId> {
        if n >= 1 && n as usize <= MAX_LAYERS { Some(LayerId(n)) } else { None }
    }

    /// The layer at 0-based `index` (`index < MAX_LAYERS`).
    pub fn from_index(index: usize) -> LayerId {
        assert!(index < MAX_LAYERS, "layer index {index} out of range");
        LayerId(index as u8 + 1)
    }

    /// 1-based number.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// 0-based index for per-layer tables.
    pub const fn index(self) -> usize {
        self.0 as usize - 1
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// A bit rate in kilobits per second (1 kbps = 1000 bit/s).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Kbps(pub u32);

impl Kbps {
    pub const ZERO: Kbps = Kbps(0);

    pub const fn bits_per_sec(self) -> u64 {
        self.0 as u64 * 1000
    }

    pub const fn bytes_per_sec(self) -> u64 {
        self.0 as u64 * 1000 / 8
    }

    /// The rate of `bytes` delivered over `micros` microseconds, rounded down.
    pub fn from_bytes_over(bytes: u64, micros: u64) -> Kbps {
        if micros == 0 {
            return Kbps(0);
        }
        Kbps((bytes.saturating_mul(8_000) / micros).min(u32::MAX as u64) as u32)
    }
}

impl fmt::Display for Kbps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kbps", self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("a layer plan needs 1 to {MAX_LAYERS} layers, got {0}")]
    LayerCount(usize),
    #[error("layer {0} has rate 0; every layer needs a positive rate")]
    ZeroRate(usize),
    #[error("a layer plan's full rate must be at most {MAX_PLAN_KBPS} kbps, got {0} kbps")]
    TooFast(u64),
}

/// Highest full rate R(L) of a plan: 100 Mbps, above any live stream a swarm carries;
/// beyond it a typo (an extra digit or three) would make a seed generate gigabits.
pub const MAX_PLAN_KBPS: u64 = 100_000;

/// The rates of a layered stream: `rates[i]` is the rate of layer `i + 1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPlan {
    rates: Vec<Kbps>,
}

impl LayerPlan {
    pub fn new(rates: Vec<Kbps>) -> Result<LayerPlan, PlanError> {
        if rates.is_empty() || rates.len() > MAX_LAYERS {
            return Err(PlanError::LayerCount(rates.len()));
        }
        if let Some(i) = rates.iter().position(|r| r.0 == 0) {
            return Err(PlanError::ZeroRate(i + 1));
        }
        let total: u64 = rates.iter().map(|r| u64::from(r.0)).sum();
        if total > MAX_PLAN_KBPS {
            return Err(PlanError::TooFast(total));
        }
        Ok(LayerPlan { rates })
    }

    /// The paper's prototype video: 4CIF, layers of about 290 / 230 / 100 kbps (620 full).
    pub fn prototype() -> LayerPlan {
        LayerPlan { rates: vec![Kbps(290), Kbps(230), Kbps(100)] }
    }

    /// The paper's simulated video: 3 layers x 200 kbps CBR (600 full).
    pub fn simulation() -> LayerPlan {
        LayerPlan { rates: vec![Kbps(200); 3] }
    }

    pub fn layers(&self) -> usize {
        self.rates.len()
    }

    pub fn layer_ids(&self) -> impl Iterator<Item = LayerId> + use<> {
        (0..self.rates.len()).map(LayerId::from_index)
    }

    /// Rate of one layer. Panics if the layer is not in the plan.
    pub fn rate(&self, layer: LayerId) -> Kbps {
        self.rates[layer.index()]
    }

    pub fn rates(&self) -> &[Kbps] {
        &self.rates
    }

    /// R(l): cumulative rate of layers 1..=l; `cumulative(0)` is 0.
    pub fn cumulative(&self, l: usize) -> Kbps {
        Kbps(self.rates[..l.min(self.rates.len())].iter().map(|r| r.0).sum())
    }

    /// R(L), the full rate.
    pub fn full_rate(&self) -> Kbps {
        self.cumulative(self.rates.len())
    }

    /// l_n: the largest l with R(l) <= `upload` (0 when even the base layer exceeds it).
    /// A peer expects to download about what it uploads, so layers up to l_n are
    /// requested as regular requests and the rest as probing requests.
    pub fn threshold_layer(&self, upload: Kbps) -> usize {
        (1..=self.rates.len()).take_while(|&l| self.cumulative(l) <= upload).last().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_rates_add_up() {
        let p = LayerPlan::prototype();
        assert_eq!(p.cumulative(0), Kbps(0));
        assert_eq!(p.cumulative(1), Kbps(290));
        assert_eq!(p.cumulative(2), Kbps(520));
        assert_eq!(p.full_rate(), Kbps(620));
    }

    #[test]
    fn threshold_layer_is_largest_affordable() {
        let p = LayerPlan::prototype();
        assert_eq!(p.threshold_layer(Kbps(0)), 0);
        assert_eq!(p.threshold_layer(Kbps(289)), 0);
        assert_eq!(p.threshold_layer(Kbps(300)), 1);
        assert_eq!(p.threshold_layer(Kbps(520)), 2);
        assert_eq!(p.threshold_layer(Kbps(700)), 3);
        assert_eq!(p.threshold_layer(Kbps(10_000)), 3);
    }

    #[test]
    fn plan_rejects_bad_input() {
        assert_eq!(LayerPlan::new(vec![]), Err(PlanError::LayerCount(0)));
        assert_eq!(LayerPlan::new(vec![Kbps(1); 9]), Err(PlanError::LayerCount(9)));
        assert_eq!(LayerPlan::new(vec![Kbps(1), Kbps(0)]), Err(PlanError::ZeroRate(2)));
        assert_eq!(LayerPlan::new(vec![Kbps(u32::MAX)]), Err(PlanError::TooFast(u64::from(u32::MAX))));
        assert_eq!(LayerPlan::new(vec![Kbps(60_000), Kbps(40_001)]), Err(PlanError::TooFast(100_001)));
        assert!(LayerPlan::new(vec![Kbps(60_000), Kbps(40_000)]).is_ok());
    }

    #[test]
    fn layer_id_bounds() {
        assert!(LayerId::new(0).is_none());
        assert!(LayerId::new(9).is_none());
        assert_eq!(LayerId::new(3).map(LayerId::index), Some(2));
    }

    #[test]
    fn kbps_from_bytes() {
        assert_eq!(Kbps::from_bytes_over(125_000, 1_000_000), Kbps(1000));
        assert_eq!(Kbps::from_bytes_over(1, 0), Kbps(0));
    }
}
