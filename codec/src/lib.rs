//! The layered-video model of LayerP2P: layers and their rates, layer chunks (LCs),
//! packetizing frames into LCs, buffer maps, and video sources.
//!
//! This crate knows video, not networks: nothing here sends, receives or schedules.

pub mod buffermap;
pub mod chunk;
pub mod layer;
pub mod packetize;
pub mod source;

pub use buffermap::{BufferMap, Insert, LayerWindow, MAX_SEQ, MAX_WINDOW_LCS, WindowError};
pub use chunk::{Lc, LcHeader, LcId, MAX_LC_PAYLOAD, MediaTime, Seq, is_phantom, phantom_payload};
pub use layer::{Kbps, LayerId, LayerPlan, MAX_LAYERS, PlanError};
pub use packetize::{Frame, PacketizeError, Packetizer};
pub use source::LcSource;
pub mod synthetic;
pub mod video;
