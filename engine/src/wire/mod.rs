//! The wire protocol: typed messages (`message`) and their byte format (`codec`).
//! Decoding is strict and never panics: every malformed input is a [`WireError`].

pub mod codec;
pub mod message;

pub use codec::{data_wire_len, decode, encode, WireError, PACKET_HEADER_LEN};
pub use message::*;
