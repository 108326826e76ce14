//! LayerP2P engine: the crates along the architecture under one name.
//!
//! - [`layerp2p_proto`] (re-exported at the root): the sans-IO protocol core.
//! - [`udp`]: every socket trick. [`runtime`]: glommio driver and node roles.
//! - [`sim`]: the discrete-event simulator. [`lab`]: experiments, reports, load generator.

pub use layerp2p_lab as lab;
pub use layerp2p_proto::*;
pub use layerp2p_runtime as runtime;
pub use layerp2p_sim as sim;
pub use layerp2p_udp as udp;
