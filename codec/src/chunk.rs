//! Layer chunks (LCs): the unit that is advertised, requested, scheduled and sent.
//!
//! An LC is one packet of one layer holding at most [`MAX_LC_PAYLOAD`] bytes of one
//! frame. Its identity is `(layer, seq)`: sequences count up per layer from 0 and
//! never skip, so a gap is a missing LC. Its header carries the media time of its
//! frame, which fixes its playback deadline (media time + playback lag).

use crate::layer::LayerId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most payload bytes in one LC (DESIGN.md §2).
pub const MAX_LC_PAYLOAD: usize = 1250;

/// Per-layer LC sequence number. Wraps after 2^32 LCs (about 8 months at 200 LC/s);
/// streams that long must restart the channel.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seq(pub u32);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0.wrapping_add(1))
    }
}

/// Media time: microseconds since the start of the stream, on the source's clock.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MediaTime(pub u64);

impl MediaTime {
    pub fn from_secs_f64(s: f64) -> MediaTime {
        MediaTime((s * 1e6) as u64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

/// Identity of an LC.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LcId {
    pub layer: LayerId,
    pub seq: Seq,
}

impl fmt::Display for LcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.layer, self.seq.0)
    }
}

/// What a receiver must know about an LC besides its bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LcHeader {
    pub id: LcId,
    /// Frame number in decode order; all LCs of a frame share it.
    pub frame: u32,
    /// Index of this LC among the LCs of its frame, `part < parts`.
    pub part: u16,
    /// How many LCs the frame was cut into (at least 1).
    pub parts: u16,
    /// Media time of the frame: the LC's playback deadline is `time + lag`.
    pub time: MediaTime,
}

/// An LC: header plus payload. The payload is reference-counted and never copied
/// after ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lc {
    pub header: LcHeader,
    pub payload: Bytes,
}

impl Lc {
    pub fn id(&self) -> LcId {
        self.header.id
    }
}

static ZEROS: [u8; MAX_LC_PAYLOAD] = [0; MAX_LC_PAYLOAD];

/// A payload of `len` zero bytes that allocates nothing: the simulator's stand-in for
/// video data it only needs the size of.
pub fn phantom_payload(len: usize) -> Bytes {
    Bytes::from_static(&ZEROS[..len.min(MAX_LC_PAYLOAD)])
}

/// Is `payload` a [`phantom_payload`] (so its length alone rebuilds it)? A real
/// payload of zeros is not: it lives elsewhere.
pub fn is_phantom(payload: &Bytes) -> bool {
    payload.as_ptr() == ZEROS.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_payload_has_length_and_no_copy() {
        let a = phantom_payload(700);
        let b = phantom_payload(1250);
        assert_eq!(a.len(), 700);
        assert_eq!(b.len(), 1250);
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(phantom_payload(5000).len(), MAX_LC_PAYLOAD);
        assert!(is_phantom(&a) && is_phantom(&b));
        assert!(!is_phantom(&Bytes::from(vec![0u8; 700])));
    }

    #[test]
    fn media_time_round_trips_seconds() {
        assert_eq!(MediaTime::from_secs_f64(1.5), MediaTime(1_500_000));
        assert_eq!(MediaTime(2_250_000).as_secs_f64(), 2.25);
    }
}
