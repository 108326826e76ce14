//! The layered-video model of LayerP2P: layers and their rates, layer chunks (LCs),
//! packetizing frames into LCs, buffer maps, and video sources.
//!
//! This crate knows video, not networks: nothing here sends, receives or schedules.

pub mod buffermap;
pub mod chunk;
pub mod layer;
pub mod packetize;
pub mod source;

pub use buffermap::{BufferMap, Insert, LayerWindow, WindowError, MAX_SEQ, MAX_WINDOW_LCS};
pub use chunk::{is_phantom, phantom_payload, Lc, LcHeader, LcId, MediaTime, Seq, MAX_LC_PAYLOAD};
pub use layer::{Kbps, LayerId, LayerPlan, PlanError, MAX_LAYERS};
pub use packetize::{Frame, PacketizeError, Packetizer};
pub use source::LcSource;
pub mod synthetic;
pub mod video;
