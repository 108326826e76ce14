#![warn(missing_docs)]
//! The LayerP2P protocol core: deterministic state machines and the wire format, with
//! no sockets, clocks, threads or global RNG (time and randomness come in as inputs).
//!
//! - `peer`, `tracker`: the protocol state machines; `node::Node` is the interface
//!   every driver (the UDP runtime, the simulator, in-memory tests) calls.
//! - `wire`: message types and their byte format.
//! - `integrity`, `channel`: signed manifests of LC hashes; channel identity.
//! - `config`, `policy`: every parameter; LayerP2P / Single-Incent / Single-Layer.
//! - `sampler`, `bucket`: the supplier's weighted sampler; a token bucket.
//! - `metrics`: HDR latency histograms recorded by the core.
//! - `swarm`: types shared by every whole-swarm driver (viewer specs, mixes, reports).

pub mod bucket;
pub mod channel;
pub mod config;
pub mod integrity;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod policy;
pub mod sampler;
pub mod swarm;
pub mod time;
pub mod tracker;
pub mod wire;

pub use config::{HolderChoice, Incentive, NeighbourOverrides, PeerConfig};
pub use node::{Node, Transmit};
pub use peer::{Event, Peer, PeerStats};
pub use policy::Policy;
pub use time::Time;
pub use tracker::{Tracker, TrackerConfig};
