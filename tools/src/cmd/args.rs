//! Command-line value types several subcommands share (policy, peer mix, video) and
//! their mapping onto engine and codec types. Parsing only.

use clap::ValueEnum;
use layerp2p_codec::synthetic::{PayloadKind, SyntheticConfig};
use layerp2p_engine::sim::scenario::Mix;
use layerp2p_engine::Policy;

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum PolicyArg {
    /// Tit-for-tat supplier, prioritized receiver: the more a peer uploads, the more layers it plays.
    Layerp2p,
    /// Tit-for-tat supplier, plain random receiver (layers not prioritized).
    SingleIncent,
    /// Round-robin supplier, plain random receiver: no incentive.
    SingleLayer,
}

impl PolicyArg {
    pub fn policy(self) -> Policy {
        match self {
            PolicyArg::Layerp2p => Policy::LayerP2P,
            PolicyArg::SingleIncent => Policy::SingleIncent,
            PolicyArg::SingleLayer => Policy::SingleLayer,
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum MixArg {
    /// Table I, resource index 0.82: 10 % free-riders, 30 % at 300 kbps, 60 % at 700 kbps.
    Overloaded,
    /// Table I, resource index 1.23: 40 % at 400 kbps, 60 % at 1000 kbps.
    Underloaded,
}

impl MixArg {
    pub fn mix(self) -> Mix {
        match self {
            MixArg::Overloaded => Mix::overloaded(),
            MixArg::Underloaded => Mix::underloaded(),
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Video {
    /// The paper's prototype video: 290/230/100 kbps VBR, 30 fps, 64-frame GOPs.
    Prototype,
    /// The paper's simulated video: 3 x 200 kbps CBR in 1250-byte LCs.
    Simulation,
}

impl Video {
    /// The built-in synthetic source for this video, with payload bytes that can be
    /// checked end to end (what goes on the wire).
    pub fn synthetic(self, seed: u64) -> SyntheticConfig {
        let mut cfg = match self {
            Video::Prototype => SyntheticConfig::prototype(),
            Video::Simulation => SyntheticConfig::simulation(),
        };
        cfg.payload = PayloadKind::Pattern;
        cfg.seed = seed;
        cfg
    }
}
