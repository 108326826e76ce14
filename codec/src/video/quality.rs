//! Picture quality (DESIGN.md §10): luma PSNR per frame, and its mean over the frames of
//! each layer (Q1, Q2, Q3, …) and over all frames (Q). Owns the scoring arithmetic
//! only; concealment of lost frames happens before (see `decoder::Playout`).

use super::picture::Picture;
use crate::layer::{LayerId, MAX_LAYERS};
use serde::{Deserialize, Serialize};
use std::fmt;

/// PSNR reported for two identical pictures (the true value is infinite).
pub const MAX_PSNR: f64 = 100.0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot compare a {0} picture with a {1} picture")]
pub struct SizeMismatch(pub String, pub String);

/// Luma PSNR of `decoded` against `reference`, in dB (peak 255).
pub fn psnr(reference: &Picture, decoded: &Picture) -> Result<f64, SizeMismatch> {
    if reference.resolution() != decoded.resolution() {
        return Err(SizeMismatch(reference.resolution().to_string(), decoded.resolution().to_string()));
    }
    let sse: u64 = reference.y().iter().zip(decoded.y()).map(|(&a, &b)| (a as i32 - b as i32).pow(2) as u64).sum();
    if sse == 0 {
        return Ok(MAX_PSNR);
    }
    let mse = sse as f64 / reference.y().len() as f64;
    Ok((10.0 * (255.0 * 255.0 / mse).log10()).min(MAX_PSNR))
}

/// Mean PSNR over some frames.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanPsnr {
    pub frames: u64,
    pub sum_db: f64,
}

impl MeanPsnr {
    pub fn add(&mut self, db: f64) {
        self.frames += 1;
        self.sum_db += db;
    }

    pub fn merge(&mut self, o: &MeanPsnr) {
        self.frames += o.frames;
        self.sum_db += o.sum_db;
    }

    /// Mean in dB; `None` without frames.
    pub fn mean(&self) -> Option<f64> {
        (self.frames > 0).then(|| self.sum_db / self.frames as f64)
    }
}

/// Q1 … QL and Q for one viewer (or, merged, for a class of viewers).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Index 0 = layer 1.
    pub layers: Vec<MeanPsnr>,
    pub all: MeanPsnr,
    /// Frames shown by repeating an earlier picture (lost or undecodable).
    pub concealed: u64,
}

impl Quality {
    pub fn new(layers: usize) -> Quality {
        Quality { layers: vec![MeanPsnr::default(); layers.clamp(1, MAX_LAYERS)], ..Quality::default() }
    }

    /// Scores one shown frame of `layer`.
    pub fn add(
        &mut self,
        layer: LayerId,
        reference: &Picture,
        shown: &Picture,
        concealed: bool,
    ) -> Result<f64, SizeMismatch> {
        let db = psnr(reference, shown)?;
        if let Some(l) = self.layers.get_mut(layer.index()) {
            l.add(db);
        }
        self.all.add(db);
        self.concealed += u64::from(concealed);
        Ok(db)
    }

    pub fn merge(&mut self, o: &Quality) {
        if self.layers.len() < o.layers.len() {
            self.layers.resize(o.layers.len(), MeanPsnr::default());
        }
        for (a, b) in self.layers.iter_mut().zip(&o.layers) {
            a.merge(b);
        }
        self.all.merge(&o.all);
        self.concealed += o.concealed;
    }

    /// Q_l for layer `l`.
    pub fn layer(&self, l: LayerId) -> Option<f64> {
        self.layers.get(l.index()).and_then(MeanPsnr::mean)
    }

    /// Q over all frames.
    pub fn overall(&self) -> Option<f64> {
        self.all.mean()
    }
}

impl fmt::Display for Quality {
    /// `Q1 38.2  Q2 37.9  Q3 37.5  Q 37.9 dB (4 concealed)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |m: Option<f64>| m.map_or("  -  ".to_string(), |v| format!("{v:5.2}"));
        for (i, l) in self.layers.iter().enumerate() {
            write!(f, "Q{} {}  ", i + 1, show(l.mean()))?;
        }
        write!(f, "Q {} dB ({} of {} frames concealed)", show(self.all.mean()), self.concealed, self.all.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::picture::Resolution;

    #[test]
    fn psnr_known_values() {
        let a = Picture::filled(Resolution::QCIF, 100);
        assert_eq!(psnr(&a, &a), Ok(MAX_PSNR));
        // Every luma sample off by 1: MSE 1 → 48.13 dB.
        let b = Picture::filled(Resolution::QCIF, 101);
        let db = psnr(&a, &b).expect("same size");
        assert!((db - 48.1308).abs() < 1e-3, "{db}");
        // Off by 16: MSE 256 → 24.05 dB.
        let c = Picture::filled(Resolution::QCIF, 116);
        assert!((psnr(&a, &c).expect("same size") - 24.0483).abs() < 1e-3);
        let d = Picture::filled(Resolution::CIF, 100);
        assert!(psnr(&a, &d).is_err());
    }

    #[test]
    fn quality_means_per_layer_and_overall() {
        let reference = Picture::filled(Resolution::QCIF, 100);
        let near = Picture::filled(Resolution::QCIF, 101);
        let far = Picture::filled(Resolution::QCIF, 116);
        let mut q = Quality::new(3);
        let l = |n| LayerId::new(n).expect("layer");
        q.add(l(1), &reference, &near, false).expect("size");
        q.add(l(3), &reference, &far, true).expect("size");
        assert!((q.layer(l(1)).expect("frames") - 48.1308).abs() < 1e-3);
        assert_eq!(q.layer(l(2)), None);
        assert!((q.overall().expect("frames") - (48.1308 + 24.0483) / 2.0).abs() < 1e-3);
        assert_eq!(q.concealed, 1);
        let mut total = Quality::new(3);
        total.merge(&q);
        total.merge(&q);
        assert_eq!(total.all.frames, 4);
        assert_eq!(total.layer(l(3)), q.layer(l(3)));
        assert!(q.to_string().contains("Q2   -  "));
    }
}
