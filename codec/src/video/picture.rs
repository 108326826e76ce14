//! `Picture`: one raw 8-bit YUV 4:2:0 frame (planar I420), the common currency of the
//! clip generator, the Y4M reader/writer, the encoder, the decoder and PSNR.
//!
//! Owns the plane layout, the size limits and the frame rate; knows nothing about
//! coding.

use std::fmt;

/// Largest width or height accepted from any input (8K is 7680 x 4320).
pub const MAX_DIMENSION: u32 = 8192;

/// Width and height in luma samples; both even and in `2..=MAX_DIMENSION`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resolution {
    width: u32,
    height: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "resolution {width}x{height} is not supported: width and height must be even and between 2 and {MAX_DIMENSION}"
)]
pub struct ResolutionError {
    pub width: u64,
    pub height: u64,
}

impl Resolution {
    pub fn new(width: u32, height: u32) -> Result<Resolution, ResolutionError> {
        let ok = |d: u32| (2..=MAX_DIMENSION).contains(&d) && d.is_multiple_of(2);
        if ok(width) && ok(height) {
            Ok(Resolution { width, height })
        } else {
            Err(ResolutionError { width: width.into(), height: height.into() })
        }
    }

    /// CIF, 352 x 288: the built-in clip's default.
    pub const CIF: Resolution = Resolution { width: 352, height: 288 };
    /// QCIF, 176 x 144: small enough for fast tests.
    pub const QCIF: Resolution = Resolution { width: 176, height: 144 };

    pub const fn width(self) -> u32 {
        self.width
    }

    pub const fn height(self) -> u32 {
        self.height
    }

    pub const fn luma_len(self) -> usize {
        self.width as usize * self.height as usize
    }

    pub const fn chroma_len(self) -> usize {
        self.luma_len() / 4
    }

    /// Bytes of one I420 frame.
    pub const fn frame_len(self) -> usize {
        self.luma_len() + 2 * self.chroma_len()
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Frames per second as a fraction (Y4M's `F30000:1001`); both parts positive.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("frame rate {num}:{den} is not supported: need 1 to 1000 frames per second")]
pub struct FrameRateError {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// 30 frames per second.
    pub const FPS_30: FrameRate = FrameRate { num: 30, den: 1 };

    pub fn new(num: u32, den: u32) -> Result<FrameRate, FrameRateError> {
        let ok = den > 0 && num > 0 && (num as u64) <= 1000 * den as u64 && (num as u64) * 1000 >= den as u64;
        if ok { Ok(FrameRate { num, den }) } else { Err(FrameRateError { num, den }) }
    }

    pub fn per_second(fps: u32) -> Result<FrameRate, FrameRateError> {
        FrameRate::new(fps, 1)
    }

    pub const fn num(self) -> u32 {
        self.num
    }

    pub const fn den(self) -> u32 {
        self.den
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Start of frame `n`, in microseconds from the first frame.
    pub fn frame_start_us(self, n: u64) -> u64 {
        (n as u128 * self.den as u128 * 1_000_000 / self.num as u128) as u64
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 { write!(f, "{} fps", self.num) } else { write!(f, "{:.3} fps", self.as_f64()) }
    }
}

/// An I420 frame: the Y plane, then U, then V, each tightly packed.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    resolution: Resolution,
    data: Vec<u8>,
}

impl fmt::Debug for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Picture({})", self.resolution)
    }
}

impl Picture {
    /// A uniform picture (luma `y`, neutral chroma).
    pub fn filled(resolution: Resolution, y: u8) -> Picture {
        let mut data = vec![128u8; resolution.frame_len()];
        data[..resolution.luma_len()].fill(y);
        Picture { resolution, data }
    }

    /// Wraps I420 bytes; `None` unless `data` is exactly one frame long.
    pub fn from_i420(resolution: Resolution, data: Vec<u8>) -> Option<Picture> {
        (data.len() == resolution.frame_len()).then_some(Picture { resolution, data })
    }

    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.resolution.luma_len()]
    }

    pub fn u(&self) -> &[u8] {
        let l = self.resolution.luma_len();
        &self.data[l..l + self.resolution.chroma_len()]
    }

    pub fn v(&self) -> &[u8] {
        let l = self.resolution.luma_len() + self.resolution.chroma_len();
        &self.data[l..]
    }

    /// The three planes, mutable: (Y, U, V).
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (l, c) = (self.resolution.luma_len(), self.resolution.chroma_len());
        let (y, rest) = self.data.split_at_mut(l);
        let (u, v) = rest.split_at_mut(c);
        (y, u, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_rejects_odd_zero_and_huge() {
        assert!(Resolution::new(176, 144).is_ok());
        assert!(Resolution::new(175, 144).is_err());
        assert!(Resolution::new(0, 144).is_err());
        assert!(Resolution::new(MAX_DIMENSION + 2, 144).is_err());
        assert_eq!(Resolution::QCIF.frame_len(), 176 * 144 * 3 / 2);
    }

    #[test]
    fn frame_rate_bounds_and_timing() {
        let ntsc = FrameRate::new(30000, 1001).expect("valid");
        assert_eq!(ntsc.frame_start_us(30), 1_001_000);
        assert!(FrameRate::new(0, 1).is_err());
        assert!(FrameRate::new(1, 0).is_err());
        assert!(FrameRate::new(1001, 1).is_err());
        assert_eq!(FrameRate::per_second(25).expect("valid").frame_start_us(1), 40_000);
    }

    #[test]
    fn planes_split_where_i420_says() {
        let mut p = Picture::filled(Resolution::QCIF, 7);
        let (y, u, v) = p.planes_mut();
        assert_eq!((y.len(), u.len(), v.len()), (176 * 144, 88 * 72, 88 * 72));
        v[0] = 1;
        assert_eq!(p.y()[0], 7);
        assert_eq!(p.u()[0], 128);
        assert_eq!(p.v()[0], 1);
        assert!(Picture::from_i420(Resolution::QCIF, vec![0; 10]).is_none());
    }
}
