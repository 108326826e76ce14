//! The `--policy` flag shared by the commands that compare systems: one of the three
//! systems of SPEC §7, or all of them side by side.

use clap::ValueEnum;
use layerp2p_engine::Policy;

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum PolicyArg {
    Layerp2p,
    SingleIncent,
    SingleLayer,
    /// All three, side by side.
    All,
}

impl PolicyArg {
    /// The systems to run, in the order they are reported.
    pub fn policies(self) -> Vec<Policy> {
        match self {
            PolicyArg::All => Policy::ALL.to_vec(),
            PolicyArg::Layerp2p => vec![Policy::LayerP2P],
            PolicyArg::SingleIncent => vec![Policy::SingleIncent],
            PolicyArg::SingleLayer => vec![Policy::SingleLayer],
        }
    }
}
