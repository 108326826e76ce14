//! Frames to LCs: cuts each frame into LCs of at most [`MAX_LC_PAYLOAD`] bytes and
//! numbers them per layer. An LC never holds bytes of two frames.

use crate::chunk::{Lc, LcHeader, LcId, MAX_LC_PAYLOAD, MediaTime, Seq};
use crate::layer::{LayerId, MAX_LAYERS};
use bytes::Bytes;

/// One coded frame and the layer it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Frame number in decode order.
    pub number: u32,
    pub layer: LayerId,
    pub time: MediaTime,
    /// The frame's coded units (e.g. H.264 NAL units with start codes). Units are
    /// kept whole inside one LC when they fit, so a lost LC loses whole units.
    pub units: Vec<Bytes>,
}

impl Frame {
    /// A frame of one opaque unit.
    pub fn single(number: u32, layer: LayerId, time: MediaTime, data: Bytes) -> Frame {
        Frame { number, layer, time, units: vec![data] }
    }

    pub fn len(&self) -> usize {
        self.units.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketizeError {
    #[error("layer {0} is above this packetizer's {1} layers")]
    UnknownLayer(LayerId, usize),
    #[error("frame {0} needs {1} LCs; at most 65535 fit in the header")]
    FrameTooLarge(u32, usize),
}

/// Assigns per-layer sequence numbers and cuts frames into LCs.
#[derive(Clone, Debug)]
pub struct Packetizer {
    next_seq: [Seq; MAX_LAYERS],
    layers: usize,
}

impl Packetizer {
    pub fn new(layers: usize) -> Packetizer {
        assert!((1..=MAX_LAYERS).contains(&layers));
        Packetizer { next_seq: [Seq(0); MAX_LAYERS], layers }
    }

    /// The sequence the next LC of `layer` will get.
    pub fn next_seq(&self, layer: LayerId) -> Seq {
        self.next_seq[layer.index()]
    }

    /// Cuts `frame` into LCs. Units are packed greedily: a unit goes into the current
    /// LC if it fits, else starts a new one; a unit larger than an LC is split across
    /// LCs of its own. An empty frame yields no LC.
    pub fn packetize(&mut self, frame: &Frame) -> Result<Vec<Lc>, PacketizeError> {
        if frame.layer.index() >= self.layers {
            return Err(PacketizeError::UnknownLayer(frame.layer, self.layers));
        }
        let payloads = pack_units(&frame.units);
        if payloads.len() > u16::MAX as usize {
            return Err(PacketizeError::FrameTooLarge(frame.number, payloads.len()));
        }
        let parts = payloads.len() as u16;
        let seq = &mut self.next_seq[frame.layer.index()];
        Ok(payloads
            .into_iter()
            .enumerate()
            .map(|(part, payload)| {
                let id = LcId { layer: frame.layer, seq: *seq };
                *seq = seq.next();
                let header = LcHeader { id, frame: frame.number, part: part as u16, parts, time: frame.time };
                Lc { header, payload }
            })
            .collect())
    }
}

/// Groups units into payloads of at most `MAX_LC_PAYLOAD` bytes. Copies only when
/// several small units share one LC; a lone unit (or a slice of a big one) is
/// passed through by reference.
fn pack_units(units: &[Bytes]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pending: Vec<&Bytes> = Vec::new();
    let mut pending_len = 0;
    let flush = |pending: &mut Vec<&Bytes>, out: &mut Vec<Bytes>| match pending.len() {
        0 => {}
        1 => out.push(pending[0].clone()),
        _ => out.push(Bytes::from(pending.iter().flat_map(|u| u.iter().copied()).collect::<Vec<u8>>())),
    };
    for unit in units.iter().filter(|u| !u.is_empty()) {
        if unit.len() > MAX_LC_PAYLOAD {
            flush(&mut pending, &mut out);
            pending.clear();
            pending_len = 0;
            let mut at = 0;
            while at < unit.len() {
                let end = (at + MAX_LC_PAYLOAD).min(unit.len());
                out.push(unit.slice(at..end));
                at = end;
            }
            continue;
        }
        if pending_len + unit.len() > MAX_LC_PAYLOAD {
            flush(&mut pending, &mut out);
            pending.clear();
            pending_len = 0;
        }
        pending.push(unit);
        pending_len += unit.len();
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(n: u8) -> LayerId {
        LayerId::new(n).expect("valid layer")
    }

    #[test]
    fn numbers_lcs_per_layer() {
        let mut p = Packetizer::new(3);
        let a = p.packetize(&Frame::single(0, l(1), MediaTime(0), Bytes::from(vec![1; 3000]))).expect("ok");
        let b = p.packetize(&Frame::single(1, l(3), MediaTime(33), Bytes::from(vec![2; 10]))).expect("ok");
        let c = p.packetize(&Frame::single(2, l(1), MediaTime(66), Bytes::from(vec![3; 10]))).expect("ok");
        assert_eq!(a.iter().map(|lc| lc.header.id.seq.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(a.iter().map(|lc| lc.payload.len()).collect::<Vec<_>>(), vec![1250, 1250, 500]);
        assert_eq!(a[2].header.part, 2);
        assert_eq!(a[2].header.parts, 3);
        assert_eq!(b[0].header.id, LcId { layer: l(3), seq: Seq(0) });
        assert_eq!(c[0].header.id.seq, Seq(3));
    }

    #[test]
    fn small_units_share_an_lc_and_stay_whole() {
        let units = vec![Bytes::from(vec![1; 600]), Bytes::from(vec![2; 600]), Bytes::from(vec![3; 600])];
        let mut p = Packetizer::new(1);
        let lcs = p.packetize(&Frame { number: 0, layer: l(1), time: MediaTime(0), units }).expect("ok");
        assert_eq!(lcs.len(), 2);
        assert_eq!(lcs[0].payload.len(), 1200);
        assert_eq!(&lcs[1].payload[..], &[3; 600][..]);
    }

    #[test]
    fn rejects_layer_outside_plan() {
        let mut p = Packetizer::new(2);
        let f = Frame::single(0, l(3), MediaTime(0), Bytes::from_static(b"x"));
        assert_eq!(p.packetize(&f), Err(PacketizeError::UnknownLayer(l(3), 2)));
    }

    proptest! {
        #[test]
        fn no_lc_too_big_none_spans_frames_bytes_preserved(
            frames in prop::collection::vec((1u8..=3, prop::collection::vec(0usize..4000, 0..6)), 1..30)
        ) {
            let mut p = Packetizer::new(3);
            for (n, (layer, sizes)) in frames.iter().enumerate() {
                let units: Vec<Bytes> = sizes.iter().enumerate().map(|(i, &s)| Bytes::from(vec![(n + i) as u8; s])).collect();
                let frame = Frame { number: n as u32, layer: l(*layer), time: MediaTime(n as u64), units };
                let lcs = p.packetize(&frame).expect("ok");
                let mut joined = Vec::new();
                for lc in &lcs {
                    prop_assert!(lc.payload.len() <= MAX_LC_PAYLOAD);
                    prop_assert!(!lc.payload.is_empty());
                    prop_assert_eq!(lc.header.frame, n as u32);
                    prop_assert_eq!(lc.header.parts as usize, lcs.len());
                    joined.extend_from_slice(&lc.payload);
                }
                let expect: Vec<u8> = frame.units.iter().flat_map(|u| u.iter().copied()).collect();
                prop_assert_eq!(joined, expect);
            }
        }
    }
}
