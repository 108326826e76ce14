//! Types every driver of a whole swarm shares: who the viewers are (`PeerSpec`, `Mix`)
//! and what a run produced (`SwarmReport`). The simulator, the UDP runtime's in-process
//! swarm, the experiments and the load generator all speak these, so they live here,
//! beside the protocol, and none of them imports another for them.

pub mod mix;
pub mod report;

use crate::time::Time;
use layerp2p_codec::Kbps;

pub use mix::{Load, Mix, MixError, PeerClass};
pub use report::{ClassReport, MIN_COUNTED_SECONDS, PeerOutcome, SwarmReport};

/// One viewer in a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSpec {
    /// Index into `SwarmConfig::classes`.
    pub class: usize,
    /// Upload capacity U(n) this viewer contributes.
    pub upload: Kbps,
    /// When the viewer joins, on the run's clock.
    pub join: Time,
    /// When it leaves; `None` stays to the end of the run.
    pub leave: Option<Time>,
}
