//! The wire protocol: typed messages (`message`) and their byte format (`codec`).
//! Decoding is strict and never panics: every malformed input is a [`WireError`].

pub mod message;

pub use message::*;
