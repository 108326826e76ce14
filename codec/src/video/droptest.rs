//! The layer-drop experiment: encode the built-in clip, lose LCs in a chosen way
//! (no loss, all of layer 3, layers 2 and 3, random LCs), reassemble, decode with
//! concealment and score Q1/Q2/Q3/Q. It measures what layering buys: losing a higher
//! layer costs a little PSNR and leaves base-layer frames intact, while random loss
//! also hits the base layer and propagates. Researcher-facing; `layerp2p video
//! drop-test` prints it.

use super::annexb::AccessUnit;
use super::encoder::{EncoderConfig, encode_all};
use super::picture::Picture;
use super::quality::Quality;
use super::reassemble::Reassembler;
use super::score::Scorer;
use super::{CodecError, clip};
use crate::chunk::{Lc, MediaTime};
use crate::layer::{Kbps, LayerId};
use crate::packetize::{Frame, Packetizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::time::Duration;

/// How LCs are lost.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Loss {
    None,
    /// Every LC of the layers above this one.
    AboveLayer(LayerId),
    /// Each LC independently with this probability.
    Random {
        rate: f64,
        seed: u64,
    },
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::None => write!(f, "all layers"),
            Loss::AboveLayer(l) if l.get() == 1 => write!(f, "base layer only"),
            Loss::AboveLayer(l) => write!(f, "layers 1-{} only", l.get()),
            Loss::Random { rate, .. } => write!(f, "random {:.1} % of LCs lost", rate * 100.0),
        }
    }
}

/// The encoded clip and its originals.
#[derive(Debug)]
pub struct TestClip {
    pub cfg: EncoderConfig,
    pub units: Vec<AccessUnit>,
    pub originals: Vec<Picture>,
}

impl TestClip {
    /// Encodes the first `frames` frames of the built-in clip.
    pub fn encode(cfg: EncoderConfig, frames: u32) -> Result<TestClip, CodecError> {
        let originals: Vec<Picture> = clip::frames(cfg.resolution, frames).collect();
        let units = encode_all(cfg.clone(), originals.iter().cloned())?;
        Ok(TestClip { cfg, units, originals })
    }

    /// Mean rate of each layer.
    pub fn layer_rates(&self) -> Vec<Kbps> {
        let mut bytes = vec![0u64; self.cfg.layers];
        for u in &self.units {
            bytes[u.layer.index()] += u.len() as u64;
        }
        let micros = self.cfg.rate.frame_start_us(self.units.len() as u64);
        bytes.into_iter().map(|b| Kbps::from_bytes_over(b, micros)).collect()
    }

    /// The clip's LCs grouped by frame.
    pub fn lcs_by_frame(&self) -> Vec<Vec<Lc>> {
        let mut out = vec![Vec::new(); self.units.len()];
        for lc in self.lcs() {
            out[lc.header.frame as usize].push(lc);
        }
        out
    }

    /// The clip as LCs, frame n at media time n / fps.
    pub fn lcs(&self) -> Vec<Lc> {
        let mut p = Packetizer::new(self.cfg.layers);
        let mut out = Vec::new();
        for (n, u) in self.units.iter().enumerate() {
            let frame = Frame {
                number: n as u32,
                layer: u.layer,
                time: MediaTime(self.cfg.rate.frame_start_us(n as u64)),
                units: u.units.clone(),
            };
            // Layers come from the encoder's own configuration, so they always fit.
            if let Ok(lcs) = p.packetize(&frame) {
                out.extend(lcs);
            }
        }
        out
    }
}

/// What one loss pattern did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub loss: Loss,
    pub lcs: usize,
    pub lcs_lost: usize,
    /// Frames of which nothing arrived, and frames that arrived in part.
    pub frames_lost: u64,
    pub frames_partial: u64,
    pub quality: Quality,
}

/// Scores LCs `received` (in any order) of `clip` played in a loop, as a viewer
/// would see frames `frames` (frame n shows clip frame n mod its length).
pub fn score_received(
    clip: &TestClip,
    received: &[Lc],
    frames: std::ops::Range<u32>,
) -> Result<(Quality, u64, u64), CodecError> {
    let len = clip.units.len();
    let mut r = Reassembler::new(Duration::ZERO);
    for lc in received {
        r.push(lc);
    }
    let mut scorer = Scorer::new(clip.cfg.resolution, clip.cfg.layers)?;
    let start = frames.start;
    let mut released = r.flush().into_iter().filter(|f| f.number >= start).peekable();
    for n in frames {
        let i = n as usize % len.max(1);
        let frame = released.next_if(|f| f.number == n);
        scorer.frame(frame.as_ref().map(|f| &f.data[..]), clip.units[i].layer, &clip.originals[i])?;
    }
    Ok((scorer.into_quality(), r.stats().lost, r.stats().partial))
}

/// Scores a viewer of `clip` looped endlessly from the `(frame, part)` of the LCs it
/// played: frames from the first it played to the last, lost ones concealed. `None`
/// if it played nothing.
pub fn score_played(
    clip: &TestClip,
    by_frame: &[Vec<Lc>],
    played: &[(u32, u16)],
) -> Result<Option<Quality>, CodecError> {
    let (Some(first), Some(last)) = (played.iter().map(|p| p.0).min(), played.iter().map(|p| p.0).max()) else {
        return Ok(None);
    };
    let lcs: Vec<Lc> = played
        .iter()
        .filter_map(|&(frame, part)| {
            let mut lc = by_frame.get(frame as usize % by_frame.len().max(1))?.get(part as usize)?.clone();
            lc.header.frame = frame;
            Some(lc)
        })
        .collect();
    Ok(Some(score_received(clip, &lcs, first..last.saturating_add(1))?.0))
}

/// Applies `loss` to the clip's LCs and scores the result.
pub fn run(clip: &TestClip, loss: Loss) -> Result<Outcome, CodecError> {
    let all = clip.lcs();
    let mut rng = match loss {
        Loss::Random { seed, .. } => ChaCha8Rng::seed_from_u64(seed),
        _ => ChaCha8Rng::seed_from_u64(0),
    };
    let kept: Vec<Lc> = all
        .iter()
        .filter(|lc| match loss {
            Loss::None => true,
            Loss::AboveLayer(l) => lc.header.id.layer <= l,
            Loss::Random { rate, .. } => !rng.random_bool(rate.clamp(0.0, 1.0)),
        })
        .cloned()
        .collect();
    let (quality, frames_lost, frames_partial) = score_received(clip, &kept, 0..clip.units.len() as u32)?;
    // Frames lost at the very end never reach the reassembler; count them too.
    let last_seen = kept.iter().map(|lc| lc.header.frame + 1).max().unwrap_or(0) as u64;
    let tail_lost = clip.units.len() as u64 - last_seen.min(clip.units.len() as u64);
    let first_seen = kept.iter().map(|lc| lc.header.frame).min().unwrap_or(0) as u64;
    Ok(Outcome {
        loss,
        lcs: all.len(),
        lcs_lost: all.len() - kept.len(),
        frames_lost: frames_lost + tail_lost + first_seen,
        frames_partial,
        quality,
    })
}

/// The standard cases for `layers` layers: all layers, then one layer fewer at a
/// time down to the base layer, then random loss.
pub fn standard_losses(layers: usize, random_rate: f64, seed: u64) -> Vec<Loss> {
    let mut losses = vec![Loss::None];
    for keep in (1..layers).rev() {
        losses.push(Loss::AboveLayer(LayerId::from_index(keep - 1)));
    }
    losses.push(Loss::Random { rate: random_rate, seed });
    losses
}

/// The standard table: all layers, drop layer 3, drop layers 2-3, random loss.
pub fn standard(clip: &TestClip, random_rate: f64, seed: u64) -> Result<Vec<Outcome>, CodecError> {
    standard_losses(clip.cfg.layers, random_rate, seed).into_iter().map(|l| run(clip, l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::picture::{FrameRate, Resolution};

    fn clip() -> TestClip {
        let cfg = EncoderConfig {
            intra_period: 32,
            ..EncoderConfig::new(Resolution::QCIF, FrameRate::per_second(30).expect("fps"))
        };
        TestClip::encode(cfg, 64).expect("encodes")
    }

    #[test]
    fn psnr_falls_as_layers_are_dropped_and_base_frames_stay_intact() {
        let clip = clip();
        let l = |n| LayerId::new(n).expect("layer");
        let out = standard(&clip, 0.05, 7).expect("runs");
        let q = |i: usize| out[i].quality.overall().expect("frames");
        let (all, no3, base, random) = (q(0), q(1), q(2), q(3));
        eprintln!("all {all:.2}  drop L3 {no3:.2}  drop L2+L3 {base:.2}  random {random:.2}");
        assert!(all > no3 + 0.5, "all {all:.2} vs drop L3 {no3:.2}");
        assert!(no3 > base + 0.5, "drop L3 {no3:.2} vs drop L2+L3 {base:.2}");
        assert!(random < all, "random loss {random:.2} vs {all:.2}");
        assert_eq!(out[0].quality.concealed, 0);
        assert!(out[3].lcs_lost > 0);
        // Base-layer frames decode exactly as without loss when only higher layers go.
        let q1 = out[0].quality.layer(l(1)).expect("base frames");
        assert!(q1 > 30.0, "base layer {q1:.2} dB");
        assert_eq!(out[1].quality.layer(l(1)), Some(q1));
        assert_eq!(out[2].quality.layer(l(1)), Some(q1));
        // And layer-2 frames are intact when only layer 3 is lost.
        assert_eq!(out[1].quality.layer(l(2)), out[0].quality.layer(l(2)));
        // Dropped layers are concealed entirely: 16 layer-2 frames, 32 layer-3 frames.
        assert_eq!(out[1].quality.concealed, 32);
        assert_eq!(out[2].quality.concealed, 48);
    }

    #[test]
    fn played_log_of_a_looped_clip_scores_like_the_lcs_themselves() {
        let clip = clip();
        let by_frame = clip.lcs_by_frame();
        // A viewer that played the second loop, all of it except layer 3.
        let n = clip.units.len() as u32;
        let played: Vec<(u32, u16)> = (n..2 * n)
            .filter(|&f| clip.units[(f - n) as usize].layer.get() < 3)
            .flat_map(|f| (0..by_frame[(f - n) as usize].len() as u16).map(move |p| (f, p)))
            .collect();
        let q = score_played(&clip, &by_frame, &played).expect("scores").expect("played something");
        let full = run(&clip, Loss::None).expect("runs").quality;
        let l = |n| LayerId::new(n).expect("layer");
        // The second loop starts with an IDR: layers 1 and 2 decode exactly as the first time.
        assert_eq!(q.layer(l(1)), full.layer(l(1)));
        assert_eq!(q.layer(l(2)), full.layer(l(2)));
        assert!(q.layer(l(3)).expect("frames") < full.layer(l(3)).expect("frames") - 5.0);
        assert_eq!(score_played(&clip, &by_frame, &[]).expect("scores"), None);
    }
}
