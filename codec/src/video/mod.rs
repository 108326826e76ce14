//! Real layered video: raw pictures and Y4M, H.264 Annex B parsing and layer
//! classification, the built-in procedural clip, OpenH264 encoding and decoding (the
//! `h264` feature), an `LcSource` for seeds, reassembly of played LCs into a stream
//! (Annex B, or MPEG-TS for players over HTTP),
//! and PSNR per layer.

pub mod annexb;
pub mod clip;
#[cfg(feature = "h264")]
pub mod decoder;
#[cfg(feature = "h264")]
pub mod droptest;
#[cfg(feature = "h264")]
pub mod encoder;
pub mod mpegts;
pub mod picture;
pub mod quality;
pub mod reassemble;
#[cfg(feature = "h264")]
pub mod score;
pub mod source;
pub mod y4m;

pub use picture::{FrameRate, Picture, Resolution};

/// A failure of the H.264 encoder or decoder, or of their configuration.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid codec configuration: {0}")]
    Config(String),
    #[error("H.264 codec: {0}")]
    Backend(String),
    #[error(transparent)]
    Stream(#[from] annexb::AnnexBError),
}
