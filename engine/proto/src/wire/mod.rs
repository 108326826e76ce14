//! The wire protocol: typed messages (`message`) and their byte format (`codec`).
//! Decoding is strict and never panics: every malformed input is a [`WireError`].

pub mod codec;
pub mod message;

pub use codec::{
    Frame, Frames, IPV4_UDP_HEADER_LEN, PACKET_HEADER_LEN, WireError, data_header, data_wire_len, decode, encode,
    frames,
};
pub use message::*;
