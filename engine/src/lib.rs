//! LayerP2P engine: the sans-IO protocol core and its drivers.
//!
//! - `peer`, `tracker`: the protocol state machines (no sockets, no clocks, no
//!   global RNG); `node::Node` is the interface drivers use.
//! - `wire`: message types and their byte format.
//! - `integrity`: signed manifests of LC hashes (content pollution).
//! - `sim`: a discrete-event driver with virtual time, used by tests and `layerp2p sim`.
//! - `runtime`: the glommio UDP driver and the node roles operators deploy.
//! - `metrics`: HDR latency histograms recorded by the core.
//! - `experiment`: the prototype experiment on a real UDP swarm (runs, PSNR, pooling).

pub mod bucket;
pub mod channel;
pub mod config;
pub mod experiment;
pub mod integrity;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod policy;
pub mod runtime;
pub mod sampler;
pub mod sim;
pub mod time;
pub mod tracker;
pub mod wire;

pub use config::{HolderChoice, Incentive, NeighbourOverrides, PeerConfig};
pub use node::{Node, Transmit};
pub use peer::{Event, Peer, PeerStats};
pub use policy::Policy;
pub use time::Time;
pub use tracker::{Tracker, TrackerConfig};
